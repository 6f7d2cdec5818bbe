import ControlPlane
import Federation
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import SessionModel
import Topology
import Wire

/// The network between the nodes of one site (DESIGN.md §3, §6): a listener on the node's
/// `peer` address and a connection dialed to every other node of the site. Each connection
/// starts with a Hello the listener checks (same federation, same site, a node of it, the
/// certificate naming that node when TLS is on), then carries length-prefixed `raft` frames
/// one way: a node sends on the connection it dialed and receives on the ones it accepted.
/// Raft tolerates loss, so an envelope for a node that is not connected is dropped and
/// counted. Confined to the node's event loop, like `NodeState`.
final class PeerTransport: FramedTransport, @unchecked Sendable {
    typealias Target = String
    typealias Peer = String
    typealias Handler = FramedChannelHandler<PeerTransport>

    enum Phase: String {
        case connecting, handshaking, connected, backoff, refused
    }

    struct Link {
        let node: Topology.Node
        var phase = Phase.connecting
        var channel: Channel?
        var failures = 0
        var lastError: String?
        var framesSent: UInt64 = 0
        /// Envelopes for this node dropped because no connection to it was open.
        var framesDropped: UInt64 = 0
    }

    struct Counters {
        var framesReceived: UInt64 = 0
        var bytesSent: UInt64 = 0
        var bytesReceived: UInt64 = 0
        var handshakesRefused: UInt64 = 0
        var malformedFrames: UInt64 = 0
    }

    let state: NodeState
    let logger: Logger
    let outgoing = OutgoingFrames()
    let connectionKind = "peer"
    /// Federation/peer TLS, replaced on SIGHUP (new connections take the new certificate).
    let tls: ReloadableTLS<FederationTLS>?
    var links: [String: Link] = [:]
    /// Accepted connections by the node they come from.
    var inbound: [String: Channel] = [:]
    var counters = Counters()
    var listener: Channel?
    var timers: [RepeatedTask] = []
    var stopped = false
    /// A flush of the connections with frames pending is scheduled for the end of this turn.
    var flushScheduled = false

    /// A dialer sends a heartbeat this often and the listener echoes it, so both ends notice
    /// a peer that vanished without closing its socket (a host gone, not a process).
    static let heartbeatInterval = TimeAmount.milliseconds(500)
    static let silenceLimitMilliseconds: UInt64 = 5_000
    static let maximumBackoffMilliseconds: UInt64 = 1_000
    static let refusalBackoffMilliseconds: UInt64 = 5_000

    init(state: NodeState, logger: Logger) throws {
        self.state = state
        self.logger = logger
        let configuration = state.configuration
        tls = try configuration.topology.tls.map {
            try FederationTLS.reloadable(settings: $0, node: configuration.node.name, topologyDirectory: configuration.topologyDirectory)
        }
        for node in configuration.site.nodes where node.name != configuration.node.name {
            links[node.name] = Link(node: node)
        }
    }

    var eventLoop: EventLoop { state.eventLoop }
    var configuration: NodeConfiguration { state.configuration }

    // MARK: Lifecycle

    func start() async throws {
        let address = configuration.node.peer
        let channel = try await listen(on: address, eventLoop: eventLoop, tls: tls?.serverContext)
        try await eventLoop.submit {
            self.listener = channel
            self.logger.info("control plane listening for peers", metadata: ["peer.address": "\(address)", "peers": "\(self.links.keys.sorted())"])
            for name in self.links.keys.sorted() { self.dial(name) }
            self.timers.append(
                self.eventLoop.scheduleRepeatedTask(initialDelay: Self.heartbeatInterval, delay: Self.heartbeatInterval) { _ in
                    self.heartbeat()
                }
            )
        }.get()
    }

    func stop() async {
        try? await eventLoop.submit {
            self.stopped = true
            for timer in self.timers { timer.cancel() }
            self.timers = []
            self.listener?.close(promise: nil)
            for link in self.links.values { link.channel?.close(promise: nil) }
            for channel in self.inbound.values { channel.close(promise: nil) }
        }.get()
    }

    // MARK: Dialing

    func dial(_ name: String) {
        guard !stopped, var link = links[name] else { return }
        link.phase = .connecting
        links[name] = link
        let address = link.node.peer
        connect(to: address, for: name, eventLoop: eventLoop, tls: tls?.clientContext, timeout: .seconds(1))
            .whenComplete { result in
                switch result {
                case .success(let channel):
                    if self.stopped {
                        channel.close(promise: nil)
                        return
                    }
                    self.links[name]?.channel = channel
                    self.links[name]?.phase = .handshaking
                case .failure(let error):
                    self.dialFailed(name, reason: "cannot connect to \(name) at \(address): \(error)")
                }
            }
    }

    /// Schedules the next attempt: exponential backoff with jitter, short because a site's
    /// failure detection is about a second.
    func dialFailed(_ name: String, reason: String) {
        guard !stopped, var link = links[name] else { return }
        link.failures += 1
        link.channel = nil
        link.lastError = reason
        let refused = link.phase == .refused
        link.phase = refused ? .refused : .backoff
        links[name] = link
        let delay = redialDelayMilliseconds(
            failures: link.failures, baseMilliseconds: 50, maximumMilliseconds: Self.maximumBackoffMilliseconds,
            refused: refused, refusalMilliseconds: Self.refusalBackoffMilliseconds
        )
        if link.failures == 1 || link.failures % 100 == 0 || refused {
            logger.warning("peer connection down", metadata: ["peer": "\(name)", "reason": "\(reason)", "retry_in_ms": "\(delay)", "attempts": "\(link.failures)"])
        }
        eventLoop.scheduleTask(in: .milliseconds(Int64(delay))) { self.dial(name) }
    }

    // MARK: Handshake

    var hello: Hello {
        Hello(
            federation: configuration.topology.federation,
            protocolVersion: FederationSettings.currentProtocolVersion,
            site: SiteID(configuration.site.id),
            siteName: configuration.site.name,
            nodeName: configuration.node.name,
            topologyVersion: UInt64(configuration.topology.topologyVersion),
            roles: nil,
            incarnation: state.controlPlane?.raft.id.incarnation ?? 0,
            targetSite: SiteID(configuration.site.id),
            voters: siteVoters
        )
    }

    /// The voters of this node's site in its topology, sorted (peers must name the same).
    var siteVoters: [String] { configuration.site.nodes.filter(\.voter).map(\.name).sorted() }

    /// Why a peer's Hello is refused, or nil.
    func refusal(of hello: Hello, certificateNames: Set<String>?) -> String? {
        let topology = configuration.topology
        if hello.federation != topology.federation {
            return "peer belongs to federation '\(hello.federation)', this node to '\(topology.federation)'"
        }
        if hello.protocolVersion != FederationSettings.currentProtocolVersion {
            return "peer speaks protocol \(hello.protocolVersion), this node speaks \(FederationSettings.currentProtocolVersion)"
        }
        if hello.site.rawValue != configuration.site.id {
            return "peer is a node of site '\(hello.siteName)'; peer connections stay within site '\(configuration.site.name)' (sites talk on their federation addresses)"
        }
        if links[hello.nodeName] == nil {
            return "peer calls itself '\(hello.nodeName)', which is not another node of site '\(configuration.site.name)'"
        }
        if let refusal = FederationSettings.topologyVersionRefusal(peer: hello.topologyVersion, own: UInt64(topology.topologyVersion)) {
            return refusal
        }
        let voters = siteVoters
        if hello.voters != voters {
            // Two voter sets would count two different majorities: Raft's safety rests on one.
            return "peer's topology (version \(hello.topologyVersion)) names the voters \(hello.voters), this node's (version \(topology.topologyVersion)) \(voters):"
                + " a running site changes its non-voters only; change voters by restarting the whole site with the new topology"
        }
        if let certificateNames, !certificateNames.contains(hello.nodeName) {
            return "peer claims to be node '\(hello.nodeName)' but its certificate names \(certificateNames.sorted())"
        }
        return nil
    }

    func dialerActive(_ name: String, channel: Channel) {
        send(.hello(hello), on: channel)
        flush(channel)
    }

    // MARK: Frames

    func received(_ frame: Frame, bytes: Int, handler: Handler, channel: Channel) {
        counters.bytesReceived += UInt64(bytes)
        counters.framesReceived += 1
        if let name = handler.dialedTarget {
            dialedReceived(frame, from: name, handler: handler, channel: channel)
            return
        }
        guard let peer = handler.peer else {
            accept(frame, handler: handler, channel: channel)
            return
        }
        switch frame {
        case .raft(let envelope):
            guard envelope.from.name == peer, envelope.to == configuration.node.name else {
                protocolError(channel, peer: peer, reason: "a message from \(envelope.from.name) to \(envelope.to) on the connection of \(peer)")
                return
            }
            state.controlPlane?.receive(envelope)
        case .forwardedCommand, .partitionWrites, .transferChunk, .backupReport, .siteMessages, .subscriberInterest,
            .lockRequest, .transactionWrites, .partitionQuery, .remoteDeltas, .remoteRoundRequest:
            if case .transferChunk = frame { state.dataPlane?.counters.transferBytesReceived += UInt64(bytes) }
            state.dataPlane?.received(frame, from: peer, on: channel)
        case .heartbeat:
            send(frame, on: channel)
            flush(channel)
        default:
            protocolError(channel, peer: peer, reason: "unexpected \(frame.kind) frame on a peer connection")
        }
    }

    /// The listener's side of the handshake.
    func accept(_ frame: Frame, handler: Handler, channel: Channel) {
        guard case .hello(let hello) = frame else {
            refuse(channel, reason: "expected Hello as the first frame, got \(frame.kind)", peer: nil)
            return
        }
        if let reason = refusal(of: hello, certificateNames: FederationTLS.peerNames(of: channel)) {
            refuse(channel, reason: reason, peer: hello.nodeName)
            return
        }
        handler.peer = hello.nodeName
        if let previous = inbound[hello.nodeName], previous !== channel { previous.close(promise: nil) }
        inbound[hello.nodeName] = channel
        send(.helloReply(accepted: true, reason: "", responder: self.hello), on: channel)
        flush(channel)
        logger.info("peer connected", metadata: ["peer": "\(hello.nodeName)", "direction": "inbound"])
    }

    func refuse(_ channel: Channel, reason: String, peer: String?) {
        counters.handshakesRefused += 1
        logger.error("peer connection refused", metadata: ["reason": "\(reason)", "remote": "\(channel.remoteAddress.map(NodeState.describe) ?? "?")", "peer": "\(peer ?? "?")"])
        refuseAndClose(channel, reason: reason)
    }

    /// Frames on a connection this node dialed: the handshake's answer, then heartbeat echoes.
    func dialedReceived(_ frame: Frame, from name: String, handler: Handler, channel: Channel) {
        switch frame {
        case .helloReply(let accepted, let reason, let responder) where handler.peer == nil:
            guard accepted else {
                counters.handshakesRefused += 1
                closeDialed(name, channel, reason: "refused by \(name): \(reason)", refused: true)
                return
            }
            guard let responder, responder.nodeName == name, responder.federation == configuration.topology.federation else {
                closeDialed(name, channel, reason: "the peer at \(links[name]!.node.peer) is not node '\(name)' of this federation", refused: true)
                return
            }
            if let names = FederationTLS.peerNames(of: channel), !names.contains(name) {
                closeDialed(name, channel, reason: "the peer claims to be node '\(name)' but its certificate names \(names.sorted())", refused: true)
                return
            }
            handler.peer = name
            links[name]?.phase = .connected
            links[name]?.failures = 0
            links[name]?.lastError = nil
            logger.info("peer connected", metadata: ["peer": "\(name)", "direction": "outbound"])
            state.dataPlane?.linkUp(name)
        case .heartbeat where handler.peer != nil:
            break
        case .forwardedReply, .lockReply, .transactionDone, .partitionQueryReply, .remoteDeltasApplied, .remoteRoundAnswer:
            // Answers come back on the connection their request left on (after its handshake:
            // a `where` would guard the last pattern only).
            guard handler.peer != nil else { fallthrough }
            state.dataPlane?.received(frame, from: name, on: channel)
        default:
            protocolError(channel, peer: name, reason: "unexpected \(frame.kind) frame on a dialed peer connection")
        }
    }

    func closeDialed(_ name: String, _ channel: Channel, reason: String, refused: Bool) {
        links[name]?.lastError = reason
        if refused { links[name]?.phase = .refused }
        logger.error("peer connection closed", metadata: ["peer": "\(name)", "reason": "\(reason)"])
        discard(channel)
    }

    func protocolError(_ channel: Channel, peer: String, reason: String) {
        counters.malformedFrames += 1
        if links[peer]?.channel === channel { links[peer]?.lastError = reason }
        logger.error("peer connection closed", metadata: ["peer": "\(peer)", "reason": "\(reason)"])
        discard(channel)
    }

    func malformed(_ error: Error, handler: Handler, channel: Channel) {
        let peer = handler.dialedTarget ?? handler.peer ?? channel.remoteAddress.map(NodeState.describe) ?? "?"
        protocolError(channel, peer: peer, reason: "malformed frame: \(error)")
    }

    /// A connection closed (either side, any reason).
    func closed(handler: Handler, channel: Channel) {
        outgoing.drop(channel)
        if let name = handler.dialedTarget {
            guard links[name]?.channel === channel || links[name]?.channel == nil else { return }
            if links[name]?.phase == .connected { state.dataPlane?.linkLost(name, inbound: false) }
            dialFailed(name, reason: links[name]?.lastError ?? "connection closed")
        } else if let peer = handler.peer, inbound[peer] === channel {
            inbound[peer] = nil
            state.dataPlane?.linkLost(peer, inbound: true)
            logger.info("peer disconnected", metadata: ["peer": "\(peer)", "direction": "inbound"])
        }
    }

    /// TLS or socket failure below the frames.
    func connectionFailed(_ error: Error, handler: Handler, channel: Channel) {
        let (reason, tlsFailure) = connectionFailureReason(error)
        if tlsFailure { counters.handshakesRefused += 1 }
        if let name = handler.dialedTarget {
            links[name]?.lastError = reason
            if tlsFailure { links[name]?.phase = .refused }
        }
        logger.error(
            tlsFailure ? "peer connection refused" : "peer connection failed",
            metadata: ["peer": "\(handler.dialedTarget ?? handler.peer ?? "?")", "reason": "\(reason)", "remote": "\(channel.remoteAddress.map(NodeState.describe) ?? "?")"]
        )
    }

    // MARK: Sending

    /// Sends each envelope on the connection to its node, or drops it (counted) when that
    /// connection is not up: Raft retries by itself.
    func send(_ envelopes: [RaftEnvelope]) {
        var touched: [ObjectIdentifier: Channel] = [:]
        for envelope in envelopes {
            guard let link = links[envelope.to] else { continue }
            guard link.phase == .connected, let channel = link.channel else {
                links[envelope.to]!.framesDropped += 1
                continue
            }
            send(.raft(envelope), on: channel)
            links[envelope.to]!.framesSent += 1
            touched[ObjectIdentifier(channel)] = channel
        }
        for channel in touched.values { flush(channel) }
    }

    func send(_ frame: Frame, on channel: Channel) {
        counters.bytesSent += UInt64(write(frame, on: channel))
    }

    /// Answers a request on the connection it came on (the requester's dialed connection):
    /// the answer needs no connection of this node's own, which may be reconnecting.
    /// Flushed once per event-loop turn, as `sendData` is: under load a turn answers many
    /// forwarded commands of one peer, and a flush per answer was a system call each.
    func sendReply(_ frame: Frame, on channel: Channel) {
        guard let written = writeIfFits(frame, on: channel) else { return }
        counters.bytesSent += UInt64(written)
        flushAtEndOfTurn()
    }

    /// Flushes the connections with frames pending once the event loop's turn is over,
    /// however many frames the turn writes on each.
    func flushAtEndOfTurn() {
        guard !flushScheduled else { return }
        flushScheduled = true
        eventLoop.execute {
            self.flushScheduled = false
            self.outgoing.flushAll()
        }
    }

    /// Sends a data-plane frame to `node` on the connection this node dialed, flushed once
    /// per event-loop turn however many frames the turn sends. Returns false when that
    /// connection is not up, or the frame exceeds the frame limit (the caller decides).
    func sendData(_ frame: Frame, to node: String) -> Bool {
        sendDataCounted(frame, to: node) != nil
    }

    /// `sendData`, returning the bytes written (nil: not sent).
    func sendDataCounted(_ frame: Frame, to node: String) -> Int? {
        guard let link = links[node], link.phase == .connected, let channel = link.channel,
            let written = writeIfFits(frame, on: channel)
        else { return nil }
        counters.bytesSent += UInt64(written)
        links[node]!.framesSent += 1
        flushAtEndOfTurn()
        return written
    }

    func heartbeat() {
        guard !stopped else { return }
        let now = WallClock.monotonicMilliseconds()
        var open: [(String, Channel, dialed: Bool)] = inbound.map { ($0.key, $0.value, false) }
        for (name, link) in links where link.phase == .connected {
            if let channel = link.channel { open.append((name, channel, true)) }
        }
        for (name, channel, dialed) in open {
            guard let handler = handler(of: channel) else { continue }
            if now > handler.lastReceivedAt + Self.silenceLimitMilliseconds {
                logger.error("peer silent: closing the connection", metadata: ["peer": "\(name)", "silent_ms": "\(now - handler.lastReceivedAt)"])
                channel.close(promise: nil)
                continue
            }
            if dialed {
                send(.heartbeat(sentAtMilliseconds: WallClock.nowMilliseconds(), roles: nil), on: channel)
                flush(channel)
            }
        }
    }
}
