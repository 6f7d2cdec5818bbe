import Keyspace
import RESP

/// Per-connection state a command can change: protocol, authentication, selected database,
/// transaction, watches and subscriptions.
struct ClientSession {
    var protocolVersion: RESPVersion = .v2
    /// SELECT's database (0–15): the connection stores its keys under `DatabaseKeys` names.
    var database = 0
    var authenticated = true
    var user = "default"
    /// Commands queued since MULTI; nil outside a transaction.
    var queuedCommands: [[[UInt8]]]?
    /// A queued command was refused (unknown, wrong arity): EXEC must abort.
    var transactionFailed = false
    /// Keys under WATCH with what they were then.
    var watchedKeys: [Watch] = []
    var channelCount = 0
    var patternCount = 0

    var isSubscribed: Bool { channelCount + patternCount > 0 }

    /// A key under WATCH: alone in its site, the revision of this node's copy; on a site of
    /// several nodes, the version its partition's primary held.
    enum Watch {
        case revision(key: [UInt8], UInt64)
        case version(key: [UInt8], Keyspace.WatchVersion?)

        var key: [UInt8] {
            switch self {
            case .revision(let key, _), .version(let key, _): return key
            }
        }

        /// Whether the key changed since, as `keyspace` (the primary's copy, or the locked
        /// states of a transaction) holds it.
        func changed(in keyspace: Keyspace, now: UInt64) -> Bool {
            switch self {
            case .revision(let key, let revision): return keyspace.revision(of: key, now: now) != revision
            case .version(let key, let version): return keyspace.watchVersion(of: key, now: now) != version
            }
        }
    }

    mutating func markTransactionFailed() {
        if queuedCommands != nil { transactionFailed = true }
    }
}
