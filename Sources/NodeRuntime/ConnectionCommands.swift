import Keyspace
import NIOCore
import RESP

/// Connection, transaction and pub/sub commands (https://redis.io/docs/latest/commands/).
extension ClientConnection {
    func ping(_ arguments: [[UInt8]]) {
        guard arguments.count <= 2 else {
            reply(RedisError.wrongArity("ping"))
            return
        }
        if session.isSubscribed && session.protocolVersion == .v2 {
            reply(.array([.bulk("pong"), .bulkString(arguments.count == 2 ? arguments[1] : [])]))
        } else if arguments.count == 2 {
            reply(.bulkString(arguments[1]))
        } else {
            reply(.simpleString("PONG"))
        }
    }

    /// HELLO [protover [AUTH username password] [SETNAME clientname]]
    func hello(_ arguments: [[UInt8]]) {
        var version = session.protocolVersion
        if arguments.count >= 2 {
            guard let requested = parseRedisInteger(arguments[1]) else {
                reply(.error("ERR Protocol version is not an integer or out of range"))
                return
            }
            guard let supported = RESPVersion(rawValue: Int(requested)) else {
                reply(.error("NOPROTO unsupported protocol version"))
                return
            }
            version = supported
        }
        var index = 2
        var newName: [UInt8]?
        var credentials: (user: String, password: String)?
        while index < arguments.count {
            let option = String(decoding: arguments[index], as: UTF8.self).uppercased()
            if option == "AUTH", index + 2 < arguments.count {
                credentials = (String(decoding: arguments[index + 1], as: UTF8.self), String(decoding: arguments[index + 2], as: UTF8.self))
                index += 3
            } else if option == "SETNAME", index + 1 < arguments.count {
                newName = arguments[index + 1]
                index += 2
            } else {
                reply(.error("ERR Syntax error in HELLO option '\(String(decoding: arguments[index], as: UTF8.self))'"))
                return
            }
        }
        if let credentials {
            guard check(user: credentials.user, password: credentials.password) else {
                reply(.error("WRONGPASS invalid username-password pair or user is disabled."))
                return
            }
            session.authenticated = true
            session.user = credentials.user
        }
        guard session.authenticated else {
            reply(.error("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time"))
            return
        }
        if let newName {
            guard validClientName(newName) else {
                reply(.error("ERR Client names cannot contain spaces, newlines or special characters."))
                return
            }
            state.clients[clientID]?.name = newName.isEmpty ? nil : newName
        }
        session.protocolVersion = version
        state.clients[clientID]?.protocolVersion = version
        reply(.map([
            RESPPair(.bulk("server"), .bulk("redis")),
            RESPPair(.bulk("version"), .bulk(ServerIdentity.redisCompatibleVersion)),
            RESPPair(.bulk("proto"), .integer(Int64(version.rawValue))),
            RESPPair(.bulk("id"), .integer(Int64(clientID))),
            RESPPair(.bulk("mode"), .bulk("standalone")),
            RESPPair(.bulk("role"), .bulk("master")),
            RESPPair(.bulk("modules"), .array([])),
        ]))
    }

    /// AUTH [username] password, with Redis's replies.
    func auth(_ arguments: [[UInt8]]) {
        guard arguments.count <= 3 else {
            reply(RedisError.syntax)
            return
        }
        let user = arguments.count == 3 ? String(decoding: arguments[1], as: UTF8.self) : "default"
        let password = String(decoding: arguments[arguments.count - 1], as: UTF8.self)
        if arguments.count == 2 && !state.requiresAuthentication {
            reply(.error("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"))
            return
        }
        guard check(user: user, password: password) else {
            reply(.error("WRONGPASS invalid username-password pair or user is disabled."))
            return
        }
        session.authenticated = true
        session.user = user
        reply(.ok)
    }

    /// The default user has `auth.password` (none: no password needed); named users come from
    /// `auth.users`.
    func check(user: String, password: String) -> Bool {
        let auth = state.configuration.topology.auth
        if user == "default" {
            guard let expected = auth?.password else { return true }
            return constantTimeEquals(expected, password)
        }
        guard let expected = auth?.users[user] else { return false }
        return constantTimeEquals(expected, password)
    }

    func constantTimeEquals(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        var difference = UInt8(x.count == y.count ? 0 : 1)
        for index in 0..<max(x.count, y.count) {
            difference |= (index < x.count ? x[index] : 0) ^ (index < y.count ? y[index] : 0)
        }
        return difference == 0
    }

    /// SELECT index: 0–15, each database its own keyspace (`DatabaseKeys`).
    func select(_ arguments: [[UInt8]]) {
        guard parseRedisInteger(arguments[1]) != nil else {
            reply(RedisError.notInteger)
            return
        }
        guard let database = Self.database(arguments) else {
            reply(.error("ERR DB index is out of range"))
            return
        }
        session.database = database
        state.clients[clientID]?.database = database
        reply(.ok)
    }

    /// The database a SELECT names, if it is one a client may select.
    static func database(_ arguments: [[UInt8]]) -> Int? {
        guard arguments.count == 2, let index = parseRedisInteger(arguments[1]), index >= 0, index < DatabaseKeys.count else { return nil }
        return Int(index)
    }

    func validClientName(_ name: [UInt8]) -> Bool {
        name.allSatisfy { $0 > 32 && $0 < 127 }
    }

    func client(_ arguments: [[UInt8]]) {
        let sub = String(decoding: arguments[1], as: UTF8.self).uppercased()
        switch (sub, arguments.count) {
        case ("SETNAME", 3):
            guard validClientName(arguments[2]) else {
                reply(.error("ERR Client names cannot contain spaces, newlines or special characters."))
                return
            }
            state.clients[clientID]?.name = arguments[2].isEmpty ? nil : arguments[2]
            reply(.ok)
        case ("GETNAME", 2):
            reply(.bulkOrNull(state.clients[clientID]?.name))
        case ("SETINFO", 4):
            let attribute = String(decoding: arguments[2], as: UTF8.self).uppercased()
            let value = String(decoding: arguments[3], as: UTF8.self)
            guard value.utf8.allSatisfy({ $0 > 32 && $0 < 127 }) || value.isEmpty else {
                reply(.error("ERR \(attribute.lowercased()) cannot contain spaces, newlines or special characters."))
                return
            }
            switch attribute {
            case "LIB-NAME": state.clients[clientID]?.libraryName = value
            case "LIB-VER": state.clients[clientID]?.libraryVersion = value
            default:
                reply(.error("ERR Unrecognized option '\(String(decoding: arguments[2], as: UTF8.self))'"))
                return
            }
            reply(.ok)
        case ("ID", 2):
            reply(.integer(Int64(clientID)))
        case ("LIST", _):
            let lines = state.clients.keys.sorted().compactMap { state.clients[$0].map(clientLine) }
            reply(.verbatim(format: "txt", text: Array(lines.map { $0 + "\n" }.joined().utf8)))
        case ("INFO", 2):
            let line = state.clients[clientID].map(clientLine) ?? ""
            reply(.verbatim(format: "txt", text: Array((line + "\n").utf8)))
        case ("NO-EVICT", 3), ("NO-TOUCH", 3):
            reply(.ok)
        case ("HELP", 2):
            reply(.array(["CLIENT <subcommand> [<arg> ...]. Subcommands are:", "GETNAME", "ID", "INFO", "LIST", "SETINFO <LIB-NAME|LIB-VER> <value>", "SETNAME <name>"].map { .simpleString($0) }))
        default:
            reply(RedisError.unknownSubcommand(arguments[1], of: "client"))
        }
    }

    func clientLine(_ record: ClientRecord) -> String {
        let now = WallClock.nowMilliseconds()
        let name = record.name.map { String(decoding: $0, as: UTF8.self) } ?? ""
        let flags = record.channels.isEmpty && record.patterns.isEmpty ? "N" : "P"
        return "id=\(record.id) addr=\(record.remoteAddress) laddr=\(record.localAddress) fd=-1 name=\(name) "
            + "age=\((now - record.connectedAt) / 1_000) idle=\((now - record.lastActivity) / 1_000) flags=\(flags) db=\(record.database) "
            + "sub=\(record.channels.count) psub=\(record.patterns.count) ssub=0 multi=-1 cmd=\(record.lastCommand) "
            + "user=default lib-name=\(record.libraryName ?? "") lib-ver=\(record.libraryVersion ?? "") resp=\(record.protocolVersion.rawValue) io-thread=\(record.ioThread)"
    }

    func reset() {
        for channel in state.clients[clientID]?.channels ?? [] { state.channelSubscribers[channel]?.remove(clientID) }
        for pattern in state.clients[clientID]?.patterns ?? [] { state.patternSubscribers[pattern]?.remove(clientID) }
        state.clients[clientID]?.channels = []
        state.clients[clientID]?.patterns = []
        state.clients[clientID]?.name = nil
        state.clients[clientID]?.protocolVersion = .v2
        state.clients[clientID]?.database = 0
        session = ClientSession()
        session.authenticated = !state.requiresAuthentication
        state.dataPlane?.subscribersChanged()
        reply(.simpleString("RESET"))
    }

    func command(_ arguments: [[UInt8]]) {
        guard arguments.count >= 2 else {
            reply(.array(CommandTable.all.keys.sorted().compactMap { CommandTable.spec(for: $0).map(CommandTable.info) }))
            return
        }
        let sub = String(decoding: arguments[1], as: UTF8.self).uppercased()
        let names = arguments.dropFirst(2).map { String(decoding: $0, as: UTF8.self).lowercased() }
        switch sub {
        case "COUNT":
            reply(.integer(Int64(CommandTable.all.count)))
        case "INFO":
            let selected = names.isEmpty ? CommandTable.all.keys.sorted() : names
            reply(.array(selected.map { CommandTable.spec(for: $0).map(CommandTable.info) ?? .nullArray }))
        case "DOCS":
            let selected = names.isEmpty ? CommandTable.all.keys.sorted() : names
            reply(.map(selected.compactMap { name in CommandTable.spec(for: name).map { RESPPair(.bulk(name), CommandTable.docs($0)) } }))
        case "LIST":
            reply(.array(CommandTable.all.keys.sorted().map { .bulk($0) }))
        case "GETKEYS":
            let inner = Array(arguments.dropFirst(2))
            guard let first = inner.first, let spec = CommandTable.spec(for: String(decoding: first, as: UTF8.self).lowercased()) else {
                reply(.error("ERR Invalid command specified"))
                return
            }
            reply(.array(spec.keys(in: inner).map(RESPValue.bulkString)))
        default:
            reply(RedisError.unknownSubcommand(arguments[1], of: "command"))
        }
    }

    // MARK: Transactions

    func multi() {
        guard session.queuedCommands == nil else {
            reply(.error("ERR MULTI calls can not be nested"))
            return
        }
        session.queuedCommands = []
        session.transactionFailed = false
        reply(.ok)
    }

    func discard() {
        guard session.queuedCommands != nil else {
            reply(.error("ERR DISCARD without MULTI"))
            return
        }
        session.queuedCommands = nil
        session.watchedKeys = []
        reply(.ok)
    }

    func exec() {
        guard let queued = session.queuedCommands else {
            reply(.error("ERR EXEC without MULTI"))
            return
        }
        session.queuedCommands = nil
        let watches = session.watchedKeys
        defer { session.watchedKeys = [] }
        if session.transactionFailed {
            session.transactionFailed = false
            reply(.error("EXECABORT Transaction discarded because of previous errors."))
            return
        }
        if let dataPlane = state.dataPlane {
            // The watched keys are part of the transaction: checked where, and while, it runs.
            switch placement(of: queued, watching: watches.map(\.key), dataPlane: dataPlane) {
            case .refused(let error):
                reply(error)
                return
            case .acrossNodes(let keys):
                execAcrossNodes(queued, keys: keys, watches: watches, dataPlane: dataPlane)
                return
            case .here:
                break
            }
        }
        let now = WallClock.nowMilliseconds()
        if watches.contains(where: { $0.changed(in: state.keyspace, now: now) }) {
            reply(.nullArray)
            return
        }
        // Every queued command runs now, back to back on this event loop: nothing interleaves.
        capturedReplies = []
        transactionWaits = []
        for arguments in queued {
            let name = String(decoding: arguments[0], as: UTF8.self).lowercased()
            guard let spec = CommandTable.spec(for: name) else { continue }
            state.statistics.commands.count(name)
            run(name, spec, arguments)
        }
        let replies = capturedReplies ?? []
        capturedReplies = nil
        guard let dataPlane = state.dataPlane, !transactionWaits.isEmpty else {
            reply(.array(replies))
            return
        }
        // On a site of several nodes the reply waits for the partitions' backups.
        suspended = true
        dataPlane.whenCommitted(transactionWaits, then: { self.resume(with: .value(.array(replies))) }, otherwise: { self.resume(with: .value($0)) })
        transactionWaits = []
    }

    func watch(_ arguments: [[UInt8]]) {
        guard session.queuedCommands == nil else {
            reply(.error("ERR WATCH inside MULTI is not allowed"))
            return
        }
        let keys = arguments.dropFirst().map { DatabaseKeys.stored($0, database: session.database) }
        guard let dataPlane = state.dataPlane else {
            let now = WallClock.nowMilliseconds()
            session.watchedKeys += keys.map { .revision(key: $0, state.keyspace.revision(of: $0, now: now)) }
            reply(.ok)
            return
        }
        // A site of several nodes: what the keys' primaries hold, read here when this node is
        // their primary, else from their locked states (a round trip, as WATCH is rare).
        let partitions = Set(keys.map(dataPlane.partitioning.partition(of:)))
        if dataPlane.actsAsPrimary(of: partitions, now: WallClock.monotonicMilliseconds()) && !dataPlane.isLocked(partitions) {
            let now = WallClock.nowMilliseconds()
            session.watchedKeys += keys.map { .version(key: $0, state.keyspace.watchVersion(of: $0, now: now)) }
            reply(.ok)
            return
        }
        suspended = true
        dataPlane.runAcrossNodes(keys: keys, body: { scratch, now in
            self.session.watchedKeys += keys.map { .version(key: $0, scratch.watchVersion(of: $0, now: now)) }
            return CommandResult(reply: .ok)
        }, done: { self.resume(with: .value($0)) })
    }

    // MARK: Pub/sub

    func subscribe(_ arguments: [[UInt8]], patterns: Bool) {
        for name in arguments.dropFirst() {
            if patterns {
                if state.clients[clientID]?.patterns.insert(name).inserted == true {
                    state.patternSubscribers[name, default: []].insert(clientID)
                    session.patternCount += 1
                }
            } else if state.clients[clientID]?.channels.insert(name).inserted == true {
                state.channelSubscribers[name, default: []].insert(clientID)
                session.channelCount += 1
            }
            reply(.push([.bulk(patterns ? "psubscribe" : "subscribe"), .bulkString(name), .integer(Int64(session.channelCount + session.patternCount))]))
        }
        state.dataPlane?.subscribersChanged()
    }

    func unsubscribe(_ arguments: [[UInt8]], patterns: Bool) {
        let kind = patterns ? "punsubscribe" : "unsubscribe"
        var names = Array(arguments.dropFirst())
        if names.isEmpty {
            names = Array(patterns ? state.clients[clientID]?.patterns ?? [] : state.clients[clientID]?.channels ?? []).sorted { $0.lexicographicallyPrecedes($1) }
            if names.isEmpty {
                reply(.push([.bulk(kind), .null, .integer(Int64(session.channelCount + session.patternCount))]))
                return
            }
        }
        for name in names {
            if patterns {
                if state.clients[clientID]?.patterns.remove(name) != nil {
                    state.patternSubscribers[name]?.remove(clientID)
                    if state.patternSubscribers[name]?.isEmpty == true { state.patternSubscribers[name] = nil }
                    session.patternCount -= 1
                }
            } else if state.clients[clientID]?.channels.remove(name) != nil {
                state.channelSubscribers[name]?.remove(clientID)
                if state.channelSubscribers[name]?.isEmpty == true { state.channelSubscribers[name] = nil }
                session.channelCount -= 1
            }
            reply(.push([.bulk(kind), .bulkString(name), .integer(Int64(session.channelCount + session.patternCount))]))
        }
        state.dataPlane?.subscribersChanged()
    }

    func pubsub(_ arguments: [[UInt8]]) {
        let sub = String(decoding: arguments[1], as: UTF8.self).uppercased()
        switch sub {
        case "CHANNELS":
            let pattern = arguments.count > 2 ? GlobPattern(arguments[2]) : nil
            let names = state.channelSubscribers.keys.filter { pattern?.matches($0) ?? true }.sorted { $0.lexicographicallyPrecedes($1) }
            reply(.array(names.map(RESPValue.bulkString)))
        case "NUMSUB":
            reply(.array(arguments.dropFirst(2).flatMap { [.bulkString($0), .integer(Int64(state.channelSubscribers[$0]?.count ?? 0))] }))
        case "NUMPAT":
            reply(.integer(Int64(state.patternSubscribers.count)))
        default:
            reply(RedisError.unknownSubcommand(arguments[1], of: "pubsub"))
        }
    }
}

/// What the server says it is.
public enum ServerIdentity {
    /// The Redis version whose commands and replies this server follows (clients gate
    /// features on it).
    public static let redisCompatibleVersion = "7.2.0"
    public static let version = "0.1.0"
}
