import RESP
import SessionModel

extension Keyspace {
    /// Runs one data command. `arguments[0]` is the command name; arity was checked by the
    /// command table. Returns nil for a command this keyspace does not implement.
    /// Keys are stored names (`DatabaseKeys`); `database` is the one the keyless commands
    /// (KEYS, SCAN, DBSIZE, FLUSHDB) list, count or clear, in its own key names.
    public mutating func execute(_ arguments: [[UInt8]], now: UInt64, database: Int = 0) -> CommandResult? {
        execute(arguments, name: String(decoding: arguments[0], as: UTF8.self).lowercased(), now: now, database: database)
    }

    /// Runs a data command whose lowercase name the caller already has.
    public mutating func execute(_ arguments: [[UInt8]], name: String, now: UInt64, database: Int = 0) -> CommandResult? {
        guard let command = DataCommand(name: name) else { return nil }
        return execute(arguments, command: command, now: now, database: database)
    }

    /// Runs a data command the caller resolved (a connection resolves a repeated name once:
    /// matching it against every name here cost about a twentieth of an HSET).
    public mutating func execute(_ arguments: [[UInt8]], command: DataCommand, now: UInt64, database: Int = 0) -> CommandResult {
        precondition(DatabaseKeys.isValid(database), "database \(database) outside the range SELECT accepts")
        var context = CommandContext(arguments: arguments, name: command.rawValue, now: now, database: database)
        let reply: RESPValue
        switch command {
        case .get: reply = get(&context)
        case .set: reply = set(&context)
        case .setex: reply = setWithExpiry(&context, unitMilliseconds: 1_000)
        case .psetex: reply = setWithExpiry(&context, unitMilliseconds: 1)
        case .setnx: reply = setnx(&context)
        case .getdel: reply = getdel(&context)
        case .getset: reply = getset(&context)
        case .eval, .evalsha: reply = releaseLock(&context)
        case .getex: reply = getex(&context)
        case .mget: reply = mget(&context)
        case .mset: reply = mset(&context, onlyIfNoneExist: false)
        case .msetnx: reply = mset(&context, onlyIfNoneExist: true)
        case .append: reply = append(&context)
        case .strlen: reply = strlen(&context)
        case .incr: reply = increment(&context, by: 1)
        case .decr: reply = increment(&context, by: -1)
        case .incrby, .decrby:
            guard let amount = parseRedisInteger(arguments[2]) else { reply = RedisError.notInteger; break }
            if command == .decrby {
                guard amount != Int64.min else { reply = RedisError.overflow; break }
                reply = increment(&context, by: -amount)
            } else {
                reply = increment(&context, by: amount)
            }
        case .del, .unlink: reply = delete(&context)
        case .exists: reply = exists(&context)
        case .type: reply = type(&context)
        case .expire: reply = expire(&context, unitMilliseconds: 1_000, absolute: false)
        case .pexpire: reply = expire(&context, unitMilliseconds: 1, absolute: false)
        case .expireat: reply = expire(&context, unitMilliseconds: 1_000, absolute: true)
        case .pexpireat: reply = expire(&context, unitMilliseconds: 1, absolute: true)
        case .persist: reply = persist(&context)
        case .ttl: reply = ttl(&context, unitMilliseconds: 1_000, absolute: false)
        case .pttl: reply = ttl(&context, unitMilliseconds: 1, absolute: false)
        case .expiretime: reply = ttl(&context, unitMilliseconds: 1_000, absolute: true)
        case .pexpiretime: reply = ttl(&context, unitMilliseconds: 1, absolute: true)
        case .rename: reply = rename(&context, onlyIfDestinationMissing: false)
        case .renamenx: reply = rename(&context, onlyIfDestinationMissing: true)
        case .scan: reply = scan(&context)
        case .keys: reply = keysMatching(&context)
        case .dbsize: reply = .integer(Int64(count(now: now, database: database)))
        case .flushdb: reply = flush(&context, database: database)
        case .flushall: reply = flush(&context, database: nil)
        case .hset, .hmset: reply = hset(&context)
        case .hsetnx: reply = hsetnx(&context)
        case .hget: reply = hget(&context)
        case .hmget: reply = hmget(&context)
        case .hgetall: reply = hgetall(&context)
        case .hdel: reply = hdel(&context)
        case .hexists: reply = hexists(&context)
        case .hlen: reply = hlen(&context)
        case .hkeys: reply = hkeys(&context, values: false)
        case .hvals: reply = hkeys(&context, values: true)
        case .hstrlen: reply = hstrlen(&context)
        case .hincrby: reply = hincrby(&context)
        case .hscan: reply = collectionScan(&context, type: .hash)
        case .sadd: reply = sadd(&context)
        case .srem: reply = srem(&context)
        case .smembers: reply = smembers(&context)
        case .sismember: reply = sismember(&context)
        case .smismember: reply = smismember(&context)
        case .scard: reply = scard(&context)
        case .sscan: reply = collectionScan(&context, type: .set)
        case .zadd: reply = zadd(&context, alwaysIncrement: false)
        case .zincrby: reply = zadd(&context, alwaysIncrement: true)
        case .zrem: reply = zrem(&context)
        case .zcard: reply = zcard(&context)
        case .zscore: reply = zscore(&context)
        case .zrank: reply = zrank(&context, reverse: false)
        case .zrevrank: reply = zrank(&context, reverse: true)
        case .zcount: reply = zcount(&context)
        case .zremrangebyscore: reply = zremrangebyscore(&context)
        case .zrange: reply = zrange(&context, store: false, kind: nil, reverse: nil)
        case .zrangestore: reply = zrange(&context, store: true, kind: nil, reverse: nil)
        case .zrevrange: reply = zrange(&context, store: false, kind: .rank, reverse: true)
        case .zrangebyscore: reply = zrange(&context, store: false, kind: .score, reverse: false)
        case .zrevrangebyscore: reply = zrange(&context, store: false, kind: .score, reverse: true)
        case .zrangebylex: reply = zrange(&context, store: false, kind: .lex, reverse: false)
        case .zrevrangebylex: reply = zrange(&context, store: false, kind: .lex, reverse: true)
        }
        return CommandResult(reply: reply, deltas: context.deltas, events: context.events)
    }

    /// Whether `name` (lowercase) is a data command this keyspace runs.
    public static func isDataCommand(_ name: String) -> Bool {
        DataCommand(name: name) != nil
    }

    // MARK: Shared steps

    /// Records a write's delta and events.
    mutating func apply(
        _ key: [UInt8], _ write: KeyWrite, _ context: inout CommandContext, event: String, eventClass: KeyspaceEvent.EventClass, at found: KeyIndex? = nil
    ) -> Bool {
        guard let delta = self.write(key, write, now: context.now, at: found) else { return false }
        context.deltas.append(delta)
        context.events.append(KeyspaceEvent(event, key: key, eventClass: eventClass))
        return true
    }

    /// The value of `key` if it is of `type` (nil when missing); `.failure` for another type.
    mutating func value(_ key: [UInt8], as type: KeyType, _ context: inout CommandContext) -> Result<KeyValue?, WrongType> {
        guard let value = lookup(key, now: context.now, events: &context.events) else { return .success(nil) }
        guard value.type == type else { return .failure(WrongType()) }
        return .success(value)
    }

    /// The state of `key` when it is a visible `type` (nil: missing), without reading its
    /// whole value: a command on one field or member costs what it touches.
    mutating func collection(_ key: [UInt8], as type: KeyType, _ context: inout CommandContext) -> Result<KeyState?, WrongType> {
        guard let visible = self.type(of: key, now: context.now, events: &context.events) else { return .success(nil) }
        guard visible == type else { return .failure(WrongType()) }
        return .success(state(of: key))
    }

    struct WrongType: Error {}

    /// Counts a read as a keyspace hit or miss (INFO stats).
    mutating func countRead(found: Bool) {
        if found { statistics.keyspaceHits += 1 } else { statistics.keyspaceMisses += 1 }
    }
}

/// The command being run: its arguments, the time, and what it produced so far.
struct CommandContext {
    let arguments: [[UInt8]]
    let now: UInt64
    let name: String
    /// The client's database, for the keyless commands.
    let database: Int
    var deltas: [Delta] = []
    var events: [KeyspaceEvent] = []

    init(arguments: [[UInt8]], name: String, now: UInt64, database: Int = 0) {
        self.arguments = arguments
        self.now = now
        self.name = name
        self.database = database
    }

    /// Argument `index` as an uppercase option word.
    func option(_ index: Int) -> String {
        String(decoding: arguments[index], as: UTF8.self).uppercased()
    }
}

/// The commands the keyspace runs (`Keyspace.execute`), by their lowercase names.
public enum DataCommand: String, Sendable, CaseIterable {
    case get, set, setex, psetex, setnx, getdel, getset, eval, evalsha, getex, mget, mset, msetnx, append, strlen
    case incr, decr, incrby, decrby
    case del, unlink, exists, type, expire, pexpire, expireat, pexpireat, persist, ttl, pttl, expiretime, pexpiretime
    case rename, renamenx, scan, keys, dbsize, flushdb, flushall
    case hset, hmset, hsetnx, hget, hmget, hgetall, hdel, hexists, hlen, hkeys, hvals, hstrlen, hincrby, hscan
    case sadd, srem, smembers, sismember, smismember, scard, sscan
    case zadd, zincrby, zrem, zcard, zscore, zrank, zrevrank, zcount, zremrangebyscore, zrange, zrangestore, zrevrange
    case zrangebyscore, zrevrangebyscore, zrangebylex, zrevrangebylex

    /// One hash lookup (`init(rawValue:)` compares the name with each case in turn).
    public init?(name: String) {
        guard let command = Self.byName[name] else { return nil }
        self = command
    }

    private static let byName = Dictionary(uniqueKeysWithValues: allCases.map { ($0.rawValue, $0) })
}
