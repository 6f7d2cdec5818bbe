import Keyspace
import NIOCore
import RESP
import SessionModel
import Wire

/// One client connection: parses requests, runs them against the node state, writes replies.
/// Pipelined requests that arrive together are answered with one flush. In a site of several
/// nodes a data command may wait (for its partition's backups, or for the primary it was
/// forwarded to): the connection then reads no further command until it is answered, so a
/// client's replies never change order. Confined to the node's event loop (hence
/// `@unchecked Sendable`: the data plane calls back on that loop).
final class ClientConnectionHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let state: NodeState
    var parser: RESPRequestParser
    var input: ByteBuffer?
    var output: ByteBuffer?
    var session = ClientSession()
    var clientID: UInt64 = 0
    /// This connection's entry in CLIENT LIST's idle and cmd columns, updated in place.
    var activity: ClientActivity?
    var closing = false
    /// Inside EXEC: replies are collected into one array instead of written.
    var capturedReplies: [RESPValue]?
    /// The time of the command being run, read once per command.
    var now: UInt64 = 0
    let allocator = ByteBufferAllocator()
    /// A data command is waiting for its reply: no further input is parsed.
    var suspended = false
    /// Inside the parse loop (a reply that arrives then needs no restart of it).
    var parsing = false
    /// Inside EXEC on a site of several nodes: the commits the transaction's reply waits for.
    var transactionWaits: [(partition: Int, sequence: UInt64)] = []
    var context: ChannelHandlerContext?

    /// The connection came in over TLS: CLUSTER SLOTS then gives the nodes' TLS ports.
    let overTLS: Bool

    init(state: NodeState, overTLS: Bool = false) {
        self.state = state
        self.overTLS = overTLS
        parser = RESPRequestParser(limits: state.configuration.limits)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        if state.clients.count >= state.configuration.maximumClients {
            state.statistics.rejectedConnections += 1
            var buffer = context.channel.allocator.buffer(capacity: 64)
            RESPEncoder.encode(.error("ERR max number of clients reached"), version: .v2, into: &buffer)
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(buffer)).whenComplete { _ in channel.close(promise: nil) }
            closing = true
            return
        }
        clientID = state.registerClient(channel: context.channel)
        activity = state.clients[clientID]?.activity
        session.authenticated = !state.requiresAuthentication
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if clientID != 0 { state.unregisterClient(clientID) }
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closing else { return }
        var incoming = unwrapInboundIn(data)
        if input == nil || input!.readableBytes == 0 {
            input = incoming
        } else {
            input!.writeBuffer(&incoming)
        }
        guard input!.readableBytes <= state.configuration.limits.maximumQueryBufferBytes else {
            // Redis closes a client over client-query-buffer-limit without a reply.
            state.statistics.protocolErrors += 1
            closing = true
            input = nil
            context.close(promise: nil)
            return
        }
        parseInput(context: context)
    }

    /// Runs the complete commands buffered, until one waits for its reply.
    func parseInput(context: ChannelHandlerContext) {
        parsing = true
        defer { parsing = false }
        while !closing && !suspended, input != nil {
            if state.drain?.outcome != nil {
                // The node drained and is stopping: a command not yet run is not run; the
                // connection closes after the replies already due, and the client retries it
                // elsewhere (its outcome is not in doubt).
                input = nil
                closeAfterReplies(context: context)
                return
            }
            switch parser.next(from: &input!) {
            case .incomplete:
                if input!.readableBytes == 0 { input = nil }
                return
            case .protocolError(let message):
                state.statistics.protocolErrors += 1
                reply(.error("ERR \(message)"))
                closeAfterReplies(context: context)
                return
            case .command(let arguments):
                execute(arguments, context: context)
            }
        }
    }

    /// The reply of a command that waited: write it, then go on with the buffered input.
    func resume(with routed: RoutedReply) {
        switch routed {
        case .value(let value): reply(value)
        case .encoded(let bytes):
            if output == nil { output = allocator.buffer(capacity: bytes.count) }
            output!.writeBytes(bytes)
        }
        suspended = false
        guard !parsing, let context else { return }
        parseInput(context: context)
        flush(context: context)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        flush(context: context)
        context.fireChannelReadComplete()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
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

    func flush(context: ChannelHandlerContext) {
        guard (output?.readableBytes ?? 0) > 0 else { return }
        context.writeAndFlush(wrapOutboundOut(output!), promise: nil)
        // The same storage serves the next replies: once the socket took the bytes (almost
        // always within writeAndFlush) nothing else refers to it, and clear() reuses it;
        // should a write still be pending, clear() gives this buffer fresh storage instead.
        if output!.capacity > Self.keptOutputCapacity {
            output = nil
        } else {
            output!.clear()
        }
    }

    func closeAfterReplies(context: ChannelHandlerContext) {
        closing = true
        let buffer = output ?? context.channel.allocator.buffer(capacity: 0)
        output = nil
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(buffer)).whenComplete { _ in channel.close(promise: nil) }
    }

    // MARK: Dispatch

    /// Command names as the client sent them, resolved once (`CommandResolver`).
    var resolver = CommandResolver()

    func execute(_ arguments: [[UInt8]], context: ChannelHandlerContext) {
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
        run(name, spec, arguments, context: context, resolved: resolved)
    }

    /// Redis's answer to a write on a read-only replica, word for word: clients act on it.
    static let readOnly = RESPValue.error("READONLY You can't write against a read only replica.")

    func refusesWrite(_ name: String, _ spec: CommandSpec) -> Bool {
        state.refusesWrite(name, spec)
    }

    /// Runs one command that is not queued (also used by EXEC for each queued command).
    /// `resolved`: the name as the connection resolved it, when the caller has it.
    func run(_ name: String, _ spec: CommandSpec, _ arguments: [[UInt8]], context: ChannelHandlerContext, resolved: ResolvedCommand? = nil) {
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
            closeAfterReplies(context: context)
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
        case "exec": exec(context: context)
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

extension ClientConnectionHandler {
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
    func execAcrossNodes(_ queued: [[[UInt8]]], keys: [[UInt8]], watches: [ClientSession.Watch], dataPlane: DataPlane, context: ChannelHandlerContext) {
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
                    self.run(name, spec, arguments, context: context)
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
