import Logging
import NIOCore
import NIOPosix
import NIOSSL
import Topology
import Wire

/// A transport of length-prefixed frames (DESIGN.md §6): federation between sites, peers
/// within a site. Both listen on one address and dial their counterparts, optionally over
/// mutual TLS; `FramedChannelHandler` turns bytes into frames and calls back here. Every
/// callback runs on the node's event loop.
protocol FramedTransport: AnyObject, Sendable {
    /// What a dialed connection was dialed to (a site, a node).
    associatedtype Target
    /// Who the handshake proved the other end is.
    associatedtype Peer

    var logger: Logger { get }
    var state: NodeState { get }
    /// Frames written and not yet flushed, per connection.
    var outgoing: OutgoingFrames { get }
    /// "federation" or "peer", for log messages.
    var connectionKind: String { get }
    func dialerActive(_ target: Target, channel: Channel)
    func received(_ frame: Frame, bytes: Int, handler: FramedChannelHandler<Self>, channel: Channel)
    func closed(handler: FramedChannelHandler<Self>, channel: Channel)
    /// A connection failed below the frames (TLS or the socket); it closes after this.
    func connectionFailed(_ error: Error, handler: FramedChannelHandler<Self>, channel: Channel)
    /// Bytes that are not a frame arrived; the transport closes the connection.
    func malformed(_ error: Error, handler: FramedChannelHandler<Self>, channel: Channel)
}

extension FramedTransport {
    /// One frame read and handled: recorded among the node's slow steps when it held the loop.
    func stepTaken(_ step: @autoclosure () -> String, nanoseconds: UInt64) {
        state.slowSteps.record("\(connectionKind) \(step())", nanoseconds: nanoseconds)
    }

    /// Binds a listener whose connections get TLS (when given) and a frame handler.
    /// `tls` is asked at each connection: a certificate reloaded on SIGHUP serves the next one.
    func listen(on address: Topology.Address, eventLoop: EventLoop, tls: (@Sendable () -> NIOSSLContext)?) async throws -> Channel {
        try await ServerBootstrap(group: eventLoop)
            .serverChannelOption(.backlog, value: 64)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls()))
                    }
                    try channel.pipeline.syncOperations.addHandler(FramedChannelHandler(transport: self, role: .listener))
                }
            }
            .bind(host: address.host, port: address.port)
            .get()
    }

    /// Connects to `address` for `target`; the handler reports `dialerActive` once open.
    func connect(to address: Topology.Address, for target: Target, eventLoop: EventLoop, tls: (@Sendable () -> NIOSSLContext)?, timeout: TimeAmount) -> EventLoopFuture<Channel> {
        ClientBootstrap(group: eventLoop)
            .connectTimeout(timeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: tls(), serverHostname: nil))
                    }
                    try channel.pipeline.syncOperations.addHandler(FramedChannelHandler(transport: self, role: .dialer(target)))
                }
            }
            .connect(host: address.host, port: address.port)
    }

    /// Encodes and writes (without flushing) one frame; returns its size in bytes.
    @discardableResult
    func write(_ frame: Frame, on channel: Channel) -> Int {
        guard let written = writeIfFits(frame, on: channel) else {
            preconditionFailure("Invalid state: a \(frame.kind) frame over \(FrameCodec.maximumFrameBytes) bytes was built")
        }
        return written
    }

    /// Encodes and writes (without flushing) one frame whose size is not bounded in advance
    /// (a reply, a key's state); returns its size, or nil (nothing written) over the limit.
    /// The frame leaves at the connection's next `flush`.
    func writeIfFits(_ frame: Frame, on channel: Channel) -> Int? {
        guard let payload = FrameCodec.payloadIfFits(frame) else { return nil }
        outgoing.append(payload, on: channel)
        return 4 + payload.count
    }

    /// Sends what was written on `channel` (the only way a transport flushes a connection:
    /// frames written in between would otherwise overtake those pending).
    func flush(_ channel: Channel) {
        outgoing.flush(channel)
    }

    /// Writes a refusal and closes once it left; frames already buffered from the
    /// connection are ignored, and frames pending for it are dropped.
    func refuseAndClose(_ channel: Channel, reason: String) {
        outgoing.drop(channel)
        (try? channel.pipeline.syncOperations.handler(type: FramedChannelHandler<Self>.self))?.failed = true
        let bytes = FrameCodec.encode(.helloReply(accepted: false, reason: reason, responder: nil))
        var buffer = channel.allocator.buffer(capacity: bytes.count)
        buffer.writeBytes(bytes)
        channel.writeAndFlush(buffer).whenComplete { _ in channel.close(promise: nil) }
    }

    /// Closes a connection and ignores whatever else it already sent.
    func discard(_ channel: Channel) {
        (try? channel.pipeline.syncOperations.handler(type: FramedChannelHandler<Self>.self))?.failed = true
        channel.close(promise: nil)
    }

    /// The open connection's handler (nil once closed).
    func handler(of channel: Channel) -> FramedChannelHandler<Self>? {
        try? channel.pipeline.syncOperations.handler(type: FramedChannelHandler<Self>.self)
    }
}

/// Why a connection failed below the frames, for logs and `lastError`.
func connectionFailureReason(_ error: Error) -> (reason: String, tls: Bool) {
    let tls = error is NIOSSLError || error is BoringSSLError
    return (tls ? "TLS handshake failed (is the peer's certificate signed by this federation's CA?): \(error)" : "\(error)", tls)
}

/// The delay before the next dial: exponential from `baseMilliseconds` up to
/// `maximumMilliseconds`, or `refusalMilliseconds` after a refusal; jittered into its upper
/// half so that peers do not dial in lockstep.
func redialDelayMilliseconds(failures: Int, baseMilliseconds: UInt64, maximumMilliseconds: UInt64, refused: Bool, refusalMilliseconds: UInt64) -> UInt64 {
    let ceiling = min(maximumMilliseconds, baseMilliseconds << UInt64(min(max(failures, 1) - 1, 10)))
    let base = refused ? refusalMilliseconds : ceiling
    return base / 2 + UInt64.random(in: 0...(base / 2))
}

/// Frames in and out of one connection of a `FramedTransport`.
final class FramedChannelHandler<Transport: FramedTransport>: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    enum Role {
        case listener
        case dialer(Transport.Target)
    }

    let transport: Transport
    let role: Role
    var decoder = FrameDecoder()
    /// Set once the handshake succeeded.
    var peer: Transport.Peer?
    /// Monotonic milliseconds of the last frame received (silence detection).
    var lastReceivedAt = WallClock.monotonicMilliseconds()
    /// Set when the connection is being closed for what it sent: later bytes are ignored.
    var failed = false

    /// A connection that has not completed its handshake by then is closed: idle sockets
    /// from scanners or stuck peers must not pile up.
    static var handshakeTimeout: TimeAmount { .seconds(10) }

    init(transport: Transport, role: Role) {
        self.transport = transport
        self.role = role
    }

    var dialedTarget: Transport.Target? {
        if case .dialer(let target) = role { return target }
        return nil
    }

    func channelActive(context: ChannelHandlerContext) {
        lastReceivedAt = WallClock.monotonicMilliseconds()
        if case .dialer(let target) = role { transport.dialerActive(target, channel: context.channel) }
        let channel = context.channel
        context.eventLoop.assumeIsolated().scheduleTask(in: Self.handshakeTimeout) {
            if self.peer == nil && channel.isActive {
                self.transport.logger.warning(
                    "\(self.transport.connectionKind) connection closed: no handshake within \(Self.handshakeTimeout.nanoseconds / 1_000_000_000) s",
                    metadata: ["remote": "\(channel.remoteAddress.map(NodeState.describe) ?? "?")"]
                )
                channel.close(promise: nil)
            }
        }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        transport.closed(handler: self, channel: context.channel)
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !failed else { return }
        let buffer = unwrapInboundIn(data)
        decoder.append(buffer.readableBytesView)
        var before = decoder.bufferedBytes
        do {
            while !failed {
                let started = SlowSteps.nowNanoseconds()
                guard let frame = try decoder.next() else { break }
                let size = before - decoder.bufferedBytes
                before = decoder.bufferedBytes
                lastReceivedAt = WallClock.monotonicMilliseconds()
                transport.received(frame, bytes: size, handler: self, channel: context.channel)
                transport.stepTaken("frame \(frame.kind) (\(size) bytes)", nanoseconds: SlowSteps.nowNanoseconds() - started)
            }
        } catch {
            failed = true
            transport.malformed(error, handler: self, channel: context.channel)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        transport.connectionFailed(error, handler: self, channel: context.channel)
        context.close(promise: nil)
    }
}
