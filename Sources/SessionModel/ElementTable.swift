/// A key state's elements and their entries: compact (`CompactElements`, one buffer) while the
/// key is small, a dictionary once it is large. Most session keys stay compact for life and
/// cost a fraction of the memory; a hash or set growing to many elements moves to the
/// dictionary, where every command costs O(1) per element it touches.
///
/// A key moves to the dictionary once it holds more than `compactElementLimit` elements or
/// `compactByteLimit` bytes, and stays there while it is changed in place (a key that grew
/// once tends to grow again); only a table built whole (a full join, a decoded state) picks
/// its form afresh.
public struct ElementTable: Sendable {
    enum Storage: Sendable {
        case compact(CompactElements)
        case hashed([SessionModel.Element: [ElementEntry]])
    }

    private(set) var storage: Storage

    /// Above these a scan of the buffer would cost more than hashing (the byte bound also keeps
    /// a rewrite's copy small).
    static let compactElementLimit = 64
    static let compactByteLimit = 4096

    public init() {
        storage = .compact(CompactElements())
    }

    /// The table of `elements` (entries sorted by dot; elements without entries are left
    /// out), compact when they fit. A key too large for the buffer is never encoded.
    public init(_ elements: [SessionModel.Element: [ElementEntry]]) {
        let kept = elements.contains { $0.value.isEmpty } ? elements.filter { !$0.value.isEmpty } : elements
        guard Self.fitsCompact(kept) else {
            storage = .hashed(kept)
            return
        }
        let sorted = kept.sorted { $0.key < $1.key }
        storage = .compact(CompactElements(sorted: sorted.lazy.map { (key: $0.key, value: $0.value) }))
    }

    /// The table of `pairs`: in `Element` order, each element once with its entries sorted by
    /// dot, none empty. Saves building a dictionary only to sort it again.
    init(sortedPairs pairs: some Collection<(key: SessionModel.Element, value: [ElementEntry])>) {
        assert(zip(pairs, pairs.dropFirst()).allSatisfy { $0.key < $1.key } && !pairs.contains { $0.value.isEmpty }, "pairs out of order or empty")
        storage = Self.fitsCompact(pairs) ? .compact(CompactElements(sorted: pairs)) : .hashed(Dictionary(uniqueKeysWithValues: pairs.lazy.map { ($0.key, $0.value) }))
    }

    /// Whether elements fit the buffer's limits (counted without encoding them).
    static func fitsCompact(_ elements: some Collection<(key: SessionModel.Element, value: [ElementEntry])>) -> Bool {
        guard elements.count <= compactElementLimit else { return false }
        var bytes = 0
        for (element, entries) in elements {
            bytes += CompactElements.recordSize(element, entries)
            guard bytes <= compactByteLimit else { return false }
        }
        return true
    }

    /// The table of `elements` as a dictionary, whatever their size.
    init(hashing elements: [SessionModel.Element: [ElementEntry]]) {
        storage = .hashed(elements)
    }

    static func fitsCompact(_ compact: CompactElements) -> Bool {
        compact.count <= compactElementLimit && compact.bytes.count <= compactByteLimit
    }

    /// Whether the elements are held in one buffer (for tests and memory accounting).
    public var isCompact: Bool {
        if case .compact = storage { return true }
        return false
    }

    public var isEmpty: Bool { count == 0 }

    public var count: Int {
        switch storage {
        case .compact(let compact): return compact.count
        case .hashed(let elements): return elements.count
        }
    }

    public subscript(element: SessionModel.Element) -> [ElementEntry]? {
        switch storage {
        case .compact(let compact): return compact.entries(of: element)
        case .hashed(let elements): return elements[element]
        }
    }

    public func contains(_ element: SessionModel.Element) -> Bool {
        switch storage {
        case .compact(let compact): return compact.contains(element)
        case .hashed(let elements): return elements[element] != nil
        }
    }

    /// Calls `body` with the dot of each of `element`'s entries; false when the table does not
    /// hold it (no entries are built).
    func forEachDot(of element: SessionModel.Element, _ body: (Dot) -> Void) -> Bool {
        switch storage {
        case .compact(let compact): return compact.forEachDot(of: element, body)
        case .hashed(let elements):
            guard let entries = elements[element] else { return false }
            for entry in entries { body(entry.dot) }
            return true
        }
    }

    /// Calls `body` with the dot of every entry.
    func forEachDot(_ body: (Dot) -> Void) {
        switch storage {
        case .compact(let compact): compact.forEachDot(body)
        case .hashed(let elements):
            for entries in elements.values {
                for entry in entries { body(entry.dot) }
            }
        }
    }

    /// Every element (in `Element` order while compact, in no particular order otherwise).
    public var keys: [SessionModel.Element] {
        switch storage {
        case .compact(let compact): return compact.elements()
        case .hashed(let elements): return Array(elements.keys)
        }
    }

    /// Every element's entries (in the order of `keys`).
    public var values: [[ElementEntry]] {
        switch storage {
        case .compact(let compact): return compact.pairs().map(\.value)
        case .hashed(let elements): return Array(elements.values)
        }
    }

    /// Every element with its entries, in `Element` order (the canonical order of digests and
    /// of the wire).
    public var ordered: [(key: SessionModel.Element, value: [ElementEntry])] {
        switch storage {
        case .compact(let compact): return compact.pairs()
        case .hashed(let elements): return elements.sorted { $0.key < $1.key }.map { (key: $0.key, value: $0.value) }
        }
    }

    /// The storage of a compact buffer just changed: a dictionary once it outgrew the limits.
    private static func storage(holding compact: CompactElements) -> Storage {
        fitsCompact(compact) ? .compact(compact) : .hashed(Dictionary(uniqueKeysWithValues: compact.pairs().lazy.map { ($0.key, $0.value) }))
    }

    /// Replaces `element`'s entries with `entry` alone when `covered` holds for the dot of every
    /// entry it has, in a compact table, without decoding them; returns what `ElementSummary`
    /// counted for the entries replaced. Nil, changing nothing, otherwise (`update` then makes
    /// the change).
    mutating func overwrite(_ element: SessionModel.Element, with entry: ElementEntry, ifCovering covered: (Dot) -> Bool) -> Int? {
        guard case .compact(var compact) = storage else { return nil }
        // Released first, so the buffer is changed in place rather than copied.
        storage = .compact(CompactElements())
        let replaced = compact.overwrite(element, with: entry, ifCovering: covered)
        storage = Self.storage(holding: compact)
        return replaced
    }

    /// Changes one element's entries where they lie (empty when the element is absent); an
    /// element left without entries leaves the table.
    mutating func update(_ element: SessionModel.Element, _ body: (inout [ElementEntry]) -> Void) {
        switch storage {
        case .compact(var compact):
            // Released first, so the buffer is changed in place rather than copied.
            storage = .compact(CompactElements())
            compact.update(element, body)
            storage = Self.storage(holding: compact)
        case .hashed(var elements):
            storage = .compact(CompactElements())
            if let index = elements.index(forKey: element) {
                body(&elements.values[index])
                if elements.values[index].isEmpty { elements.remove(at: index) }
            } else {
                var entries: [ElementEntry] = []
                body(&entries)
                if !entries.isEmpty { elements[element] = entries }
            }
            storage = .hashed(elements)
        }
    }
}

extension ElementTable: Sequence {
    /// Walks the dictionary itself, so a search that stops early (`contains`, `first`) does
    /// not copy a large key's elements first.
    public enum Iterator: IteratorProtocol {
        case compact(IndexingIterator<[(key: SessionModel.Element, value: [ElementEntry])]>)
        case hashed(Dictionary<SessionModel.Element, [ElementEntry]>.Iterator)

        public mutating func next() -> (key: SessionModel.Element, value: [ElementEntry])? {
            switch self {
            case .compact(var pairs):
                let next = pairs.next()
                self = .compact(pairs)
                return next
            case .hashed(var elements):
                let next = elements.next()
                self = .hashed(elements)
                return next
            }
        }
    }

    public func makeIterator() -> Iterator {
        switch storage {
        case .compact(let compact): return .compact(compact.pairs().makeIterator())
        case .hashed(let elements): return .hashed(elements.makeIterator())
        }
    }
}

/// Equal when they hold the same elements and entries, whichever way each is stored.
extension ElementTable: Hashable {
    public static func == (lhs: ElementTable, rhs: ElementTable) -> Bool {
        switch (lhs.storage, rhs.storage) {
        case (.compact(let a), .compact(let b)):
            // The encoding is canonical.
            return a == b
        case (.hashed(let a), .hashed(let b)):
            return a == b
        default:
            guard lhs.count == rhs.count else { return false }
            return lhs.allSatisfy { rhs[$0.key] == $0.value }
        }
    }

    /// Order-independent, so both storages of the same elements hash alike.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(count)
        var combined = 0
        for (element, entries) in self {
            var one = Hasher()
            one.combine(element)
            one.combine(entries)
            combined &+= one.finalize()
        }
        hasher.combine(combined)
    }
}
