/// A RESP reply value. RESP3 types are downgraded when encoded for a RESP2 connection
/// (https://redis.io/docs/latest/develop/reference/protocol-spec/).
public indirect enum RESPValue: Hashable, Sendable {
    case simpleString(String)
    /// `-CODE message`: the text after the minus sign, code included.
    case error(String)
    case integer(Int64)
    case bulkString([UInt8])
    case array([RESPValue])
    /// RESP3 `_`; RESP2 `$-1` (or `*-1` via `.nullArray`).
    case null
    /// RESP2 `*-1`; RESP3 `_`.
    case nullArray
    case double(Double)
    case boolean(Bool)
    case map([RESPPair])
    /// Pairs that RESP3 sends as an array of two-element arrays and RESP2 as one flat array
    /// (ZRANGE … WITHSCORES: member and score).
    case pairArray([RESPPair])
    case set([RESPValue])
    /// Out-of-band data (pub/sub messages); RESP2 sends it as an array.
    case push([RESPValue])
    /// RESP3 verbatim string (`=15\r\ntxt:...`), a bulk string in RESP2.
    case verbatim(format: String, text: [UInt8])

    public static let ok = RESPValue.simpleString("OK")

    public static func bulk(_ text: String) -> RESPValue { .bulkString(Array(text.utf8)) }

    public static func bulkOrNull(_ bytes: [UInt8]?) -> RESPValue {
        bytes.map(RESPValue.bulkString) ?? .null
    }
}

/// One key/value pair of a RESP3 map.
public struct RESPPair: Hashable, Sendable {
    public var key: RESPValue
    public var value: RESPValue

    public init(_ key: RESPValue, _ value: RESPValue) {
        self.key = key
        self.value = value
    }
}

/// The protocol a connection speaks, chosen with HELLO.
public enum RESPVersion: Int, Hashable, Sendable {
    case v2 = 2
    case v3 = 3
}
