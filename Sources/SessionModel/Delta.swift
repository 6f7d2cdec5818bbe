/// One operation of a write, as shipped between sites. Removal operations carry no entry: what
/// they remove is named by the delta's context; they are kept for keyspace events and logs.
public enum Operation: Hashable, Sendable {
    case setString([UInt8])
    case setField([UInt8], value: [UInt8])
    case removeField([UInt8])
    case addMember([UInt8])
    case removeMember([UInt8])
    /// ZADD: the sorted-set member is present with this score.
    case setScore([UInt8], score: Double)
    case removeScoredMember([UInt8])
    case expire(atMilliseconds: UInt64)
    case persist
    case deleteKey
    /// The write found the key expired and starts a new key (see `KeyRestart`); first of its
    /// write's operations, so the restart's dot is the write's dot.
    case restartKey

    /// Whether the operation stores an entry (and so takes a dot of its own).
    public var storesEntry: Bool {
        switch self {
        case .setString, .setField, .addMember, .setScore, .expire, .persist, .restartKey: return true
        case .removeField, .removeMember, .removeScoredMember, .deleteKey: return false
        }
    }
}

/// What one write changed in one key: the small state the write produces (a delta-state in the
/// sense of Almeida, Shoker and Baquero, "Delta State Replicated Data Types", 2018).
///
/// Every element a write stores gets a dot of its own, so removing one hash field later removes
/// exactly that field: `dot` is the first, and the operations that store something take the
/// following counters in order (HMSET of six fields advances the site's counter by six). A
/// write that stores nothing (HDEL, SREM, DEL) uses `dot` alone.
///
/// `context` is the part of the writer's causal context the write supersedes: the dots of the
/// entries it overwrote or removed (for a delete: everything the writer had seen of the key).
/// It deliberately is not the writer's whole version vector: a field write must not remove
/// fields the receiver holds that the writer merely had seen.
public struct Delta: Hashable, Sendable {
    public var key: [UInt8]
    public var dot: Dot
    public var timestamp: HLCTimestamp
    public var context: CausalContext
    /// The key's delete vector as the writer saw it after the write.
    public var deletes: VersionVector
    public var operations: [Operation]

    public init(
        key: [UInt8],
        dot: Dot,
        timestamp: HLCTimestamp,
        context: CausalContext,
        deletes: VersionVector,
        operations: [Operation]
    ) {
        self.key = key
        self.dot = dot
        self.timestamp = timestamp
        self.context = context
        self.deletes = deletes
        self.operations = operations
    }

    /// Whether the write found the key expired and starts a new key.
    public var startsNewKey: Bool { operations.first == .restartKey }

    /// Whether the write only changes the expiry (a touch); the outbox coalesces these (§2.4).
    public var isTouchOnly: Bool {
        !operations.isEmpty && operations.allSatisfy {
            switch $0 {
            case .expire, .persist: return true
            default: return false
            }
        }
    }

    /// How many dots the write uses: one per stored element, at least one.
    public var dotCount: UInt64 {
        UInt64(max(1, operations.count { $0.storesEntry }))
    }

    /// The last dot the write uses.
    public var lastDot: Dot {
        Dot(site: dot.site, counter: dot.counter + dotCount - 1)
    }

    /// The delta as a key state, ready to be joined.
    public var state: KeyState {
        var joinedContext = context
        insertDots(into: &joinedContext)
        var elements: [Element: [ElementEntry]] = [:]
        for written in entries { elements[written.element] = [written.entry] }
        return KeyState(context: joinedContext, deletes: deletesAfter, elements: elements, compact: false)
    }

    /// The delete vector once the write is applied: a whole-key delete adds its own dot.
    public var deletesAfter: VersionVector {
        var joined = deletes
        if operations.contains(.deleteKey), joined[dot.site] < dot.counter {
            joined[dot.site] = dot.counter
        }
        return joined
    }

    /// Whether `other` is a dot this write issued or observed: the entries it replaces.
    public func covers(_ other: Dot) -> Bool {
        coverage.contains(other)
    }

    /// What the write covers, read once: a caller asking about many entries keeps this rather
    /// than the delta (a closure over a delta copies each of its arrays, about 4 % of a SET,
    /// and `lastDot` counts the operations on every call).
    public var coverage: Coverage { Coverage(issued: dots, observed: context) }

    public struct Coverage: Sendable {
        public let issued: DotRange
        public let observed: CausalContext

        public func contains(_ dot: Dot) -> Bool {
            issued.contains(dot) || observed.contains(dot)
        }
    }

    /// The entry the write puts for each element it stores, each element once. The primary
    /// applies these directly (`KeyState.write`), without building `state`: a SET costs a
    /// handful of allocations fewer (Benchmarks/README.md, "Allocations").
    public var entries: [Written] {
        // A delta names each element once; should a peer repeat one, the last occurrence wins.
        var result = LastOccurrences<Element, Written>(expected: operations.count) { $0.element }
        var next = dot
        for operation in operations {
            let put: (Element, ElementPayload)
            switch operation {
            case .setString(let value): put = (.string, .bytes(value))
            case .setField(let field, let value): put = (.field(field), .bytes(value))
            case .addMember(let member): put = (.member(member), .present)
            case .setScore(let member, let score): put = (.sortedMember(member), .score(score))
            case .expire(let at): put = (.expiry, .expireAt(at))
            case .persist: put = (.expiry, .persist)
            case .restartKey: put = (.restart, .present)
            case .removeField, .removeMember, .removeScoredMember, .deleteKey: continue
            }
            result.put(Written(element: put.0, entry: ElementEntry(dot: next, timestamp: timestamp, payload: put.1, deletesSeen: deletes)))
            next.counter += 1
        }
        return result.values
    }

    /// The elements the write removes (HDEL, SREM, ZREM), in its order.
    public var removedElements: [Element] {
        operations.compactMap { operation in
            switch operation {
            case .removeField(let field): return .field(field)
            case .removeMember(let member): return .member(member)
            case .removeScoredMember(let member): return .sortedMember(member)
            default: return nil
            }
        }
    }

    /// One element a write stores and its entry. A struct rather than a tuple: an array of
    /// tuples looks its element type's metadata up at run time on every allocation, a cost
    /// that showed in every SET.
    public struct Written: Sendable {
        public var element: Element
        public var entry: ElementEntry
    }

    /// `entries`, found by element: by a scan when a write stores a few (most do), through a
    /// table when it stores many (an HMSET of dozens of fields).
    public struct WrittenEntries: Sendable {
        public let all: [Written]
        private let byElement: [Element: Int]?

        public init(_ all: [Written]) {
            self.all = all
            byElement = all.count > 8 ? Dictionary(uniqueKeysWithValues: all.enumerated().map { ($0.element.element, $0.offset) }) : nil
        }

        /// The entry the write stores for `element`, nil when it stores none.
        public func entry(of element: Element) -> ElementEntry? {
            if let byElement { return byElement[element].map { all[$0].entry } }
            return all.first { $0.element == element }?.entry
        }
    }

    /// The dots this write issued: `dot` through `lastDot`.
    public var dots: DotRange {
        DotRange(site: dot.site, first: dot.counter, last: lastDot.counter)
    }

    /// Adds the dots this write issued to `context`.
    public func insertDots(into context: inout CausalContext) {
        context.insert(dots)
    }
}
