/// The set of dots a replica of a key has seen: a version vector for the contiguous prefix of
/// each site's writes plus a "cloud" of dots received out of order (hub forwarding and
/// anti-entropy make gaps possible). Always compacted: a given set of dots has exactly one
/// representation, so equal contexts encode to equal bytes.
public struct CausalContext: Hashable, Sendable {
    public private(set) var vector: VersionVector
    /// Sorted, none covered by `vector`, none that would extend `vector` contiguously.
    public private(set) var cloud: [Dot]

    public init() {
        vector = VersionVector()
        cloud = []
    }

    public init(vector: VersionVector, cloud: [Dot] = []) {
        self.vector = vector
        self.cloud = []
        for dot in cloud {
            insert(dot)
        }
    }

    public var isEmpty: Bool { vector.isEmpty && cloud.isEmpty }

    public func contains(_ dot: Dot) -> Bool {
        vector.covers(dot) || binarySearch(dot) != nil
    }

    /// The highest counter of `site` in this context.
    public func maxCounter(of site: SiteID) -> UInt64 {
        let fromCloud = cloud.last { $0.site == site }?.counter ?? 0
        return max(vector[site], fromCloud)
    }

    /// The dot a new write accepted at `site` gets. Counters from peers are bounded by
    /// `Dot.maximumCounter` on the wire, so this cannot overflow.
    public func nextDot(for site: SiteID) -> Dot {
        let current = maxCounter(of: site)
        precondition(current < Dot.maximumCounter, "Invalid state: counter \(current) of \(site) beyond the limit")
        return Dot(site: site, counter: current + 1)
    }

    public mutating func insert(_ dot: Dot) {
        guard dot.counter > 0, !contains(dot) else { return }
        if dot.counter == vector[dot.site] + 1 {
            vector[dot.site] = dot.counter
            absorbCloud(of: dot.site)
        } else {
            let position = cloud.firstIndex { $0 > dot } ?? cloud.endIndex
            cloud.insert(dot, at: position)
        }
    }

    public mutating func formUnion(_ other: CausalContext) {
        let before = vector
        vector.merge(other.vector)
        if vector != before {
            cloud.removeAll { vector.covers($0) }
            for entry in vector.entries {
                absorbCloud(of: entry.site)
            }
        }
        for dot in other.cloud {
            insert(dot)
        }
    }

    /// Whether every dot of this context is covered by `stable`.
    public func isCovered(by stable: VersionVector) -> Bool {
        stable.covers(vector) && cloud.allSatisfy { stable.covers($0) }
    }

    /// Every dot of this context, for tests and diagnostics (can be large).
    public var dots: [Dot] {
        var result: [Dot] = []
        for entry in vector.entries {
            for counter in 1...entry.counter {
                result.append(Dot(site: entry.site, counter: counter))
            }
        }
        return (result + cloud).sorted()
    }

    private mutating func absorbCloud(of site: SiteID) {
        while vector[site] < UInt64.max, let index = binarySearch(Dot(site: site, counter: vector[site] + 1)) {
            vector[site] += 1
            cloud.remove(at: index)
        }
        cloud.removeAll { $0.site == site && $0.counter <= vector[site] }
    }

    private func binarySearch(_ dot: Dot) -> Int? {
        var low = 0
        var high = cloud.count - 1
        while low <= high {
            let middle = (low + high) / 2
            if cloud[middle] == dot { return middle }
            if cloud[middle] < dot { low = middle + 1 } else { high = middle - 1 }
        }
        return nil
    }
}
