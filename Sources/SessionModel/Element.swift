/// One independently written part of a key: the string value, a hash field, a set member, a
/// sorted-set member, or the key's expiry. Concurrent writes are resolved per element (DESIGN.md §2.3 rules 3–6).
public enum Element: Hashable, Comparable, Sendable, CustomStringConvertible {
    case string
    case field([UInt8])
    case member([UInt8])
    case expiry
    /// The key's restarts: writes that found it expired and started a new key (`KeyRestart`).
    /// An element like the others, so a write that observed a restart removes it at every site.
    case restart
    /// A sorted-set member; its entries carry the score. Present add-wins (a concurrent ZREM does
    /// not remove it, as for a set member); concurrent scores are decided by the conflict policy.
    case sortedMember([UInt8])

    /// The key type this element belongs to; nil for the expiry and restarts, which any type has.
    public var keyType: KeyType? {
        switch self {
        case .string: return .string
        case .field: return .hash
        case .member: return .set
        case .sortedMember: return .zset
        case .expiry, .restart: return nil
        }
    }

    /// Whether the element holds the key's data (a string, field or member of either set).
    public var isData: Bool { keyType != nil }

    /// A name's bytes in one call: the synthesized hash feeds the hasher byte by byte, which
    /// was the largest cost of a write to a large hash (a command looks a field up several
    /// times). Equal elements hash equally: the case, then the name's length and bytes.
    public func hash(into hasher: inout Hasher) {
        switch self {
        case .field(let name), .member(let name), .sortedMember(let name):
            hasher.combine(rank)
            hasher.combine(name.count)
            name.withUnsafeBytes { hasher.combine(bytes: $0) }
        case .string, .expiry, .restart:
            hasher.combine(rank)
        }
    }

    public static func < (lhs: Element, rhs: Element) -> Bool {
        switch (lhs, rhs) {
        case (.field(let a), .field(let b)), (.member(let a), .member(let b)), (.sortedMember(let a), .sortedMember(let b)):
            return a.lexicographicallyPrecedes(b)
        default:
            return lhs.rank < rhs.rank
        }
    }

    /// The kind's place in the canonical order (and its tag in `CompactElements`).
    var rank: UInt8 {
        switch self {
        case .string: return 0
        case .field: return 1
        case .member: return 2
        case .expiry: return 3
        case .restart: return 4
        // After the others: the canonical order of elements (and so the wire's) stays as it was.
        case .sortedMember: return 5
        }
    }

    /// A sorted set's member: its entries are also in the key's sorted index.
    var isSortedMember: Bool {
        if case .sortedMember = self { return true }
        return false
    }

    /// Fields and members have names; the string, expiry and restart do not.
    var isNamed: Bool { Self.isNamed(rank: rank) }

    static func isNamed(rank: UInt8) -> Bool { rank == 1 || rank == 2 || rank == 5 }

    /// A field's or member's name; empty for the others.
    var name: [UInt8] {
        switch self {
        case .field(let name), .member(let name), .sortedMember(let name): return name
        case .string, .expiry, .restart: return []
        }
    }

    public var description: String {
        switch self {
        case .string: return "string"
        case .field(let name): return "field:\(String(decoding: name, as: UTF8.self))"
        case .member(let name): return "member:\(String(decoding: name, as: UTF8.self))"
        case .expiry: return "expiry"
        case .restart: return "restart"
        case .sortedMember(let name): return "zmember:\(String(decoding: name, as: UTF8.self))"
        }
    }
}

/// The Redis types a key can hold; the raw value is what TYPE answers.
public enum KeyType: String, Hashable, Sendable {
    case string
    case hash
    case set
    case zset
}

/// What a write stored in an element.
public enum ElementPayload: Hashable, Sendable {
    /// The value of a string or of a hash field (binary-safe, may be empty).
    case bytes([UInt8])
    /// A set member is present.
    case present
    /// The key expires at this time (milliseconds since the Unix epoch).
    case expireAt(UInt64)
    /// The key never expires (PERSIST): beats any concurrent expiry time (§2.3 rule 6).
    case persist
    /// A sorted-set member is present with this score (never NaN: Redis refuses one).
    case score(Double)
}

/// One surviving write to an element. An element holds several entries only while writes to it
/// are concurrent; the conflict policy picks the visible one, deterministically.
public struct ElementEntry: Hashable, Sendable {
    public var dot: Dot
    public var timestamp: HLCTimestamp
    public var payload: ElementPayload
    /// The key's delete vector as the writer saw it: under delete-wins the entry survives only if
    /// this covers every delete recorded for the key (§2.3 rule 7).
    public var deletesSeen: VersionVector

    public init(dot: Dot, timestamp: HLCTimestamp, payload: ElementPayload, deletesSeen: VersionVector) {
        self.dot = dot
        self.timestamp = timestamp
        self.payload = payload
        self.deletesSeen = deletesSeen
    }
}
