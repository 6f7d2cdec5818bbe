import Federation
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import ServiceLifecycle
import UnixSignals
import Topology
import Synchronization

/// Serves RESP to applications on the node's `client` address. A `Service`: SIGTERM/SIGINT
/// (through the service group) stops accepting, lets the commands already read finish and
/// their replies flush, then closes every client.
public final class NodeServer: Service, Sendable {
    /// How often changed keys are folded into the kept Merkle leaves, and for how long at most
    /// each time (a bound on the pause it adds between client commands).
    static let digestCycleMilliseconds: Int64 = 10
    static let digestSliceMilliseconds: UInt64 = 3
    public let configuration: NodeConfiguration
    let logger: Logger
    /// The node state's loop: every command, timer and link runs on it.
    let group: MultiThreadedEventLoopGroup
    /// With `threads:` above 1, the loops that carry client sockets.
    let clientGroup: MultiThreadedEventLoopGroup?
    let state: NodeState
    /// Completed once the listener is bound; carries the bound port (useful with port 0).
    let bound: EventLoopPromise<Int>
    /// False once the node's loop shuts down. A task handed to a shut-down loop is dropped
    /// (NIO prints an error), so whoever awaits it would wait forever: the admin endpoint,
    /// which stops after the node, checks this under the lock it submits under.
    private let loopOpen = Mutex(true)

    public init(configuration: NodeConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        // One thread owns the keyspace, like Redis's main thread: commands run to completion
        // without locks. With `threads: N` client sockets move to N - 1 loops of their own, as
        // Redis's io-threads: their reads, parsing, replies' writes and TLS leave this loop.
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let threads = configuration.topology.defaults.threads
        clientGroup = threads > 1 ? MultiThreadedEventLoopGroup(numberOfThreads: threads - 1) : nil
        let loop = group.next()
        state = NodeState(eventLoop: loop, configuration: configuration)
        bound = loop.makePromise(of: Int.self)
    }

    /// The bound client port, once listening.
    public func boundPort() async throws -> Int {
        try await bound.futureResult.get()
    }

    /// Runs `body` on the node's event loop with its state (for /status and /metrics).
    func withState<T: Sendable>(_ body: @escaping @Sendable (NodeState) -> T) async throws -> T {
        let state = self.state
        let answer = try loopOpen.withLock { open -> EventLoopFuture<T> in
            guard open else { throw NodeServerError(message: "the node has stopped") }
            return state.eventLoop.submit { body(state) }
        }
        return try await answer.get()
    }

    /// A listener for applications: each connection gets its `ClientConnectionHandler`, behind
    /// TLS when `tls` is given.
    private func clientListener(on address: Topology.Address, tls: (@Sendable () -> NIOSSLContext)?) async throws -> Channel {
        let state = self.state
        let clientLoops = clientGroup.map { Array($0.makeIterator()) } ?? []
        return try await ServerBootstrap(group: group, childGroup: clientGroup ?? group)
            .serverChannelOption(.backlog, value: 511)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            // A client that closes its side after sending still gets every reply (the
            // handler closes the connection once they are written), as from Redis.
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls { try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls())) }
                    let ioThread = clientLoops.firstIndex { $0 === channel.eventLoop }.map { $0 + 1 } ?? 0
                    try channel.pipeline.syncOperations.addHandler(ClientConnectionHandler(state: state, overTLS: tls != nil, ioThread: ioThread))
                }
            }
            .bind(host: address.host, port: address.port)
            .get()
    }

    /// Shuts the node's loops down; `withState` fails from here on instead of waiting forever.
    /// The client sockets' loops go first: a socket closing tells the state's loop.
    private func shutDownLoop() async {
        try? await clientGroup?.shutdownGracefully()
        loopOpen.withLock { $0 = false }
        try? await group.shutdownGracefully()
    }

    public func run() async throws {
        MemoryRelease.configureAllocator()
        let state = self.state
        let address = configuration.node.client
        // A federated node alone in its site answers -LOADING from its first client on, until
        // it has recovered the other sites' data: set before the listener opens. In a site of
        // several nodes a returning node copies its partitions from the others, and remote
        // deltas are merged by the partitions' primaries.
        if let settings = configuration.federationSettings {
            let alone = configuration.site.nodes.count == 1
            try await state.eventLoop.submit {
                state.federation = FederationCore(settings: settings, incarnation: UInt64.random(in: 1...UInt64.max))
                state.federation!.mergesAtPrimaries = !alone
                // Leading nothing until the site's map says otherwise (a connect round before
                // the first tick must not compare partitions this node does not hold).
                if !alone { state.federation!.lead([]) }
                state.loading = alone
            }.get()
        }
        let channel: Channel
        do {
            channel = try await clientListener(on: address, tls: nil)
        } catch {
            bound.fail(error)
            await shutDownLoop()
            throw NodeServerError(message: "cannot listen for clients on \(address): \(error)")
        }
        // The TLS port for clients closes with the plaintext one (shutdown, end of a drain).
        if let settings = configuration.topology.clientTLS, let tlsAddress = configuration.node.clientTLS {
            do {
                let clientTLS = try ClientTLS.reloadable(settings: settings, node: configuration.node.name, topologyDirectory: configuration.topologyDirectory)
                try await state.eventLoop.submit { state.clientTLS = clientTLS }.get()
                let tlsChannel = try await clientListener(on: tlsAddress, tls: { clientTLS.contexts })
                channel.closeFuture.whenComplete { _ in tlsChannel.close(promise: Optional<EventLoopPromise<Void>>.none) }
                logger.info("node listening for TLS clients", metadata: ["node.name": "\(configuration.node.name)", "client_tls.address": "\(tlsAddress)", "client_certificates": "\(settings.ca == nil ? "not asked" : "required")"])
            } catch {
                channel.close(promise: nil)
                bound.fail(error)
                await shutDownLoop()
                throw NodeServerError(message: "cannot listen for TLS clients on \(tlsAddress): \(error)")
            }
        }
        let port = channel.localAddress?.port ?? address.port
        bound.succeed(port)
        logger.info("node listening for clients", metadata: ["node.name": "\(configuration.node.name)", "client.address": "\(address.host):\(port)"])

        let controlPlane = ControlPlaneRuntime(state: state, logger: logger)
        try await state.eventLoop.submit { state.controlPlane = controlPlane }.get()
        /// Undoes what started so far; the error to throw.
        func abandon(_ message: String) async -> NodeServerError {
            channel.close(promise: nil)
            await controlPlane.stop()
            await shutDownLoop()
            return NodeServerError(message: message)
        }
        if configuration.site.nodes.count > 1 {
            let dataPlane = DataPlane(state: state, logger: logger)
            try await state.eventLoop.submit {
                state.dataPlane = dataPlane
                dataPlane.start()
            }.get()
        }
        do {
            try await controlPlane.start()
        } catch {
            throw await abandon(error is FederationTLSError ? "cannot set up peer TLS: \(error)" : "cannot listen for peers on \(configuration.node.peer): \(error)")
        }

        var transport: FederationTransport?
        if let settings = configuration.federationSettings {
            let federation: FederationTransport
            do {
                federation = try FederationTransport(state: state, settings: settings, logger: logger)
            } catch {
                throw await abandon("cannot set up federation TLS: \(error)")
            }
            try await state.eventLoop.submit { state.transport = federation }.get()
            do {
                try await federation.start()
            } catch {
                throw await abandon("cannot listen for federation peers on \(configuration.node.federation): \(error)")
            }
            transport = federation
        }

        // The node's own timers, each a timed step on the loop.
        let timers = [
            (configuration.expiryCycleMilliseconds, "expiry cycle", state.runExpiryCycle),
            (Self.digestCycleMilliseconds, "Merkle leaves refresh", state.refreshMerkleLeaves),
            (MemoryRelease.intervalMilliseconds, "memory release", state.releaseFreedMemory),
        ].map { milliseconds, step, body in
            state.eventLoop.scheduleRepeatedTask(initialDelay: .milliseconds(milliseconds), delay: .milliseconds(milliseconds)) { _ in
                state.timed(step) { body() }
            }
        }

        // SIGHUP reloads the certificates (after `sessionfed certs rotate`): new connections
        // take them, established ones stay up.
        let logger = self.logger
        let reloads = Task {
            for await _ in await UnixSignalsSequence(trapping: .sighup) {
                _ = try? await state.eventLoop.submit { state.reloadCertificates(logger: logger) }.get()
            }
        }

        // SIGTERM/SIGINT (or `sessionfed drain`, through the admin endpoint) drains first in
        // a site of several nodes; the listener closes when the drain ends.
        let drains = configuration.drainsOnShutdown && configuration.site.nodes.count > 1
        let drainRequests = AsyncStream<String>.makeStream()
        try await state.eventLoop.submit { state.requestDrain = { drainRequests.continuation.yield($0) } }.get()
        let drainer = Task { () -> DrainOutcome? in
            for await reason in drainRequests.stream {
                return await self.drainThenStop(listener: channel, reason: reason)
            }
            return nil
        }
        await withGracefulShutdownHandler {
            try? await channel.closeFuture.get()
        } onGracefulShutdown: {
            if drains {
                drainRequests.continuation.yield(Self.signalReason)
            } else {
                channel.close(promise: nil)
            }
        }
        drainRequests.continuation.finish()
        reloads.cancel()
        let drained = await drainer.value
        for timer in timers { timer.cancel() }
        try? await state.eventLoop.submit { state.dataPlane?.stop() }.get()
        await transport?.stop()
        await controlPlane.stop()
        // The listener is closed; commands handed to the state's loop before this step have
        // run. Flush and close every client; anything read after is not run.
        try? await state.eventLoop.submit {
            state.clientsClosed = true
            for record in state.clients.values {
                record.channel.close(mode: .all, promise: nil)
            }
        }.get()
        logger.info("node stopped", metadata: ["node.name": "\(configuration.node.name)"])
        await shutDownLoop()
        if case .cutShort(let remainder)? = drained {
            throw NodeServerError(message: "the drain did not finish: this node still held \(remainder)")
        }
    }
}

public struct NodeServerError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}
