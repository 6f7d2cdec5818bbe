/// A run of consecutive dots of one site: `first...last`.
public struct DotRange: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var site: SiteID
    public var first: UInt64
    public var last: UInt64

    public init(site: SiteID, first: UInt64, last: UInt64) {
        precondition(first >= 1 && first <= last, "Invalid dot range \(first)...\(last)")
        self.site = site
        self.first = first
        self.last = last
    }

    public init(_ dot: Dot) {
        self.init(site: dot.site, first: dot.counter, last: dot.counter)
    }

    public static func < (lhs: DotRange, rhs: DotRange) -> Bool {
        (lhs.site, lhs.first, lhs.last) < (rhs.site, rhs.first, rhs.last)
    }

    public func contains(_ dot: Dot) -> Bool {
        dot.site == site && dot.counter >= first && dot.counter <= last
    }

    public var description: String { "(\(site.rawValue),\(first)...\(last))" }
}

/// The set of dots a replica of a key has seen: a version vector for the contiguous prefix of
/// each site's writes plus a "cloud" of runs of dots beyond it. Runs come from dots received
/// out of order (hub forwarding and anti-entropy make gaps possible) and from a site's counter
/// jumping past what an earlier life of its copy may have issued (`KeyState.write`'s
/// `lifeStart`): a run keeps such a lineage one entry long however many writes it holds.
/// Always compacted: a given set of dots has exactly one representation, so equal contexts
/// encode to equal bytes.
public struct CausalContext: Hashable, Sendable {
    public private(set) var vector: VersionVector
    /// Sorted; disjoint and never adjacent (two runs of a site that touch are one run); none
    /// touching `vector` (a run that starts right after the prefix joins it).
    public private(set) var cloud: [DotRange]

    public init() {
        vector = VersionVector()
        cloud = []
    }

    public init(vector: VersionVector, cloud: [DotRange] = []) {
        self.vector = vector
        self.cloud = []
        for range in cloud { insert(range) }
    }

    public init(vector: VersionVector, dots: [Dot]) {
        self.init(vector: vector, cloud: dots.filter { $0.counter > 0 }.map(DotRange.init))
    }

    public var isEmpty: Bool { vector.isEmpty && cloud.isEmpty }

    public func contains(_ dot: Dot) -> Bool {
        vector.covers(dot) || runIndex(containing: dot) != nil
    }

    /// The highest counter of `site` in this context.
    public func maxCounter(of site: SiteID) -> UInt64 {
        let fromCloud = cloud.last { $0.site == site }?.last ?? 0
        return max(vector[site], fromCloud)
    }

    /// The dot a new write accepted at `site` gets: the next counter, or `floor` when that is
    /// higher. Counters from peers are bounded by `Dot.maximumCounter` on the wire, so this
    /// cannot overflow.
    public func nextDot(for site: SiteID, floor: UInt64 = 0) -> Dot {
        let current = maxCounter(of: site)
        precondition(current < Dot.maximumCounter, "Invalid state: counter \(current) of \(site) beyond the limit")
        return Dot(site: site, counter: max(current + 1, floor))
    }

    public mutating func insert(_ dot: Dot) {
        guard dot.counter > 0 else { return }
        insert(DotRange(dot))
    }

    /// Adds every dot of `range`, merging it with the prefix and the runs it touches.
    public mutating func insert(_ range: DotRange) {
        let site = range.site
        let prefix = vector[site]
        guard range.last > prefix else { return }
        var first = max(range.first, prefix + 1)
        var last = range.last
        // The runs of `site` that overlap or touch [first, last] merge into it.
        var low = lowerBound(DotRange(site: site, first: 1, last: 1))
        while low < cloud.count, cloud[low].site == site, cloud[low].last < first - 1 { low += 1 }
        var high = low
        while high < cloud.count, cloud[high].site == site, cloud[high].first <= last &+ 1 {
            first = min(first, cloud[high].first)
            last = max(last, cloud[high].last)
            high += 1
        }
        if first == prefix + 1 {
            cloud.removeSubrange(low..<high)
            vector[site] = last
        } else {
            cloud.replaceSubrange(low..<high, with: [DotRange(site: site, first: first, last: last)])
        }
    }

    public mutating func formUnion(_ other: CausalContext) {
        let before = vector
        vector.merge(other.vector)
        if vector != before {
            // Runs now inside or next to a longer prefix fold into it.
            let runs = cloud
            cloud = []
            for run in runs { insert(run) }
        }
        for run in other.cloud { insert(run) }
    }

    /// Whether every dot of `run` is in this context. A run of the context never touches its
    /// prefix nor another run, so a covered run lies in the prefix or inside one run.
    public func contains(_ run: DotRange) -> Bool {
        vector[run.site] >= run.last || runIndex(containing: Dot(site: run.site, counter: run.first)).map { cloud[$0].last >= run.last } == true
    }

    /// Whether no dot of `run` is in this context. Runs are disjoint and sorted, so the last
    /// run of the site starting at or before the run's end is the only one that can reach
    /// into it.
    public func isDisjoint(with run: DotRange) -> Bool {
        guard vector[run.site] < run.first else { return false }
        let position = lowerBound(DotRange(site: run.site, first: run.last, last: UInt64.max))
        return position == 0 || cloud[position - 1].site != run.site || cloud[position - 1].last < run.first
    }

    /// Whether every dot of this context is in `other`.
    public func isSubset(of other: CausalContext) -> Bool {
        vector.entries.allSatisfy { other.vector[$0.site] >= $0.counter } && cloud.allSatisfy(other.contains)
    }

    /// Whether every dot of this context is covered by `stable`.
    public func isCovered(by stable: VersionVector) -> Bool {
        stable.covers(vector) && cloud.allSatisfy { stable[$0.site] >= $0.last }
    }

    /// Every dot of this context when there are at most `limit` (nil otherwise), without
    /// enumerating a large one.
    public func dots(atMost limit: Int) -> [Dot]? {
        count(atMost: limit) == nil ? nil : dots
    }

    /// Calls `body` with every dot (in no particular order) when there are at most `limit`,
    /// and returns true; calls nothing and returns false otherwise. A small context walked
    /// without an array.
    public func forEachDot(atMost limit: Int, _ body: (Dot) -> Void) -> Bool {
        guard count(atMost: limit) != nil else { return false }
        for entry in vector.entries {
            for counter in 1...entry.counter { body(Dot(site: entry.site, counter: counter)) }
        }
        for run in cloud {
            for counter in run.first...run.last { body(Dot(site: run.site, counter: counter)) }
        }
        return true
    }

    /// How many dots this context holds, when at most `limit` (nil otherwise).
    private func count(atMost limit: Int) -> UInt64? {
        let bound = UInt64(limit)
        var count: UInt64 = 0
        for entry in vector.entries {
            guard entry.counter <= bound - count else { return nil }
            count += entry.counter
        }
        for run in cloud {
            guard run.last - run.first < bound - count else { return nil }
            count += run.last - run.first + 1
        }
        return count
    }

    /// Every dot of this context, for tests and diagnostics (can be large).
    public var dots: [Dot] {
        var result: [Dot] = []
        for entry in vector.entries {
            for counter in 1...entry.counter {
                result.append(Dot(site: entry.site, counter: counter))
            }
        }
        for run in cloud {
            for counter in run.first...run.last { result.append(Dot(site: run.site, counter: counter)) }
        }
        return result.sorted()
    }

    /// The first index whose run is not ordered before `range`.
    private func lowerBound(_ range: DotRange) -> Int {
        var low = 0
        var high = cloud.count
        while low < high {
            let middle = (low + high) / 2
            if cloud[middle] < range { low = middle + 1 } else { high = middle }
        }
        return low
    }

    private func runIndex(containing dot: Dot) -> Int? {
        // The last run starting at or before the dot is the only one that can hold it.
        let position = lowerBound(DotRange(site: dot.site, first: dot.counter, last: UInt64.max))
        guard position > 0, cloud[position - 1].contains(dot) else { return nil }
        return position - 1
    }
}
