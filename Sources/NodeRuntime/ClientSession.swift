import RESP

/// Per-connection state a command can change: protocol, authentication, transaction, watches
/// and subscriptions.
struct ClientSession {
    var protocolVersion: RESPVersion = .v2
    var authenticated = true
    var user = "default"
    /// Commands queued since MULTI; nil outside a transaction.
    var queuedCommands: [[[UInt8]]]?
    /// A queued command was refused (unknown, wrong arity): EXEC must abort.
    var transactionFailed = false
    /// Keys under WATCH with the revision they had then.
    var watchedKeys: [(key: [UInt8], revision: UInt64)] = []
    var channelCount = 0
    var patternCount = 0

    var isSubscribed: Bool { channelCount + patternCount > 0 }

    mutating func markTransactionFailed() {
        if queuedCommands != nil { transactionFailed = true }
    }
}
