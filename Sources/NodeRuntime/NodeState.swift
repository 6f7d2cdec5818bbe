import ControlPlane
import Federation
import Keyspace
import Logging
import NIOCore
import NIOSSL
import RESP
import SessionModel

/// A connected client as other parts of the node see it (CLIENT LIST, pub/sub delivery).
struct ClientRecord {
    let id: UInt64
    let channel: Channel
    let remoteAddress: String
    let localAddress: String
    let connectedAt: UInt64
    /// The loop carrying the client's socket, as Redis 8's CLIENT LIST says: 0 for the node
    /// state's own, 1... for the loops `threads:` adds.
    let ioThread: Int
    var name: [UInt8]?
    var libraryName: String?
    var libraryVersion: String?
    var protocolVersion: RESPVersion = .v2
    /// SELECT's database, for CLIENT LIST.
    var database = 0
    /// Shared with the connection's handler, which updates it on every command without a
    /// lookup in `NodeState.clients`.
    let activity: ClientActivity
    var lastCommand: String { activity.lastCommand }
    var lastActivity: UInt64 { activity.lastActivity }
    var channels: Set<[UInt8]> = []
    var patterns: Set<[UInt8]> = []
}

/// A client's last command and when it ran (CLIENT LIST's cmd and idle).
final class ClientActivity {
    var lastCommand = "NULL"
    var lastActivity: UInt64

    init(lastActivity: UInt64) {
        self.lastActivity = lastActivity
    }
}

/// The node's shared state. Confined to one event loop: every access happens on `eventLoop`
/// (client handlers and timers all run there), which is why it can be `@unchecked Sendable`.
/// This mirrors Redis's single-threaded model and needs no locks.
final class NodeState: @unchecked Sendable {
    let eventLoop: EventLoop
    let configuration: NodeConfiguration
    var keyspace: Keyspace
    var clients: [UInt64: ClientRecord] = [:]
    /// Set when the stopping node closes every client: nothing more is written to them (with
    /// `threads:` above 1 their sockets' loops stop right after).
    var clientsClosed = false
    var nextClientID: UInt64 = 1
    var notificationFlags = NotificationFlags()
    /// Redis's encoding thresholds as CONFIG SET left them (read back, without effect here).
    var encodingSettings = EncodingSettings()
    let startedAt: UInt64
    var statistics = RuntimeStatistics()
    var memoryRelease = MemoryRelease()
    var slowSteps = SlowSteps()
    /// Subscribers by channel and by pattern (client ids).
    var channelSubscribers: [[UInt8]: Set<UInt64>] = [:]
    var patternSubscribers: [[UInt8]: Set<UInt64>] = [:]
    /// Deltas produced by local writes since start.
    var pendingDeltaCount: UInt64 = 0
    /// The federation state machine and its transport (nil for a site linked to no other).
    var federation: FederationCore?
    var transport: FederationTransport?
    /// The site's control plane as this node runs it (Raft and the cluster map).
    var controlPlane: ControlPlaneRuntime?
    /// Partition copies, routing and replication inside the site (nil for a site of one
    /// node: it holds every partition and has no backups).
    var dataPlane: DataPlane?
    /// A federated node starts empty and answers -LOADING until it has recovered the data of
    /// the other sites by anti-entropy (DESIGN.md §4).
    var loading = false
    /// Set once the node started leaving (SIGTERM, SIGINT, `sessionfed drain`).
    var drain: DrainState?
    /// Starts a drain from the admin endpoint (set once the node runs).
    var requestDrain: (@Sendable (String) -> Void)?
    /// The highest role assignment a linked site told this node about that the site's control
    /// plane has not committed yet (it may have no leader at that moment: a node that just
    /// restarted). Writes already obey it, so a returning old active site is fenced from its
    /// first handshake on, not from the commit.
    var learnedRoles: RoleAssignment?
    /// The client TLS listener's context (`clientTLS:`), reloaded on SIGHUP.
    var clientTLS: ReloadableTLS<NIOSSLContext>?
    var certificateReloads: UInt64 = 0
    var certificateReloadFailures: UInt64 = 0

    init(eventLoop: EventLoop, configuration: NodeConfiguration) {
        self.eventLoop = eventLoop
        self.configuration = configuration
        keyspace = Keyspace(configuration: configuration.keyspaceConfiguration)
        startedAt = WallClock.nowMilliseconds()
    }

    func registerClient(channel: Channel, ioThread: Int) -> UInt64 {
        eventLoop.preconditionInEventLoop()
        let id = nextClientID
        nextClientID += 1
        let now = WallClock.nowMilliseconds()
        clients[id] = ClientRecord(
            id: id,
            channel: channel,
            remoteAddress: channel.remoteAddress.map(Self.describe) ?? "?",
            localAddress: channel.localAddress.map(Self.describe) ?? "?",
            connectedAt: now,
            ioThread: ioThread,
            activity: ClientActivity(lastActivity: now)
        )
        statistics.connectionsReceived += 1
        return id
    }

    func unregisterClient(_ id: UInt64) {
        guard let record = clients.removeValue(forKey: id) else { return }
        for channel in record.channels { channelSubscribers[channel]?.remove(id) }
        for pattern in record.patterns { patternSubscribers[pattern]?.remove(id) }
        channelSubscribers = channelSubscribers.filter { !$0.value.isEmpty }
        patternSubscribers = patternSubscribers.filter { !$0.value.isEmpty }
        dataPlane?.subscribersChanged()
    }

    static func describe(_ address: SocketAddress) -> String {
        "\(address.ipAddress ?? "?"):\(address.port ?? 0)"
    }

    // MARK: Pub/sub

    /// Delivers a message to every subscriber of `channel` (direct and by pattern); returns
    /// how many received it.
    @discardableResult
    func publish(channel: [UInt8], message: [UInt8]) -> Int {
        var receivers = 0
        for id in channelSubscribers[channel] ?? [] {
            guard let record = clients[id] else { continue }
            send(.push([.bulk("message"), .bulkString(channel), .bulkString(message)]), to: record)
            receivers += 1
        }
        for (pattern, ids) in patternSubscribers where GlobPattern(pattern).matches(channel) {
            for id in ids {
                guard let record = clients[id] else { continue }
                send(.push([.bulk("pmessage"), .bulkString(pattern), .bulkString(channel), .bulkString(message)]), to: record)
                receivers += 1
            }
        }
        return receivers
    }

    func send(_ value: RESPValue, to record: ClientRecord) {
        guard !clientsClosed else { return }
        var buffer = record.channel.allocator.buffer(capacity: 64)
        RESPEncoder.encode(value, version: record.protocolVersion, into: &buffer)
        record.channel.writeAndFlush(buffer, promise: nil)
    }

    /// Keyspace events raised here: to this node's subscribers and, in a site of several
    /// nodes, to the other nodes' (each delivers them to its own subscribers once).
    func announce(_ events: [KeyspaceEvent]) {
        notify(events)
        dataPlane?.broadcast(events: events)
    }

    /// Whether any client of this node subscribes to anything (other nodes of the site send
    /// their messages and events only to nodes that do).
    var hasSubscribers: Bool { !channelSubscribers.isEmpty || !patternSubscribers.isEmpty }

    /// Publishes keyspace events the `notify-keyspace-events` setting enables, to this node's
    /// subscribers.
    func notify(_ events: [KeyspaceEvent]) {
        guard !events.isEmpty, notificationFlags.keyspace || notificationFlags.keyevent,
            !channelSubscribers.isEmpty || !patternSubscribers.isEmpty
        else { return }
        for event in events where notificationFlags.enables(event) {
            // Events name stored keys: subscribers see the database and the key within it.
            guard let (database, key) = DatabaseKeys.split(event.key) else { continue }
            if notificationFlags.keyspace {
                publish(channel: Array("__keyspace@\(database)__:".utf8) + key, message: Array(event.name.utf8))
            }
            if notificationFlags.keyevent {
                publish(channel: Array("__keyevent@\(database)__:\(event.name)".utf8), message: key)
            }
        }
    }

    /// Hands the deltas of local writes to federation.
    func replicate(_ deltas: [Delta], now: UInt64) {
        pendingDeltaCount += UInt64(deltas.count)
        guard !deltas.isEmpty, federation != nil else { return }
        transport?.perform(federation!.enqueue(deltas, now: now))
    }

    /// Ends loading once every linked site has been synchronized with, or, after the startup
    /// timeout, every site that is reachable (a site that is down must not keep this one from
    /// serving for ever).
    func updateLoading(now: UInt64) {
        guard loading, let federation else { return }
        let sites = federation.settings.linkedSites
        let waited = now - startedAt
        let allSynchronized = sites.allSatisfy { federation.isSynchronized(with: $0) }
        let timedOut = waited >= UInt64(configuration.topology.defaults.startupSyncTimeoutMilliseconds)
            && sites.allSatisfy { federation.isSynchronized(with: $0) || !federation.isConnected(to: $0) }
        guard allSynchronized || timedOut else { return }
        loading = false
        let unreachable = sites.filter { !federation.isSynchronized(with: $0) }.map { federation.settings.name(of: $0) }
        transport?.logger.notice(
            "data recovered from the federation: serving clients",
            metadata: [
                "keys": "\(keyspace.count(now: now))", "waited_ms": "\(waited)", "unreachable_sites": "\(unreachable)",
            ]
        )
    }

    /// DESIGN.md §5: a passive site serves reads; a client's writes go to an active site.
    /// Merged remote writes still apply (they do not come through a client command).
    func refusesWrite(_ name: String, _ spec: CommandSpec) -> Bool {
        Keyspace.isDataCommand(name) && refusesDataWrite(spec)
    }

    /// `refusesWrite` for a command already known to be a data command.
    func refusesDataWrite(_ spec: CommandSpec) -> Bool {
        spec.flags.contains(.write) && !acceptsWrites
    }

    /// The site's roles as its control plane committed them (the topology's before it runs).
    var siteRoles: SiteRoles {
        controlPlane?.raft.map.roles ?? configuration.initialSiteRoles
    }

    /// Whether client writes are taken: the committed roles say so, and no assignment learned
    /// since (not yet committed) says otherwise.
    var acceptsWrites: Bool {
        let roles = siteRoles
        guard roles.acceptsWrites else { return false }
        guard let learnedRoles, learnedRoles.supersedes(roles.assignment) else { return true }
        return learnedRoles.accepts(roles.site)
    }

    /// The assignment writes obey: one learned and not yet committed, else the committed one.
    var assignmentInForce: RoleAssignment {
        let committed = siteRoles.assignment
        guard let learnedRoles, learnedRoles.supersedes(committed) else { return committed }
        return learnedRoles
    }

    /// active | passive | fenced, as writes are treated now.
    var roleName: String {
        acceptsWrites ? "active" : siteRoles.handover != nil && assignmentInForce == siteRoles.assignment ? "fenced" : "passive"
    }

    /// A linked site has a role assignment that supersedes this node's: writes obey it at once,
    /// and the control plane commits it as soon as this node leads (`ControlPlaneRuntime`).
    func learned(_ assignment: RoleAssignment) {
        guard assignment.supersedes(siteRoles.assignment), learnedRoles.map({ assignment.supersedes($0) }) ?? true else { return }
        learnedRoles = assignment
        controlPlane?.commitLearnedRoles()
    }

    /// Folds changed keys into the kept Merkle leaves for at most
    /// `NodeServer.digestSliceMilliseconds`, in slices of a few hundred keys, so that a round
    /// finds them current without a pass over the keyspace on the loop.
    func refreshMerkleLeaves() {
        guard keyspace.dirtyDigestCount > 0 else { return }
        let deadline = WallClock.monotonicMilliseconds() + NodeServer.digestSliceMilliseconds
        while keyspace.refreshMerkleLeaves(budget: 256) > 0 && WallClock.monotonicMilliseconds() < deadline {}
    }

    /// One active expiry cycle (runs on the event loop timer).
    func runExpiryCycle() {
        if let dataPlane {
            dataPlane.runExpiryCycle()
            return
        }
        let events = keyspace.sweepExpired(now: WallClock.nowMilliseconds(), budget: configuration.expiryKeysPerCycle)
        notify(events)
    }
}

/// Counters the runtime keeps beside the keyspace's.
struct RuntimeStatistics {
    var connectionsReceived: UInt64 = 0
    var rejectedConnections: UInt64 = 0
    var commandsProcessed: UInt64 = 0
    var commands = CommandCounts()
    var protocolErrors: UInt64 = 0
    var rejectedForMemory: UInt64 = 0

    /// CONFIG RESETSTAT: every counter from zero; the command slots connections hold stay.
    mutating func reset() {
        var commands = self.commands
        commands.zero()
        self = RuntimeStatistics()
        self.commands = commands
    }
}

extension NodeState {
    /// SIGHUP: every TLS context is loaded again from its files (after `sessionfed certs
    /// rotate`). New connections take the new certificates; established links stay up. A file
    /// that cannot be loaded keeps the context in force, and says so.
    func reloadCertificates(logger: Logger) {
        let holders: [(String, () throws -> Void)] = [
            transport?.tls.map { tls in ("federation", { try tls.reload() }) },
            controlPlane?.transport?.tls.map { tls in ("peer", { try tls.reload() }) },
            clientTLS.map { tls in ("client TLS", { try tls.reload() }) },
        ].compactMap { $0 }
        guard !holders.isEmpty else {
            logger.notice("SIGHUP: no certificates to reload (no tls: or clientTLS: in the topology)")
            return
        }
        for (name, reload) in holders {
            do {
                try reload()
                certificateReloads += 1
            } catch {
                certificateReloadFailures += 1
                logger.error("certificates not reloaded: the ones in force stay", metadata: ["listener": "\(name)", "error": "\(error)"])
                return
            }
        }
        let expiries = certificateExpiries.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        logger.notice("certificates reloaded: new connections use them", metadata: ["listeners": "\(holders.map(\.0))", "expires_at": "\(expiries)"])
    }

    /// When each loaded certificate expires (seconds since 1970): node, ca, client-tls, client-ca.
    var certificateExpiries: [String: UInt64] {
        var expiries = transport?.tls?.expiries ?? controlPlane?.transport?.tls?.expiries ?? [:]
        expiries.merge(clientTLS?.expiries ?? [:]) { first, _ in first }
        return expiries
    }
}
