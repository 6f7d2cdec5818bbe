import Logging
import NIOCore
import NIOPosix
import Topology

/// A TCP proxy that emulates a wide-area link for tests (the kernel here has no netem): every
/// chunk is delayed by `delay` in each direction, and the link can be cut (connections closed,
/// new ones refused), blackholed (bytes silently dropped) and restored. Controlled by text lines
/// on its control port: `delay MS`, `cut`, `blackhole`, `restore`, `status`.
final class WANProxy: @unchecked Sendable {
    enum Mode: String, Sendable {
        case open, cut, blackhole
    }

    let listen: Topology.Address
    let target: Topology.Address
    let control: Topology.Address
    let logger: Logger
    let group: MultiThreadedEventLoopGroup
    let loop: EventLoop
    // Confined to `loop`.
    var mode = Mode.open
    var delayMilliseconds: Int64
    var connections: [ObjectIdentifier: Channel] = [:]
    var bytesForwarded: UInt64 = 0
    var listeners: [Channel] = []

    init(listen: Topology.Address, target: Topology.Address, control: Topology.Address, delayMilliseconds: Int64, logger: Logger) {
        self.listen = listen
        self.target = target
        self.control = control
        self.delayMilliseconds = delayMilliseconds
        self.logger = logger
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        loop = group.next()
    }

    /// Listens until the process is stopped.
    func run() async throws {
        let proxy = self
        let server = try await ServerBootstrap(group: loop)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.autoRead, value: false)
            .childChannelInitializer { inbound in
                inbound.eventLoop.makeCompletedFuture { proxy.accepted(inbound) }
            }
            .bind(host: listen.host, port: listen.port).get()
        let controlServer = try await ServerBootstrap(group: loop)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ProxyControlHandler(proxy: proxy))
                }
            }
            .bind(host: control.host, port: control.port).get()
        try await loop.submit { self.listeners = [server, controlServer] }.get()
        logger.notice("wan proxy listening", metadata: ["listen": "\(listen)", "target": "\(target)", "control": "\(control)", "delay_ms": "\(delayMilliseconds)"])
        try await server.closeFuture.get()
    }

    func accepted(_ inbound: Channel) {
        guard mode != .cut else {
            inbound.close(promise: nil)
            return
        }
        let proxy = self
        ClientBootstrap(group: loop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelOption(.autoRead, value: false)
            .connect(host: target.host, port: target.port)
            .whenComplete { result in
                switch result {
                case .failure:
                    inbound.close(promise: nil)
                case .success(let outbound):
                    let forward = ProxyRelayHandler(proxy: proxy, peer: outbound)
                    let backward = ProxyRelayHandler(proxy: proxy, peer: inbound)
                    do {
                        try inbound.pipeline.syncOperations.addHandler(forward)
                        try outbound.pipeline.syncOperations.addHandler(backward)
                    } catch {
                        inbound.close(promise: nil)
                        outbound.close(promise: nil)
                        return
                    }
                    proxy.connections[ObjectIdentifier(inbound)] = inbound
                    proxy.connections[ObjectIdentifier(outbound)] = outbound
                    inbound.read()
                    outbound.read()
                }
            }
    }

    func apply(_ command: String) -> String {
        let words = command.split(separator: " ").map(String.init)
        switch words.first?.lowercased() {
        case "delay":
            guard words.count == 2, let milliseconds = Int64(words[1]), milliseconds >= 0 else { return "error: usage: delay MS" }
            delayMilliseconds = milliseconds
        case "cut":
            mode = .cut
            for channel in connections.values { channel.close(promise: nil) }
        case "blackhole":
            mode = .blackhole
        case "restore":
            mode = .open
        case "status":
            break
        default:
            return "error: unknown command '\(command)' (delay MS | cut | blackhole | restore | status)"
        }
        logger.notice("wan proxy", metadata: ["command": "\(command)", "mode": "\(mode.rawValue)", "delay_ms": "\(delayMilliseconds)"])
        return "ok mode=\(mode.rawValue) delay_ms=\(delayMilliseconds) connections=\(connections.count / 2) bytes_forwarded=\(bytesForwarded)"
    }
}

/// Relays what one side reads to its peer after the emulated delay, in order.
final class ProxyRelayHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    let proxy: WANProxy
    let peer: Channel
    /// Chunks waiting for their delay, in arrival order.
    var queue: [(deadline: NIODeadline, buffer: ByteBuffer)] = []

    init(proxy: WANProxy, peer: Channel) {
        self.proxy = proxy
        self.peer = peer
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        guard proxy.mode == .open else { return }
        let deadline = NIODeadline.now() + .milliseconds(proxy.delayMilliseconds)
        queue.append((deadline, buffer))
        if queue.count == 1 { schedule(context.eventLoop, at: deadline) }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.read()
    }

    func schedule(_ loop: EventLoop, at deadline: NIODeadline) {
        loop.assumeIsolated().scheduleTask(deadline: deadline) { self.drain(loop) }
    }

    func drain(_ loop: EventLoop) {
        let now = NIODeadline.now()
        var wrote = false
        while let first = queue.first, first.deadline <= now {
            queue.removeFirst()
            if proxy.mode == .open {
                proxy.bytesForwarded += UInt64(first.buffer.readableBytes)
                peer.write(first.buffer, promise: nil)
                wrote = true
            }
        }
        if wrote { peer.flush() }
        if let next = queue.first { schedule(loop, at: next.deadline) }
    }

    func channelInactive(context: ChannelHandlerContext) {
        proxy.connections[ObjectIdentifier(context.channel)] = nil
        // Deliver what is still in flight, then close the other side.
        let remaining = queue.last?.deadline ?? .now()
        let loop = context.eventLoop
        loop.assumeIsolated().scheduleTask(deadline: remaining) {
            self.drain(loop)
            self.peer.close(promise: nil)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}

/// One command per line on the control port, one answer line each.
final class ProxyControlHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let proxy: WANProxy
    var pending = ""

    init(proxy: WANProxy) {
        self.proxy = proxy
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        pending += buffer.readString(length: buffer.readableBytes) ?? ""
        while let newline = pending.firstIndex(of: "\n") {
            let line = pending[..<newline].split(whereSeparator: { $0 == " " || $0 == "\r" || $0 == "\t" }).joined(separator: " ")
            pending = String(pending[pending.index(after: newline)...])
            guard !line.isEmpty else { continue }
            let answer = proxy.apply(line) + "\n"
            context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(string: answer)), promise: nil)
        }
    }
}
