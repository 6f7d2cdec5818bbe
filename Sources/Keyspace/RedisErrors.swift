import RESP

/// Redis's exact error replies; clients match on the first word and sometimes the text.
public enum RedisError {
    public static let wrongType = RESPValue.error("WRONGTYPE Operation against a key holding the wrong kind of value")
    public static let syntax = RESPValue.error("ERR syntax error")
    public static let notInteger = RESPValue.error("ERR value is not an integer or out of range")
    public static let overflow = RESPValue.error("ERR increment or decrement would overflow")
    public static let hashNotInteger = RESPValue.error("ERR hash value is not an integer")
    public static let noSuchKey = RESPValue.error("ERR no such key")
    public static let invalidCursor = RESPValue.error("ERR invalid cursor")
    public static let outOfMemory = RESPValue.error("OOM command not allowed when used memory > 'maxmemory'.")
    public static let expireOptionsNXWithOthers = RESPValue.error("ERR NX and XX, GT or LT options at the same time are not compatible")
    public static let expireOptionsGTAndLT = RESPValue.error("ERR GT and LT options at the same time are not compatible")
    public static let notFloat = RESPValue.error("ERR value is not a valid float")
    public static let minMaxNotFloat = RESPValue.error("ERR min or max is not a float")
    public static let scoreNaN = RESPValue.error("ERR resulting score is not a number (NaN)")
    public static let zaddNXAndXX = RESPValue.error("ERR XX and NX options at the same time are not compatible")
    public static let zaddGTLTAndNX = RESPValue.error("ERR GT, LT, and/or NX options at the same time are not compatible")
    public static let zaddIncrPairs = RESPValue.error("ERR INCR option supports a single increment-element pair")
    public static let stringTooLong = RESPValue.error("ERR string exceeds maximum allowed size (proto-max-bulk-len)")

    public static func wrongArity(_ command: String) -> RESPValue {
        .error("ERR wrong number of arguments for '\(command.lowercased())' command")
    }

    public static func invalidExpire(_ command: String) -> RESPValue {
        .error("ERR invalid expire time in '\(command.lowercased())' command")
    }

    /// `ERR unknown command 'x', with args beginning with: 'a' 'b' ` (Redis quotes at most 128
    /// bytes of each of the first arguments).
    public static func unknownCommand(_ arguments: [[UInt8]]) -> RESPValue {
        let name = String(decoding: arguments.first?.prefix(128) ?? [], as: UTF8.self)
        var text = "ERR unknown command '\(name)', with args beginning with: "
        for argument in arguments.dropFirst() {
            text += "'\(String(decoding: argument.prefix(128), as: UTF8.self))' "
            if text.count > 512 { break }
        }
        return .error(text)
    }

    public static func unknownSubcommand(_ subcommand: [UInt8], of command: String) -> RESPValue {
        let sub = String(decoding: subcommand.prefix(128), as: UTF8.self)
        return .error("ERR unknown subcommand '\(sub)'. Try \(command.uppercased()) HELP.")
    }
}
