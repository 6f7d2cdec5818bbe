/// The entries of a key's sorted-set members in Redis's order (score, then member bytes), kept
/// as they change, so ranges by rank, score or name cost a binary search plus what they
/// return instead of a sort of the whole set per command.
///
/// Derived from the key state's entries like `ElementSummary`: one item per entry, concurrent
/// entries of one member included (the conflict policy, which the state does not know, picks
/// the visible one when read). Two states with the same entries have the same index.
public struct SortedSetIndex: Hashable, Sendable {
    /// One entry of a sorted-set member.
    public struct Item: Hashable, Sendable, Comparable {
        public var score: Double
        public var member: [UInt8]
        /// Tells concurrent entries of one member apart (and orders them, deterministically).
        public var dot: Dot

        public init(score: Double, member: [UInt8], dot: Dot) {
            self.score = score
            self.member = member
            self.dot = dot
        }

        public static func < (lhs: Item, rhs: Item) -> Bool {
            if lhs.score != rhs.score { return lhs.score < rhs.score }
            if lhs.member != rhs.member { return lhs.member.lexicographicallyPrecedes(rhs.member) }
            return lhs.dot < rhs.dot
        }
    }

    /// Sorted ascending.
    public private(set) var items: [Item] = []

    public init() {}

    init(_ elements: some Sequence<(key: Element, value: [ElementEntry])>) {
        for (element, entries) in elements {
            guard case .sortedMember(let member) = element else { continue }
            for entry in entries {
                if case .score(let score) = entry.payload { items.append(Item(score: score, member: member, dot: entry.dot)) }
            }
        }
        items.sort()
    }

    mutating func add(_ element: Element, _ entries: [ElementEntry]) {
        guard case .sortedMember(let member) = element else { return }
        for entry in entries {
            guard case .score(let score) = entry.payload else { continue }
            let item = Item(score: score, member: member, dot: entry.dot)
            items.insert(item, at: firstIndex { !($0 < item) })
        }
    }

    mutating func remove(_ element: Element, _ entries: [ElementEntry]) {
        guard case .sortedMember(let member) = element else { return }
        for entry in entries {
            guard case .score(let score) = entry.payload else { continue }
            let item = Item(score: score, member: member, dot: entry.dot)
            let position = firstIndex { !($0 < item) }
            precondition(position < items.count && items[position] == item, "Invalid state: \(item) is not in the sorted index")
            items.remove(at: position)
        }
    }

    /// The first position whose item satisfies `isAtOrAfter` (which must be false for a prefix
    /// of the items and true for the rest); `items.count` when none does.
    public func firstIndex(where isAtOrAfter: (Item) -> Bool) -> Int {
        Self.partitionPoint(items, isAtOrAfter)
    }

    /// Binary search over any sorted array of items (the index, or a filtered copy of it).
    public static func partitionPoint(_ items: [Item], _ isAtOrAfter: (Item) -> Bool) -> Int {
        var low = 0, high = items.count
        while low < high {
            let middle = (low + high) / 2
            if isAtOrAfter(items[middle]) { high = middle } else { low = middle + 1 }
        }
        return low
    }
}
