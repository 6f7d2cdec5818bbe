import Federation
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import SessionModel
import Topology
import Wire

/// The network side of federation (DESIGN.md §4): a listener on the node's `federation` address
/// for sites that dial in, a dialer per linked site with reconnect backoff, the handshake,
/// heartbeats, and framing. It moves bytes; `FederationCore` decides. Confined to the node's
/// event loop, like `NodeState`.
/// The far end of a federation connection: a node of another site.
struct FederationPeer: Hashable {
    let site: SiteID
    let node: String
}

final class FederationTransport: FramedTransport, @unchecked Sendable {
    typealias Target = SiteID
    typealias Peer = FederationPeer
    typealias Handler = FramedChannelHandler<FederationTransport>

    enum DialPhase: String {
        case connecting, handshaking, connected, backoff, refused
    }

    struct DialState {
        var phase = DialPhase.connecting
        var failures = 0
        var nextNode = 0
        var remoteNode: String?
        var lastError: String?
        var channel: Channel?
    }

    /// Traffic counters per remote site, both directions.
    struct Traffic {
        var bytesSent: UInt64 = 0
        var bytesReceived: UInt64 = 0
        var framesSent: UInt64 = 0
        var framesReceived: UInt64 = 0
        var handshakesRefused: UInt64 = 0
        var malformedFrames: UInt64 = 0
        /// When a frame last arrived from the site, either direction (monotonic ms).
        var lastReceivedAt: UInt64?
    }

    let state: NodeState
    let logger: Logger
    let outgoing = OutgoingFrames()
    let connectionKind = "federation"
    let settings: FederationSettings
    /// Nil: plaintext (allowed on loopback only, which topology validation enforces).
    /// Federation/peer TLS, replaced on SIGHUP (new connections take the new certificate).
    let tls: ReloadableTLS<FederationTLS>?
    var dials: [SiteID: DialState] = [:]
    /// Connections from the nodes of other sites (every node of a site dials on its own).
    var inbound: [FederationPeer: Channel] = [:]
    var traffic: [SiteID: Traffic] = [:]
    var listener: Channel?
    var timers: [RepeatedTask] = []
    var stopped = false

    /// Heartbeats go out this often; a connection silent for `silenceLimit` is closed.
    let heartbeatInterval = TimeAmount.milliseconds(1_000)
    let silenceLimitMilliseconds: UInt64 = 5_000
    static let maximumBackoffMilliseconds: UInt64 = 5_000
    static let refusalBackoffMilliseconds: UInt64 = 5_000

    init(state: NodeState, settings: FederationSettings, logger: Logger) throws {
        self.state = state
        self.settings = settings
        self.logger = logger
        let configuration = state.configuration
        tls = try configuration.topology.tls.map {
            try FederationTLS.reloadable(settings: $0, node: configuration.node.name, topologyDirectory: configuration.topologyDirectory)
        }
        // The nodes of a site start dialing at different nodes of the other site, so that
        // the links of a site spread over the other's nodes.
        let ownIndex = configuration.topology.sites.first { $0.id == settings.localSite.rawValue }?.nodes.firstIndex { $0.name == configuration.node.name } ?? 0
        for site in settings.linkedSites {
            dials[site] = DialState(nextNode: ownIndex)
            traffic[site] = Traffic()
        }
    }

    var eventLoop: EventLoop { state.eventLoop }

    // MARK: Lifecycle

    func start() async throws {
        let address = state.configuration.node.federation
        let channel = try await listen(on: address, eventLoop: eventLoop, tls: tls?.serverContext)
        try await eventLoop.submit {
            self.listener = channel
            self.logger.info("federation listening", metadata: ["federation.address": "\(address)", "links": "\(self.settings.linkedSites.map { self.settings.name(of: $0) })"])
            for site in self.settings.linkedSites { self.dial(site) }
            self.timers.append(
                self.eventLoop.scheduleRepeatedTask(initialDelay: .milliseconds(Int64(self.settings.batchIntervalMilliseconds)), delay: .milliseconds(Int64(self.settings.batchIntervalMilliseconds))) { _ in
                    self.tick()
                }
            )
            self.timers.append(
                self.eventLoop.scheduleRepeatedTask(initialDelay: self.heartbeatInterval, delay: self.heartbeatInterval) { _ in
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
            for dial in self.dials.values { dial.channel?.close(promise: nil) }
            for channel in self.inbound.values { channel.close(promise: nil) }
        }.get()
    }

    // MARK: Dialing

    func dial(_ site: SiteID) {
        guard !stopped, var dial = dials[site], let info = settings.sites[site], !info.nodes.isEmpty else { return }
        let nodes = state.configuration.topology.sites.first { $0.id == site.rawValue }?.nodes ?? []
        guard !nodes.isEmpty else { return }
        let node = nodes[dial.nextNode % nodes.count]
        dial.phase = .connecting
        dial.remoteNode = node.name
        dials[site] = dial
        connect(to: node.federation, for: site, eventLoop: eventLoop, tls: tls?.clientContext, timeout: .seconds(2))
            .whenComplete { result in
                switch result {
                case .success(let channel):
                    if self.stopped {
                        channel.close(promise: nil)
                        return
                    }
                    self.dials[site]?.channel = channel
                    self.dials[site]?.phase = .handshaking
                case .failure(let error):
                    self.dialFailed(site, reason: "cannot connect to \(node.name) at \(node.federation): \(error)", refused: false)
                }
            }
    }

    /// Schedules the next attempt: exponential backoff with jitter, the next node of the site.
    func dialFailed(_ site: SiteID, reason: String, refused: Bool) {
        guard !stopped, var dial = dials[site] else { return }
        dial.failures += 1
        dial.nextNode += 1
        dial.channel = nil
        dial.lastError = reason
        dial.phase = refused ? .refused : .backoff
        dials[site] = dial
        let delay = redialDelayMilliseconds(
            failures: dial.failures, baseMilliseconds: 100, maximumMilliseconds: Self.maximumBackoffMilliseconds,
            refused: refused, refusalMilliseconds: Self.refusalBackoffMilliseconds
        )
        if dial.failures == 1 || dial.failures % 20 == 0 || refused {
            logger.warning("federation link down", metadata: ["site": "\(settings.name(of: site))", "reason": "\(reason)", "retry_in_ms": "\(delay)", "attempts": "\(dial.failures)"])
        }
        eventLoop.scheduleTask(in: .milliseconds(Int64(delay))) { self.dial(site) }
    }

    // MARK: Connections

    /// A dialed connection is open: introduce this node.
    func dialerActive(_ site: SiteID, channel: Channel) {
        send(.hello(state.federation!.hello(to: site)), on: channel, site: site)
    }

    func received(_ frame: Frame, bytes: Int, handler: Handler, channel: Channel) {
        let now = WallClock.nowMilliseconds()
        switch handler.role {
        case .listener:
            guard let peer = handler.peer else {
                handshake(frame, handler: handler, channel: channel)
                return
            }
            count(received: bytes, from: peer.site)
            receivedAfterHandshake(frame, on: .inbound(peer.site, node: peer.node), now: now)
        case .dialer(let site):
            count(received: bytes, from: site)
            guard handler.peer != nil else {
                handshakeReply(frame, site: site, handler: handler, channel: channel, now: now)
                return
            }
            receivedAfterHandshake(frame, on: .outbound(site), now: now)
        }
    }

    /// A frame on a connection past its handshake: a federation message or a heartbeat (either
    /// direction); any other frame closes the connection.
    func receivedAfterHandshake(_ frame: Frame, on connection: FederationConnection, now: UInt64) {
        switch frame {
        case .federation(let message):
            perform(state.federation!.receive(message, on: connection, store: &state.keyspace, now: now))
        case .heartbeat(_, let roles):
            perform(state.federation!.heard(roles: roles, from: connection.site))
        default:
            perform([FederationCore.unexpected(frame.kind, on: connection)])
        }
    }

    /// The listener's side of the handshake.
    func handshake(_ frame: Frame, handler: Handler, channel: Channel) {
        guard case .hello(let hello) = frame else {
            refuse(channel, reason: "expected Hello as the first frame, got \(frame.kind)", peer: nil)
            return
        }
        let core = state.federation!
        if let reason = core.refusal(of: hello, certificateNames: FederationTLS.peerNames(of: channel)) {
            refuse(channel, reason: reason, peer: hello)
            return
        }
        let peer = FederationPeer(site: hello.site, node: hello.nodeName)
        handler.peer = peer
        if let previous = inbound[peer], previous !== channel {
            previous.close(promise: nil)
        }
        inbound[peer] = channel
        send(.helloReply(accepted: true, reason: "", responder: core.hello(to: hello.site)), on: channel, site: hello.site)
        logger.info("federation peer connected", metadata: ["site": "\(hello.siteName)", "node": "\(hello.nodeName)", "direction": "inbound"])
        perform(state.federation!.inboundAccepted(hello))
    }

    func refuse(_ channel: Channel, reason: String, peer: Hello?) {
        logger.error(
            "federation connection refused",
            metadata: ["reason": "\(reason)", "remote": "\(channel.remoteAddress.map(NodeState.describe) ?? "?")", "peer.site": "\(peer?.siteName ?? "?")", "peer.node": "\(peer?.nodeName ?? "?")"]
        )
        if let site = peer?.site, traffic[site] != nil { traffic[site]!.handshakesRefused += 1 }
        refuseAndClose(channel, reason: reason)
    }

    /// The dialer's side: the listener's answer to Hello.
    func handshakeReply(_ frame: Frame, site: SiteID, handler: Handler, channel: Channel, now: UInt64) {
        guard case .helloReply(let accepted, let reason, let responder) = frame else {
            closeDialed(site, channel, reason: "expected HelloReply, got \(frame.kind)", refused: true)
            return
        }
        guard accepted else {
            traffic[site]?.handshakesRefused += 1
            closeDialed(site, channel, reason: "refused by \(settings.name(of: site)): \(reason)", refused: true)
            return
        }
        guard let responder, responder.federation == settings.federation, responder.site == site else {
            closeDialed(site, channel, reason: "the peer at this address is not site '\(settings.name(of: site))' of federation '\(settings.federation)'", refused: true)
            return
        }
        guard settings.sites[site]?.nodes.contains(responder.nodeName) == true else {
            closeDialed(site, channel, reason: "the peer calls itself '\(responder.nodeName)', which is not a node of site '\(settings.name(of: site))'", refused: true)
            return
        }
        if let names = FederationTLS.peerNames(of: channel), !names.contains(responder.nodeName) {
            closeDialed(site, channel, reason: "the peer claims to be node '\(responder.nodeName)' but its certificate names \(names.sorted())", refused: true)
            return
        }
        handler.peer = FederationPeer(site: site, node: responder.nodeName)
        dials[site]?.phase = .connected
        dials[site]?.failures = 0
        dials[site]?.lastError = nil
        dials[site]?.remoteNode = responder.nodeName
        logger.info("federation peer connected", metadata: ["site": "\(settings.name(of: site))", "node": "\(responder.nodeName)", "direction": "outbound"])
        perform(state.federation!.outboundConnected(to: site, roles: responder.roles, now: now))
    }

    func closeDialed(_ site: SiteID, _ channel: Channel, reason: String, refused: Bool) {
        dials[site]?.lastError = reason
        if refused { dials[site]?.phase = .refused }
        logger.error("federation connection closed", metadata: ["site": "\(settings.name(of: site))", "reason": "\(reason)"])
        discard(channel)
    }

    /// A connection closed (either side, any reason).
    func closed(handler: Handler, channel: Channel) {
        outgoing.drop(channel)
        switch handler.role {
        case .listener:
            if let peer = handler.peer, inbound[peer] === channel {
                inbound[peer] = nil
                logger.info("federation peer disconnected", metadata: ["site": "\(settings.name(of: peer.site))", "node": "\(peer.node)", "direction": "inbound"])
            }
        case .dialer(let site):
            guard dials[site]?.channel === channel || dials[site]?.channel == nil else { return }
            if handler.peer != nil { state.federation!.outboundDisconnected(from: site) }
            let refused = dials[site]?.phase == .refused
            dialFailed(site, reason: dials[site]?.lastError ?? "connection closed", refused: refused)
        }
    }

    /// A connection failed below the frames: TLS (a certificate from another CA, an expired or
    /// missing one) or the socket. Logged with the reason; the connection closes.
    func connectionFailed(_ error: Error, handler: Handler, channel: Channel) {
        let (reason, tlsFailure) = connectionFailureReason(error)
        switch handler.role {
        case .dialer(let site):
            dials[site]?.lastError = reason
            if tlsFailure { dials[site]?.phase = .refused }
            logger.error("federation connection failed", metadata: ["site": "\(settings.name(of: site))", "reason": "\(reason)"])
        case .listener:
            logger.error(
                tlsFailure ? "federation connection refused" : "federation connection failed",
                metadata: ["reason": "\(reason)", "remote": "\(channel.remoteAddress.map(NodeState.describe) ?? "?")"]
            )
        }
    }

    func malformed(_ error: Error, handler: Handler, channel: Channel) {
        let site = handler.dialedTarget ?? handler.peer?.site
        if let site { traffic[site]?.malformedFrames += 1 }
        let reason = "malformed frame: \(error)"
        if let site = handler.dialedTarget { dials[site]?.lastError = reason }
        logger.error("federation connection closed", metadata: ["site": "\(site.map { settings.name(of: $0) } ?? "?")", "reason": "\(reason)"])
        discard(channel)
    }

    // MARK: Effects

    func perform(_ actions: [FederationAction]) {
        var touched: [ObjectIdentifier: Channel] = [:]
        for action in actions {
            switch action {
            case .send(let connection, let message):
                guard let channel = channel(for: connection) else { continue }
                write(.federation(message), on: channel, site: connection.site)
                touched[ObjectIdentifier(channel)] = channel
            case .close(let connection, let reason):
                logger.error("federation connection closed", metadata: ["connection": "\(connection)", "reason": "\(reason)"])
                if case .outbound(let site) = connection { dials[site]?.lastError = reason }
                channel(for: connection)?.close(promise: nil)
            case .notify(let events):
                state.announce(events)
            case .merge(let batch):
                if let dataPlane = state.dataPlane {
                    dataPlane.mergeRemote(batch)
                } else {
                    perform(state.federation!.remoteBatchFailed(batch, reason: "this node has no data plane"))
                }
            case .answerAtPrimary(let request):
                state.dataPlane?.answerRemoteRound(request)
            case .mergeStates(let repair):
                state.dataPlane?.mergeRepair(repair)
            case .collectAtPrimary(let collection):
                state.dataPlane?.collectAtPrimary(collection)
            case .sendCommitted(let connection, let message, let partition):
                guard let dataPlane = state.dataPlane else { continue }
                dataPlane.whenWritesSoFarCommitted(Int(partition), then: {
                    guard let channel = self.channel(for: connection) else { return }
                    self.send(.federation(message), on: channel, site: connection.site)
                }, otherwise: {})
            case .learnedRoles(let assignment, let site):
                if state.learnedRoles != assignment {
                    logger.notice("role assignment learned from a linked site", metadata: ["site": "\(settings.name(of: site))", "assignment": "\(assignment)"])
                }
                state.learned(assignment)
            case .log(let log):
                let metadata = log.metadata.mapValues { Logger.MetadataValue.string($0) }
                switch log.level {
                case .info: logger.info("\(log.message)", metadata: metadata)
                case .warning: logger.warning("\(log.message)", metadata: metadata)
                case .error: logger.error("\(log.message)", metadata: metadata)
                }
            }
        }
        for channel in touched.values { flush(channel) }
    }

    func channel(for connection: FederationConnection) -> Channel? {
        switch connection {
        case .outbound(let site): return dials[site]?.phase == .connected ? dials[site]?.channel : nil
        case .inbound(let site, let node): return inbound[FederationPeer(site: site, node: node)]
        }
    }

    func send(_ frame: Frame, on channel: Channel, site: SiteID) {
        write(frame, on: channel, site: site)
        flush(channel)
    }

    func write(_ frame: Frame, on channel: Channel, site: SiteID) {
        let size = write(frame, on: channel)
        traffic[site]?.bytesSent += UInt64(size)
        traffic[site]?.framesSent += 1
    }

    func count(received bytes: Int, from site: SiteID) {
        traffic[site]?.bytesReceived += UInt64(bytes)
        if bytes > 0 { traffic[site]?.framesReceived += 1 }
        traffic[site]?.lastReceivedAt = WallClock.monotonicMilliseconds()
    }

    // MARK: Timers

    func tick() {
        guard !stopped, state.federation != nil else { return }
        let now = WallClock.nowMilliseconds()
        if let dataPlane = state.dataPlane { state.federation!.lead(Set(dataPlane.copies.primaries.keys.map(UInt32.init))) }
        state.timed("federation tick: batches and rounds due") { perform(state.federation!.tick(now: now)) }
        state.timed("federation tick: key digests and collection") { perform(state.federation!.continueRounds(store: &state.keyspace, now: now)) }
        state.updateLoading(now: now)
    }

    func heartbeat() {
        guard !stopped else { return }
        let now = WallClock.monotonicMilliseconds()
        for (site, channel) in openConnections() {
            guard let handler = handler(of: channel) else { continue }
            if now > handler.lastReceivedAt + silenceLimitMilliseconds {
                logger.error("federation peer silent: closing the connection", metadata: ["site": "\(settings.name(of: site))", "silent_ms": "\(now - handler.lastReceivedAt)"])
                channel.close(promise: nil)
                continue
            }
            send(.heartbeat(sentAtMilliseconds: WallClock.nowMilliseconds(), roles: state.federation?.roles), on: channel, site: site)
        }
    }

    /// The site's role assignment changed: every open connection hears it now (a heartbeat
    /// carries it), so a fenced or superseded site stops taking writes within a round trip.
    func announceRoles() {
        guard !stopped, let roles = state.federation?.roles else { return }
        for (site, channel) in openConnections() {
            send(.heartbeat(sentAtMilliseconds: WallClock.nowMilliseconds(), roles: roles), on: channel, site: site)
        }
    }

    /// Every connection past its handshake, inbound and outbound, with its site.
    func openConnections() -> [(SiteID, Channel)] {
        var open: [(SiteID, Channel)] = inbound.map { ($0.key.site, $0.value) }
        for (site, dial) in dials where dial.phase == .connected {
            if let channel = dial.channel { open.append((site, channel)) }
        }
        return open
    }
}
