import RESP

/// phpredis's session-lock release (CLIENTS.md): `EVALSHA <sha1> 1 <lock> <token>`, then
/// `EVAL <script> 1 <lock> <token>` when the server does not know the SHA1. This store runs
/// no Lua; it recognises this one script, by its SHA1 or its exact text, and runs its
/// compare-and-delete natively and atomically (the key's primary runs it like any write).
/// Any other script gets Redis's "no script" or this store's "not supported" error.
public enum LockReleaseScript {
    /// The script as phpredis 6 sends it (captured from redis-server's MONITOR).
    public static let body = #"if redis.call("get",KEYS[1]) == ARGV[1] then return redis.call("del",KEYS[1]) else return 0 end"#
    /// SHA1 of `body`, as EVALSHA names it.
    public static let sha1 = "b70c2384248f88e6b75b9f89241a180f856ad852"

    /// Whether `arguments` (EVAL or EVALSHA, lowercase `name`) run this script on one key with
    /// one argument.
    public static func recognises(_ arguments: [[UInt8]], name: String) -> Bool {
        guard arguments.count == 5, arguments[2] == Array("1".utf8) else { return false }
        switch name {
        case "evalsha": return String(decoding: arguments[1], as: UTF8.self).lowercased() == sha1
        case "eval": return arguments[1] == Array(body.utf8)
        default: return false
        }
    }

    /// The reply to a script this store does not run.
    public static func refusal(for name: String) -> RESPValue {
        name == "evalsha"
            ? .error("NOSCRIPT No matching script. Please use EVAL.")
            : .error("ERR scripting is not supported by this server: sessionfed does not run Lua scripts")
    }
}

extension Keyspace {
    /// The lock release: deletes the lock when it still holds the caller's token (1), else
    /// leaves it (0), as the script does.
    mutating func releaseLock(_ context: inout CommandContext) -> RESPValue {
        guard LockReleaseScript.recognises(context.arguments, name: context.name) else { return LockReleaseScript.refusal(for: context.name) }
        let key = context.arguments[3]
        switch value(key, as: .string, &context) {
        case .failure:
            return RedisError.wrongType
        case .success(.string(let held)?) where held == context.arguments[4]:
            _ = apply(key, .delete, &context, event: "del", eventClass: .generic)
            return .integer(1)
        case .success:
            return .integer(0)
        }
    }
}
