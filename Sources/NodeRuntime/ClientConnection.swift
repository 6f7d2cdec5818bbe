import Keyspace
import NIOCore
import RESP
import SessionModel
import Wire

/// One client connection as the node state sees it: runs the commands its
/// `ClientConnectionHandler` read, in order, and writes their replies. Pipelined commands that
/// arrive together are answered with one flush. In a site of several nodes a data command may
/// wait (for its partition's backups, or for the primary it was forwarded to): the commands
/// read after it wait too, so a client's replies never change order.
///
/// Confined to the node state's event loop, whichever loop carries the connection's socket
/// (`threads:`): that is why it is `@unchecked Sendable`. It writes through the `Channel`,
/// which hands the bytes to the socket's loop in the order they were written.
final class ClientConnection: @unchecked Sendable {
    let state: NodeState
    let channel: Channel
    /// Commands read and not run yet, from `pendingStart` on (a command before them waits).
    var pending: [[[UInt8]]] = []
    var pendingStart = 0
    /// Where each read's commands end in `pending`, and the input bytes they took: handed back
    /// to `queryBuffer` once the read's last command ran (from `batchStart` on: not yet).
    var batches: [(end: Int, bytes: Int)] = []
    var batchStart = 0
    /// The input after the pending commands was not RESP: answered, then the connection closes.
    var pendingProtocolError: String?
    /// The client's query buffer as Redis counts it: bytes read and not yet run, shared with
    /// the connection's handler, which closes the client when it grows past the limit.
    let queryBuffer: QueryBuffer
    var output: ByteBuffer?
    var session = ClientSession()
    var clientID: UInt64 = 0
    /// This connection's entry in CLIENT LIST's idle and cmd columns, updated in place.
    var activity: ClientActivity?
    var closing = false
    /// False once the socket closed: a reply that arrives later is not written.
    var open = true
    /// The client closed its side (it sends nothing more): the connection closes once every
    /// command it sent is answered, as Redis does on EOF.
    var inputEnded = false
    /// Inside EXEC: replies are collected into one array instead of written.
    var capturedReplies: [RESPValue]?
    /// The time of the command being run, read once per command.
    var now: UInt64 = 0
    let allocator = ByteBufferAllocator()
    /// A data command is waiting for its reply: no further command runs.
    var suspended = false
    /// Inside the run loop (a reply that arrives then needs no restart of it).
    var running = false
    /// Inside EXEC on a site of several nodes: the commits the transaction's reply waits for.
    var transactionWaits: [(partition: Int, sequence: UInt64)] = []

    /// The connection came in over TLS: CLUSTER SLOTS then gives the nodes' TLS ports.
    let overTLS: Bool
    /// CLIENT LIST's io-thread (`ClientRecord.ioThread`).
    let ioThread: Int

    init(state: NodeState, channel: Channel, queryBuffer: QueryBuffer, overTLS: Bool, ioThread: Int) {
        self.state = state
        self.channel = channel
        self.queryBuffer = queryBuffer
        self.overTLS = overTLS
        self.ioThread = ioThread
    }

    /// The socket is up: the client is registered, or refused when the node has `maxclients`.
    func activate() {
        if state.clients.count >= state.configuration.maximumClients {
            state.statistics.rejectedConnections += 1
            reply(.error("ERR max number of clients reached"))
            closeAfterReplies()
            return
        }
        clientID = state.registerClient(channel: channel, ioThread: ioThread)
        activity = state.clients[clientID]?.activity
        session.authenticated = !state.requiresAuthentication
    }

    func deactivate() {
        open = false
        if clientID != 0 { state.unregisterClient(clientID) }
    }

    /// The handler closed the client for a query buffer over the limit (Redis's
    /// client-query-buffer-limit: no reply).
    func exceededQueryBuffer() {
        state.statistics.protocolErrors += 1
        closing = true
    }

    /// Commands the handler read, in order, taking `bytes` of input; `protocolError` when the
    /// input after them was not RESP. Runs them, then writes the replies with one flush.
    /// `commands` comes back empty, its storage kept for the next read when that is possible.
    func receive(_ commands: inout [[[UInt8]]], bytes: Int, protocolError: String?) {
        guard !state.clientsClosed else { return }
        if pendingStart == pending.count {
            swap(&pending, &commands)
            pendingStart = 0
        } else {
            // A client streaming behind a waiting command: what already ran is dropped, so
            // the list holds only what is still to run.
            if pendingStart > pending.count / 2 { dropRun() }
            pending.append(contentsOf: commands)
        }
        commands.removeAll(keepingCapacity: true)
        batches.append((end: pending.count, bytes: bytes))
        pendingProtocolError = protocolError
        runPending()
        flush()
    }

    /// The client sends nothing more: close once the commands it sent are answered.
    func inputClosed() {
        inputEnded = true
        guard !running, !suspended, !closing, pendingStart == pending.count else { return }
        closeAfterReplies()
    }

    /// Drops the commands already run from `pending`.
    private func dropRun() {
        pending.removeFirst(pendingStart)
        for index in batchStart..<batches.count { batches[index].end -= pendingStart }
        batches.removeFirst(batchStart)
        batchStart = 0
        pendingStart = 0
    }

    /// Hands back to the query buffer the bytes of every read whose commands all ran (all of
    /// them when the connection is closing: the rest never will).
    private func releaseRun() {
        while batchStart < batches.count && (closing || batches[batchStart].end <= pendingStart) {
            queryBuffer.ran(batches[batchStart].bytes)
            batchStart += 1
        }
    }

    /// A pending list longer than this is not kept for the next read.
    static let keptPendingCapacity = 1_024

    /// Runs the pending commands, until one waits for its reply.
    func runPending() {
        running = true
        defer { running = false }
        while !closing && !suspended && pendingStart < pending.count {
            if state.drain?.outcome != nil {
                // The node drained and is stopping: a command not yet run is not run; the
                // connection closes after the replies already due, and the client retries it
                // elsewhere (its outcome is not in doubt).
                pendingProtocolError = nil
                closeAfterReplies()
                break
            }
            let arguments = pending[pendingStart]
            pendingStart += 1
            execute(arguments)
        }
        releaseRun()
        guard closing || pendingStart == pending.count else { return }
        if pending.capacity > Self.keptPendingCapacity { pending = [] } else { pending.removeAll(keepingCapacity: true) }
        pendingStart = 0
        batches.removeAll(keepingCapacity: true)
        batchStart = 0
        if let message = pendingProtocolError, !closing {
            state.statistics.protocolErrors += 1
            reply(.error("ERR \(message)"))
            closeAfterReplies()
        }
        pendingProtocolError = nil
        if inputEnded && !closing { closeAfterReplies() }
    }

    /// The reply of a command that waited: write it, then go on with the commands read since.
    func resume(with routed: RoutedReply) {
        switch routed {
        case .value(let value): reply(value)
        case .encoded(let bytes):
            if output == nil { output = allocator.buffer(capacity: bytes.count) }
            output!.writeBytes(bytes)
        }
        suspended = false
        guard !running, open else { return }
        runPending()
        flush()
    }

    // MARK: Replies

    func reply(_ value: RESPValue) {
        if capturedReplies != nil {
            capturedReplies!.append(value)
            return
        }
        if output == nil { output = allocator.buffer(capacity: 256) }
        RESPEncoder.encode(value, version: session.protocolVersion, into: &output!)
    }

    /// A reply buffer that grew past this (a large HGETALL) is dropped after its write
    /// rather than kept by an idle connection.
    static let keptOutputCapacity = 16 << 10

    func flush() {
        guard (output?.readableBytes ?? 0) > 0, !closing, !state.clientsClosed else { return }
        channel.writeAndFlush(output!, promise: nil)
        // The same storage serves the next replies: once the socket took the bytes (almost
        // always within writeAndFlush when the socket is on this loop) nothing else refers to
        // it, and clear() reuses it; should a write still be pending, or the socket be on
        // another loop, clear() gives this buffer fresh storage instead.
        if output!.capacity > Self.keptOutputCapacity {
            output = nil
        } else {
            output!.clear()
        }
    }

    func closeAfterReplies() {
        closing = true
        // Every client was closed (the node is stopping): their sockets' loops may be gone.
        guard !state.clientsClosed else { return }
        let buffer = output ?? channel.allocator.buffer(capacity: 0)
        output = nil
        let channel = self.channel
        channel.writeAndFlush(buffer).whenComplete { _ in channel.close(promise: nil) }
    }

    // MARK: Dispatch

    /// Command names as the client sent them, resolved once (`CommandResolver`).
    var resolver = CommandResolver()

    func execute(_ arguments: [[UInt8]]) {
        let resolved = resolver.resolve(arguments[0], counts: &state.statistics.commands)
        let name = resolved.name, found = resolved.spec
        now = WallClock.nowMilliseconds()
        state.statistics.commandsProcessed += 1
        activity?.lastCommand = name
        activity?.lastActivity = now

        guard let spec = found else {
            session.markTransactionFailed()
            reply(RedisError.unknownCommand(arguments))
            return
        }
        guard spec.acceptsArgumentCount(arguments.count) else {
            session.markTransactionFailed()
            reply(RedisError.wrongArity(name))
            return
        }
        if !session.authenticated && !spec.flags.contains(.noAuth) {
            session.markTransactionFailed()
            reply(.error("NOAUTH Authentication required."))
            return
        }
        if session.isSubscribed && session.protocolVersion == .v2
            && !["subscribe", "psubscribe", "unsubscribe", "punsubscribe", "ping", "quit", "reset"].contains(name)
        {
            reply(.error("ERR Can't execute '\(name)': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"))
            return
        }
        if session.queuedCommands != nil && !spec.flags.contains(.transactionControl) {
            if spec.flags.contains(.pubsub) && name != "publish" {
                session.markTransactionFailed()
                reply(.error("ERR Command not allowed inside a transaction"))
                return
            }
            if refusesWrite(name, spec) {
                // As Redis on a read-only replica: refused when queued, and EXEC then answers
                // -EXECABORT.
                session.markTransactionFailed()
                reply(Self.readOnly)
                return
            }
            session.queuedCommands!.append(arguments)
            reply(.simpleString("QUEUED"))
            return
        }
        if let slot = resolved.slot { state.statistics.commands.count(slot: slot) }
        run(name, spec, arguments, resolved: resolved)
    }

    /// Redis's answer to a write on a read-only replica, word for word: clients act on it.
    static let readOnly = RESPValue.error("READONLY You can't write against a read only replica.")

    func refusesWrite(_ name: String, _ spec: CommandSpec) -> Bool {
        state.refusesWrite(name, spec)
    }

    /// Runs one command that is not queued (also used by EXEC for each queued command).
    /// `resolved`: the name as the connection resolved it, when the caller has it.
    func run(_ name: String, _ spec: CommandSpec, _ arguments: [[UInt8]], resolved: ResolvedCommand? = nil) {
        if spec.flags.contains(.denyOOM) && state.keyspace.isOverMemoryLimit {
            state.statistics.rejectedForMemory += 1
            reply(RedisError.outOfMemory)
            return
        }
        let dataCommand = if let resolved { resolved.dataCommand } else { DataCommand(name: name) }
        if let command = dataCommand {
            if command == .eval || command == .evalsha, !LockReleaseScript.recognises(arguments, name: name) {
                reply(LockReleaseScript.refusal(for: name))
                return
            }
            if state.loading {
                reply(.error("LOADING sessionfed is recovering its data from the other sites of the federation"))
                return
            }
            if state.refusesDataWrite(spec) {
                reply(Self.readOnly)
                return
            }
            // From here on, every layer sees stored key names: the database is in them.
            runData(DatabaseKeys.storedArguments(arguments, spec: spec, database: session.database), name: name, spec: spec, command: command)
            return
        }
        switch name {
        case "ping": ping(arguments)
        case "echo": reply(.bulkString(arguments[1]))
        case "hello": hello(arguments)
        case "auth": auth(arguments)
        case "select": select(arguments)
        case "client": client(arguments)
        case "quit":
            reply(.ok)
            closeAfterReplies()
        case "reset": reset()
        case "command": command(arguments)
        case "info": reply(.verbatim(format: "txt", text: Array(info(arguments).utf8)))
        case "config": config(arguments)
        case "cluster": cluster(arguments)
        case "readonly", "readwrite", "asking":
            // Reads are answered by the partition's primary whichever node a client asks, so a
            // client that reads from replicas reads what it wrote.
            reply(clusterClientsServed ? .ok : Self.clusterDisabled)
        case "time":
            let micros = WallClock.nowMicroseconds()
            reply(.array([.bulk(String(micros / 1_000_000)), .bulk(String(micros % 1_000_000))]))
        case "multi": multi()
        case "exec": exec()
        case "discard": discard()
        case "watch": watch(arguments)
        case "unwatch":
            session.watchedKeys = []
            reply(.ok)
        case "subscribe", "psubscribe": subscribe(arguments, patterns: name == "psubscribe")
        case "unsubscribe", "punsubscribe": unsubscribe(arguments, patterns: name == "punsubscribe")
        case "publish":
            // As in Redis Cluster, the count is of this node's receivers; the other nodes of
            // the site deliver it to theirs.
            reply(.integer(Int64(state.publish(channel: arguments[1], message: arguments[2]))))
            state.dataPlane?.broadcast(published: PublishedMessage(channel: arguments[1], message: arguments[2]))
        case "pubsub": pubsub(arguments)
        case "script": reply(.error("ERR scripting is not supported by this server: sessionfed does not run Lua scripts"))
        case "swapdb", "move":
            // Swapping or moving would change two databases' keys at once, each replicated and
            // federated on its own: another site could see half of it.
            reply(.error("ERR \(name.uppercased()) is not supported by this server: each database is replicated and federated on its own"))
        default:
            reply(RedisError.unknownCommand(arguments))
        }
    }

    /// Runs a data command whose keys are stored names already.
    func runData(_ arguments: [[UInt8]], name: String, spec: CommandSpec, command: DataCommand) {
        if let dataPlane = state.dataPlane {
            if capturedReplies != nil {
                runInTransaction(arguments, name: name, spec: spec, dataPlane: dataPlane)
                return
            }
            suspended = true
            dataPlane.route(arguments, name: name, spec: spec, protocolVersion: session.protocolVersion, database: session.database, command: command) { routed in
                self.resume(with: routed)
            }
            return
        }
        let result = state.keyspace.execute(arguments, command: command, now: now, database: session.database)
        state.replicate(result.deltas, now: now)
        reply(result.reply)
        state.notify(result.events)
    }
}

extension ClientConnection {
    /// A data command inside EXEC on a site of several nodes: it runs here, now, on this
    /// node's primary copies (EXEC checked that it is primary of every key); the commits are
    /// collected and EXEC's reply waits for all of them.
    func runInTransaction(_ arguments: [[UInt8]], name: String, spec: CommandSpec, dataPlane: DataPlane) {
        let partitions = dataPlane.partitions(of: arguments, name: name, keys: spec.keys(in: arguments)) ?? []
        guard !partitions.isEmpty, dataPlane.actsAsPrimary(of: partitions, now: WallClock.monotonicMilliseconds()) else {
            reply(.error("ERR this node is not the primary of this command's keys any more"))
            return
        }
        let outcome = dataPlane.executeAsPrimary(arguments, name: name, spec: spec, partitions: partitions, database: session.database, now: now)
        transactionWaits += outcome.waits
        reply(outcome.result.reply)
        dataPlane.publish(outcome.result)
    }

    enum TransactionPlacement {
        /// Every data command's keys are on partitions this node is primary of.
        case here
        /// Keys of several nodes: a cross-node transaction over these keys.
        case acrossNodes([[UInt8]])
        case refused(RESPValue)
    }

    /// Where a transaction runs on a site of several nodes. A queued SELECT changes the
    /// database of the commands after it, as it will when they run.
    func placement(of queued: [[[UInt8]]], watching watched: [[UInt8]], dataPlane: DataPlane) -> TransactionPlacement {
        var keys = watched
        var database = session.database
        for arguments in queued {
            let name = String(decoding: arguments[0], as: UTF8.self).lowercased()
            if name == "select", let selected = Self.database(arguments) { database = selected }
            guard Keyspace.isDataCommand(name), let spec = CommandTable.spec(for: name) else { continue }
            let commandKeys = spec.keys(in: DatabaseKeys.storedArguments(arguments, spec: spec, database: database))
            if commandKeys.isEmpty { return .refused(.error("EXECABORT '\(name)' over every node of a site is not supported in a transaction yet")) }
            keys += commandKeys
        }
        let partitions = Set(keys.map(dataPlane.partitioning.partition(of:)))
        if partitions.isEmpty || (dataPlane.actsAsPrimary(of: partitions, now: WallClock.monotonicMilliseconds()) && !dataPlane.isLocked(partitions)) {
            return .here
        }
        return .acrossNodes(keys)
    }

    /// EXEC over keys of several nodes: the queued commands run back to back on the locked
    /// states of their keys (`CrossNodeCommands.swift`), so the transaction stays atomic.
    func execAcrossNodes(_ queued: [[[UInt8]]], keys: [[UInt8]], watches: [ClientSession.Watch], dataPlane: DataPlane) {
        suspended = true
        dataPlane.runAcrossNodes(keys: keys, body: { scratch, now in
            if watches.contains(where: { $0.changed(in: scratch, now: now) }) { return CommandResult(reply: .nullArray) }
            self.capturedReplies = []
            var deltas: [Delta] = []
            var events: [KeyspaceEvent] = []
            for arguments in queued {
                let name = String(decoding: arguments[0], as: UTF8.self).lowercased()
                guard let spec = CommandTable.spec(for: name) else { continue }
                self.state.statistics.commands.count(name)
                guard Keyspace.isDataCommand(name) else {
                    self.run(name, spec, arguments)
                    continue
                }
                if spec.flags.contains(.denyOOM) && self.state.keyspace.isOverMemoryLimit {
                    self.state.statistics.rejectedForMemory += 1
                    self.capturedReplies!.append(RedisError.outOfMemory)
                    continue
                }
                if self.refusesWrite(name, spec) {
                    self.capturedReplies!.append(Self.readOnly)
                    continue
                }
                let stored = DatabaseKeys.storedArguments(arguments, spec: spec, database: self.session.database)
                let result = scratch.execute(stored, name: name, now: now, database: self.session.database) ?? CommandResult(reply: RedisError.unknownCommand(arguments))
                self.capturedReplies!.append(result.reply)
                deltas += result.deltas
                events += result.events
            }
            let replies = self.capturedReplies ?? []
            self.capturedReplies = nil
            return CommandResult(reply: .array(replies), deltas: deltas, events: events)
        }, done: { self.resume(with: .value($0)) })
    }
}

extension NodeState {
    var requiresAuthentication: Bool {
        guard let auth = configuration.topology.auth else { return false }
        return auth.password != nil || !auth.users.isEmpty
    }
}
