/// A hash field and its visible value.
public struct HashField: Hashable, Sendable {
    public var field: [UInt8]
    public var value: [UInt8]

    public init(field: [UInt8], value: [UInt8]) {
        self.field = field
        self.value = value
    }
}

/// A sorted-set member and its visible score.
public struct ScoredMember: Hashable, Sendable {
    public var member: [UInt8]
    public var score: Double

    public init(member: [UInt8], score: Double) {
        self.member = member
        self.score = score
    }
}

/// What a client sees of a key.
public enum KeyValue: Hashable, Sendable {
    case string([UInt8])
    /// Sorted by field.
    case hash([HashField])
    /// Sorted.
    case set([[UInt8]])
    /// Sorted by score, then member (Redis's order).
    case zset([ScoredMember])

    public var type: KeyType {
        switch self {
        case .string: return .string
        case .hash: return .hash
        case .set: return .set
        case .zset: return .zset
        }
    }
}

/// A local write, as the Redis commands need them. Commands compute what they need (APPEND's
/// new value, EXPIRE's absolute time, the WRONGTYPE check) from the visible value first.
public enum KeyWrite: Hashable, Sendable {
    /// SET: replaces the key whatever its type; the expiry is kept only with `keepExpiry`.
    case setString([UInt8], keepExpiry: Bool)
    /// APPEND: the visible string (or nothing) followed by `suffix`; keeps the expiry.
    case append([UInt8])
    /// HSET/HMSET: keeps the expiry, as Redis does.
    case setFields([HashField])
    case removeFields([[UInt8]])
    case addMembers([[UInt8]])
    case removeMembers([[UInt8]])
    /// ZADD/ZINCRBY: each member once, with the score it ends with; keeps the expiry.
    case addScoredMembers([ScoredMember])
    case removeScoredMembers([[UInt8]])
    case expire(atMilliseconds: UInt64)
    case persist
    /// DEL, UNLINK, and RENAME's source.
    case delete
    /// RENAME's destination: the key becomes exactly `value` with `expireAt` (nil: persistent).
    case replace(KeyValue, expireAtMilliseconds: UInt64?)
}
