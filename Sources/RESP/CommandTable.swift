/// What the server knows of a command before running it: arity, flags and key positions, as
/// Redis's command table (and COMMAND INFO) describes them.
public struct CommandSpec: Hashable, Sendable {
    public struct Flags: OptionSet, Hashable, Sendable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }

        public static let write = Flags(rawValue: 1 << 0)
        public static let readonly = Flags(rawValue: 1 << 1)
        /// Refused when over `maxmemory` (it may grow memory).
        public static let denyOOM = Flags(rawValue: 1 << 2)
        public static let admin = Flags(rawValue: 1 << 3)
        public static let pubsub = Flags(rawValue: 1 << 4)
        public static let noscript = Flags(rawValue: 1 << 5)
        public static let loading = Flags(rawValue: 1 << 6)
        public static let stale = Flags(rawValue: 1 << 7)
        public static let fast = Flags(rawValue: 1 << 8)
        /// Runs before authentication (AUTH, HELLO, QUIT).
        public static let noAuth = Flags(rawValue: 1 << 9)
        /// Not queued inside MULTI (EXEC, DISCARD, MULTI, WATCH, QUIT, RESET).
        public static let transactionControl = Flags(rawValue: 1 << 10)

        static let names: [(Flags, String)] = [
            (.write, "write"), (.readonly, "readonly"), (.denyOOM, "denyoom"), (.admin, "admin"), (.pubsub, "pubsub"),
            (.noscript, "noscript"), (.loading, "loading"), (.stale, "stale"), (.fast, "fast"), (.noAuth, "no_auth"),
        ]

        public var names: [String] { Self.names.filter { contains($0.0) }.map(\.1) }
    }

    public var name: String
    /// Redis convention: positive = exact argument count (name included), negative = at least.
    public var arity: Int
    public var flags: Flags
    public var firstKey: Int
    public var lastKey: Int
    public var step: Int
    public var group: String
    public var summary: String

    public func acceptsArgumentCount(_ count: Int) -> Bool {
        arity >= 0 ? count == arity : count >= -arity
    }

    /// The keys a command touches (for WATCH-like bookkeeping and routing).
    public func keys(in arguments: [[UInt8]]) -> [[UInt8]] {
        guard firstKey > 0, firstKey < arguments.count else { return [] }
        let last = lastKey < 0 ? arguments.count + lastKey : min(lastKey, arguments.count - 1)
        guard last >= firstKey else { return [] }
        return stride(from: firstKey, through: last, by: max(1, step)).map { arguments[$0] }
    }
}

/// Every command the server answers. Lookup by lowercase name.
public enum CommandTable {
    public static let all: [String: CommandSpec] = {
        var table: [String: CommandSpec] = [:]
        func add(_ name: String, _ arity: Int, _ flags: CommandSpec.Flags, _ keys: (Int, Int, Int), _ group: String, _ summary: String) {
            table[name] = CommandSpec(name: name, arity: arity, flags: flags, firstKey: keys.0, lastKey: keys.1, step: keys.2, group: group, summary: summary)
        }
        let none = (0, 0, 0), one = (1, 1, 1), all = (1, -1, 1)
        // connection and server
        add("ping", -1, [.fast, .stale, .loading], none, "connection", "Returns the server's liveliness response.")
        add("echo", 2, [.fast, .stale, .loading], none, "connection", "Returns the given string.")
        add("hello", -1, [.fast, .noAuth, .stale, .loading, .noscript], none, "connection", "Handshakes with the server.")
        add("auth", -2, [.fast, .noAuth, .stale, .loading, .noscript], none, "connection", "Authenticates the connection.")
        add("select", 2, [.fast, .stale, .loading], none, "connection", "Changes the selected database (0 to 15).")
        add("client", -2, [.stale, .loading], none, "connection", "A container for client connection commands.")
        add("quit", -1, [.fast, .noAuth, .stale, .loading, .transactionControl], none, "connection", "Closes the connection.")
        add("reset", 1, [.fast, .noAuth, .stale, .loading, .transactionControl], none, "connection", "Resets the connection.")
        add("cluster", -2, [.stale, .loading], none, "cluster", "A container for Redis Cluster commands: the site's slot map.")
        add("readonly", 1, [.fast, .stale, .loading], none, "cluster", "Accepted for cluster clients; reads still run on the primary.")
        add("readwrite", 1, [.fast, .stale, .loading], none, "cluster", "Accepted for cluster clients.")
        add("asking", 1, [.fast], none, "cluster", "Accepted for cluster clients; never needed (no ASK redirects).")
        add("command", -1, [.stale, .loading], none, "server", "Returns detailed information about all commands.")
        add("info", -1, [.stale, .loading], none, "server", "Returns information and statistics about the server.")
        add("config", -2, [.admin, .stale, .loading], none, "server", "A container for server configuration commands.")
        add("dbsize", 1, [.readonly, .fast], none, "server", "Returns the number of keys in the database.")
        add("flushdb", -1, [.write], none, "server", "Removes all keys from the current database.")
        add("flushall", -1, [.write], none, "server", "Removes all keys from all databases.")
        add("swapdb", 3, [.write, .fast], none, "server", "Not supported: each database is replicated and federated on its own.")
        add("time", 1, [.fast, .stale, .loading], none, "server", "Returns the server time.")
        // strings
        add("get", 2, [.readonly, .fast], one, "string", "Returns the string value of a key.")
        add("set", -3, [.write, .denyOOM], one, "string", "Sets the string value of a key, ignoring its type.")
        add("setex", 4, [.write, .denyOOM], one, "string", "Sets the string value and expiration time of a key.")
        add("psetex", 4, [.write, .denyOOM], one, "string", "Sets the string value and expiration time in milliseconds.")
        add("setnx", 3, [.write, .denyOOM, .fast], one, "string", "Sets the string value of a key only when it doesn't exist.")
        add("getdel", 2, [.write, .fast], one, "string", "Returns the string value of a key after deleting the key.")
        add("getset", 3, [.write, .denyOOM, .fast], one, "string", "Returns the previous string value of a key after setting it to a new value.")
        add("getex", -2, [.write, .fast], one, "string", "Returns the string value of a key after setting its expiration time.")
        add("mget", -2, [.readonly, .fast], all, "string", "Atomically returns the string values of one or more keys.")
        add("mset", -3, [.write, .denyOOM], (1, -1, 2), "string", "Atomically creates or modifies the string values of keys.")
        add("msetnx", -3, [.write, .denyOOM], (1, -1, 2), "string", "Sets the values of keys only when none of them exist.")
        add("append", 3, [.write, .denyOOM, .fast], one, "string", "Appends a string to the value of a key.")
        add("strlen", 2, [.readonly, .fast], one, "string", "Returns the length of a string value.")
        add("incr", 2, [.write, .denyOOM, .fast], one, "string", "Increments the integer value of a key by one.")
        add("incrby", 3, [.write, .denyOOM, .fast], one, "string", "Increments the integer value of a key by a number.")
        add("decr", 2, [.write, .denyOOM, .fast], one, "string", "Decrements the integer value of a key by one.")
        add("decrby", 3, [.write, .denyOOM, .fast], one, "string", "Decrements a number from the integer value of a key.")
        // keys
        add("del", -2, [.write], all, "generic", "Deletes one or more keys.")
        add("unlink", -2, [.write, .fast], all, "generic", "Deletes one or more keys.")
        add("exists", -2, [.readonly, .fast], all, "generic", "Determines whether one or more keys exist.")
        add("type", 2, [.readonly, .fast], one, "generic", "Determines the type of value stored at a key.")
        add("expire", -3, [.write, .fast], one, "generic", "Sets the expiration time of a key in seconds.")
        add("pexpire", -3, [.write, .fast], one, "generic", "Sets the expiration time of a key in milliseconds.")
        add("expireat", -3, [.write, .fast], one, "generic", "Sets the expiration time of a key to a Unix timestamp.")
        add("pexpireat", -3, [.write, .fast], one, "generic", "Sets the expiration time of a key to a Unix milliseconds timestamp.")
        add("persist", 2, [.write, .fast], one, "generic", "Removes the expiration time of a key.")
        add("ttl", 2, [.readonly, .fast], one, "generic", "Returns the expiration time in seconds of a key.")
        add("pttl", 2, [.readonly, .fast], one, "generic", "Returns the expiration time in milliseconds of a key.")
        add("expiretime", 2, [.readonly, .fast], one, "generic", "Returns the expiration time of a key as a Unix timestamp.")
        add("pexpiretime", 2, [.readonly, .fast], one, "generic", "Returns the expiration time of a key as a Unix milliseconds timestamp.")
        add("rename", 3, [.write], (1, 2, 1), "generic", "Renames a key and overwrites the destination.")
        add("renamenx", 3, [.write, .fast], (1, 2, 1), "generic", "Renames a key only when the target key name doesn't exist.")
        add("move", 3, [.write, .fast], one, "generic", "Not supported: each database is replicated and federated on its own.")
        add("scan", -2, [.readonly], none, "generic", "Iterates over the key names in the database.")
        add("keys", 2, [.readonly], none, "generic", "Returns all key names that match a pattern.")
        // hashes
        add("hset", -4, [.write, .denyOOM, .fast], one, "hash", "Creates or modifies the value of a field in a hash.")
        add("hmset", -4, [.write, .denyOOM, .fast], one, "hash", "Sets the values of multiple fields.")
        add("hsetnx", 4, [.write, .denyOOM, .fast], one, "hash", "Sets the value of a field in a hash only when the field doesn't exist.")
        add("hget", 3, [.readonly, .fast], one, "hash", "Returns the value of a field in a hash.")
        add("hmget", -3, [.readonly, .fast], one, "hash", "Returns the values of all fields in a hash.")
        add("hgetall", 2, [.readonly], one, "hash", "Returns all fields and values in a hash.")
        add("hdel", -3, [.write, .fast], one, "hash", "Deletes one or more fields and their values from a hash.")
        add("hexists", 3, [.readonly, .fast], one, "hash", "Determines whether a field exists in a hash.")
        add("hlen", 2, [.readonly, .fast], one, "hash", "Returns the number of fields in a hash.")
        add("hkeys", 2, [.readonly], one, "hash", "Returns all fields in a hash.")
        add("hvals", 2, [.readonly], one, "hash", "Returns all values in a hash.")
        add("hstrlen", 3, [.readonly, .fast], one, "hash", "Returns the length of the value of a field.")
        add("hincrby", 4, [.write, .denyOOM, .fast], one, "hash", "Increments the integer value of a field in a hash by a number.")
        add("hscan", -3, [.readonly], one, "hash", "Iterates over fields and values of a hash.")
        // sets
        add("sadd", -3, [.write, .denyOOM, .fast], one, "set", "Adds one or more members to a set.")
        add("srem", -3, [.write, .fast], one, "set", "Removes one or more members from a set.")
        add("smembers", 2, [.readonly], one, "set", "Returns all members of a set.")
        add("sismember", 3, [.readonly, .fast], one, "set", "Determines whether a member belongs to a set.")
        add("smismember", -3, [.readonly, .fast], one, "set", "Determines whether multiple members belong to a set.")
        add("scard", 2, [.readonly, .fast], one, "set", "Returns the number of members in a set.")
        add("sscan", -3, [.readonly], one, "set", "Iterates over members of a set.")
        // sorted sets
        add("zadd", -4, [.write, .denyOOM, .fast], one, "sortedset", "Adds one or more members to a sorted set, or updates their scores.")
        add("zincrby", 4, [.write, .denyOOM, .fast], one, "sortedset", "Increments the score of a member in a sorted set.")
        add("zrem", -3, [.write, .fast], one, "sortedset", "Removes one or more members from a sorted set.")
        add("zcard", 2, [.readonly, .fast], one, "sortedset", "Returns the number of members in a sorted set.")
        add("zscore", 3, [.readonly, .fast], one, "sortedset", "Returns the score of a member in a sorted set.")
        add("zrank", 3, [.readonly, .fast], one, "sortedset", "Returns the index of a member in a sorted set ordered by ascending scores.")
        add("zrevrank", 3, [.readonly, .fast], one, "sortedset", "Returns the index of a member in a sorted set ordered by descending scores.")
        add("zcount", 4, [.readonly, .fast], one, "sortedset", "Returns the count of members in a sorted set that have scores within a range.")
        add("zremrangebyscore", 4, [.write], one, "sortedset", "Removes members in a sorted set within a range of scores.")
        add("zrange", -4, [.readonly], one, "sortedset", "Returns members in a sorted set within a range of indexes, scores or names.")
        add("zrangestore", -5, [.write, .denyOOM], (1, 2, 1), "sortedset", "Stores a range of members from a sorted set in a key.")
        add("zrevrange", -4, [.readonly], one, "sortedset", "Returns members in a sorted set within a range of indexes, highest score first.")
        add("zrangebyscore", -4, [.readonly], one, "sortedset", "Returns members in a sorted set within a range of scores.")
        add("zrevrangebyscore", -4, [.readonly], one, "sortedset", "Returns members in a sorted set within a range of scores, highest first.")
        add("zrangebylex", -4, [.readonly], one, "sortedset", "Returns members in a sorted set within a lexicographical range.")
        add("zrevrangebylex", -4, [.readonly], one, "sortedset", "Returns members in a sorted set within a lexicographical range, in reverse order.")
        // transactions
        add("multi", 1, [.fast, .noscript, .loading, .stale, .transactionControl], none, "transactions", "Starts a transaction.")
        add("exec", 1, [.noscript, .loading, .stale, .transactionControl], none, "transactions", "Executes all commands in a transaction.")
        add("discard", 1, [.fast, .noscript, .loading, .stale, .transactionControl], none, "transactions", "Discards a transaction.")
        add("watch", -2, [.fast, .noscript, .loading, .stale, .transactionControl], all, "transactions", "Monitors changes to keys to determine the execution of a transaction.")
        add("unwatch", 1, [.fast, .noscript, .loading, .stale], none, "transactions", "Forgets about watched keys of a transaction.")
        // pub/sub
        add("subscribe", -2, [.pubsub, .noscript, .loading, .stale], none, "pubsub", "Listens for messages published to channels.")
        add("psubscribe", -2, [.pubsub, .noscript, .loading, .stale], none, "pubsub", "Listens for messages published to channels that match patterns.")
        add("unsubscribe", -1, [.pubsub, .noscript, .loading, .stale], none, "pubsub", "Stops listening to messages posted to channels.")
        add("punsubscribe", -1, [.pubsub, .noscript, .loading, .stale], none, "pubsub", "Stops listening to messages published to channels that match patterns.")
        add("publish", 3, [.pubsub, .loading, .stale, .fast], none, "pubsub", "Posts a message to a channel.")
        add("pubsub", -2, [.pubsub, .loading, .stale], none, "pubsub", "A container for Pub/Sub commands.")
        // scripting: phpredis's lock release runs natively (LockReleaseScript); others are refused
        add("eval", -3, [.write, .noscript], (3, 3, 1), "scripting", "Runs phpredis's session-lock release natively; refuses any other script.")
        add("evalsha", -3, [.write, .noscript], (3, 3, 1), "scripting", "Runs phpredis's session-lock release natively; NOSCRIPT for any other script.")
        add("script", -2, [.noscript], none, "scripting", "Not supported: sessionfed does not run Lua scripts.")
        return table
    }()

    public static func spec(for name: String) -> CommandSpec? {
        all[name]
    }

    /// COMMAND INFO's reply for one command (Redis 7 layout, without key specs).
    public static func info(_ spec: CommandSpec) -> RESPValue {
        .array([
            .bulk(spec.name), .integer(Int64(spec.arity)), .set(spec.flags.names.map { .simpleString($0) }),
            .integer(Int64(spec.firstKey)), .integer(Int64(spec.lastKey)), .integer(Int64(spec.step)),
            .set([.simpleString("@\(spec.group)")]), .set([]), .array([]), .array([]),
        ])
    }

    /// COMMAND DOCS's reply for one command.
    public static func docs(_ spec: CommandSpec) -> RESPValue {
        .map([
            RESPPair(.bulk("summary"), .bulk(spec.summary)),
            RESPPair(.bulk("since"), .bulk("1.0.0")),
            RESPPair(.bulk("group"), .bulk(spec.group)),
        ])
    }
}
