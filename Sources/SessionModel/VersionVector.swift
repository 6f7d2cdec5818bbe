/// Site id → counter. `vv[S] = n` means "every write of site S to this key up to n is known".
///
/// Entries are kept sorted by site with zero counters omitted, so two equal vectors have one
/// representation (the encoded state of a key is compared byte for byte across sites).
public struct VersionVector: Hashable, Sendable, CustomStringConvertible {
    /// How two vectors relate causally.
    public enum Ordering: Equatable, Sendable {
        case equal
        /// `self` happened before the other: the other covers it and has more.
        case before
        /// `self` covers the other and has more.
        case after
        /// Neither covers the other.
        case concurrent
    }

    public struct Entry: Hashable, Sendable {
        public var site: SiteID
        public var counter: UInt64

        public init(site: SiteID, counter: UInt64) {
            self.site = site
            self.counter = counter
        }
    }

    /// Sorted by site, counters greater than zero.
    public private(set) var entries: [Entry]

    public init() {
        entries = []
    }

    public init(_ counters: [SiteID: UInt64]) {
        entries = counters.filter { $0.value > 0 }
            .map { Entry(site: $0.key, counter: $0.value) }
            .sorted { $0.site < $1.site }
    }

    /// Entries already sorted by site with counters above zero (decoded from a buffer this
    /// process wrote).
    init(sortedEntries: [Entry]) {
        entries = sortedEntries
    }

    public var isEmpty: Bool { entries.isEmpty }

    public subscript(site: SiteID) -> UInt64 {
        get {
            guard let index = index(of: site) else { return 0 }
            return entries[index].counter
        }
        set {
            if let index = index(of: site) {
                if newValue == 0 {
                    entries.remove(at: index)
                } else {
                    entries[index].counter = newValue
                }
            } else if newValue > 0 {
                let position = entries.firstIndex { $0.site > site } ?? entries.endIndex
                entries.insert(Entry(site: site, counter: newValue), at: position)
            }
        }
    }

    /// Whether the write `dot` is known to this vector.
    public func covers(_ dot: Dot) -> Bool {
        self[dot.site] >= dot.counter
    }

    /// Whether every write known to `other` is known to `self` (pointwise `self >= other`).
    public func covers(_ other: VersionVector) -> Bool {
        other.entries.allSatisfy { self[$0.site] >= $0.counter }
    }

    public func compare(_ other: VersionVector) -> Ordering {
        switch (covers(other), other.covers(self)) {
        case (true, true): return .equal
        case (true, false): return .after
        case (false, true): return .before
        case (false, false): return .concurrent
        }
    }

    /// Pointwise maximum: everything known to either.
    public mutating func merge(_ other: VersionVector) {
        for entry in other.entries where self[entry.site] < entry.counter {
            self[entry.site] = entry.counter
        }
    }

    public func merging(_ other: VersionVector) -> VersionVector {
        var result = self
        result.merge(other)
        return result
    }

    /// Pointwise minimum: what every one of `vectors` knows (the stable vector of §2.5 when
    /// `vectors` are the contexts every site acknowledged).
    public static func pointwiseMinimum(_ vectors: [VersionVector]) -> VersionVector {
        guard var result = vectors.first else { return VersionVector() }
        for vector in vectors.dropFirst() {
            for entry in result.entries {
                result[entry.site] = min(entry.counter, vector[entry.site])
            }
        }
        return result
    }

    public var description: String {
        "{" + entries.map { "\($0.site.rawValue):\($0.counter)" }.joined(separator: ",") + "}"
    }

    private func index(of site: SiteID) -> Int? {
        var low = 0
        var high = entries.count - 1
        while low <= high {
            let middle = (low + high) / 2
            if entries[middle].site == site { return middle }
            if entries[middle].site < site { low = middle + 1 } else { high = middle - 1 }
        }
        return nil
    }
}
