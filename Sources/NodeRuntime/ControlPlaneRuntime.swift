import ControlPlane
import Logging
import NIOCore
import SessionModel
import Topology

/// Drives this node's `RaftNode`: the monotonic clock, a random incarnation and seed per
/// start, timers, the peer transport, and logs of what the cluster map commits.
/// Confined to the node's event loop, like `NodeState`.
final class ControlPlaneRuntime: @unchecked Sendable {
    let state: NodeState
    let logger: Logger
    var raft: RaftNode
    /// Nil for a site of one node: it is its own majority and has nobody to talk to.
    var transport: PeerTransport?
    var timer: RepeatedTask?
    /// The next precise wake-up (the Raft node's next timer) and when it is due.
    var wakeup: (task: Scheduled<Void>, at: UInt64)?
    /// Times this node saw the leader change (including to "none").
    var leaderChanges: UInt64 = 0
    var knownRole: RaftNode.Role
    /// How the site's placement work goes (moves under way, left, the estimate), followed as
    /// the map changes; a progress line is logged while a run of work lasts.
    var rebalance = RebalanceProgress()
    var rebalanceLoggedAt: UInt64 = 0
    /// The learned assignment last proposed (proposed once; a new leader proposes it again).
    var proposedRoles: RoleAssignment?

    /// Timers fire at the Raft node's own deadlines (so two nodes' election timeouts collide
    /// only within a network round trip, not a tick); this slower tick is a safety net.
    static let tickInterval = TimeAmount.milliseconds(100)

    init(state: NodeState, logger: Logger) {
        self.state = state
        self.logger = logger
        let configuration = state.configuration
        let nodes = configuration.site.nodes
        // No disk: every start is a new incarnation (RaftNode documents why that is safe).
        raft = RaftNode(
            id: MemberID(name: configuration.node.name, incarnation: UInt64.random(in: 1...UInt64.max)),
            voters: nodes.filter(\.voter).map(\.name),
            nonVoters: nodes.filter { !$0.voter }.map(\.name),
            topologyVersion: UInt64(configuration.topology.topologyVersion),
            partitionCount: configuration.topology.defaults.partitions,
            backupCount: configuration.topology.defaults.backupCount,
            roles: configuration.initialSiteRoles,
            settings: configuration.controlPlaneSettings,
            seed: UInt64.random(in: 0...UInt64.max),
            now: WallClock.monotonicMilliseconds()
        )
        knownRole = raft.role
    }

    var eventLoop: EventLoop { state.eventLoop }

    func start() async throws {
        if state.configuration.site.nodes.count > 1 {
            let transport = try PeerTransport(state: state, logger: logger)
            try await eventLoop.submit { self.transport = transport }.get()
            try await transport.start()
        }
        try await eventLoop.submit {
            self.logger.info(
                "control plane started",
                metadata: ["incarnation": "\(self.raft.id)", "voters": "\(self.raft.voterNames)", "election_timeout_ms": "\(self.raft.settings.electionTimeoutMilliseconds)"]
            )
            self.timer = self.eventLoop.scheduleRepeatedTask(initialDelay: Self.tickInterval, delay: Self.tickInterval) { _ in
                self.tick()
            }
            self.tick()
        }.get()
    }

    func stop() async {
        let transport = try? await eventLoop.submit { () -> PeerTransport? in
            self.timer?.cancel()
            self.timer = nil
            self.wakeup?.task.cancel()
            self.wakeup = nil
            return self.transport
        }.get()
        await transport?.stop()
    }

    // MARK: Steps

    func tick() {
        guard timer != nil else { return }
        let now = WallClock.monotonicMilliseconds()
        // Step first: `transport?.send(raft.tick(…))` would skip the step without a transport.
        let ready = raft.tick(now: now)
        transport?.send(ready.messages)
        observe(ready)
        scheduleWakeup(now: now)
    }

    func receive(_ envelope: RaftEnvelope) {
        guard timer != nil else { return }
        let now = WallClock.monotonicMilliseconds()
        let ready = raft.receive(envelope, now: now)
        transport?.send(ready.messages)
        observe(ready)
        scheduleWakeup(now: now)
    }

    /// Wakes the node at its next deadline. A deadline that moved later (a leader's heartbeat
    /// pushes the election back) leaves the earlier wake-up in place: it ticks for nothing and
    /// schedules the next one.
    func scheduleWakeup(now: UInt64) {
        let due = max(raft.nextTimerAt, now + 1)
        if let wakeup, wakeup.at <= due, wakeup.at > now { return }
        wakeup?.task.cancel()
        let task = eventLoop.scheduleTask(in: .milliseconds(Int64(due - now))) {
            self.wakeup = nil
            self.tick()
        }
        wakeup = (task, due)
    }

    /// Logs a step's role and leader changes and the map changes it applied, and has the
    /// data plane follow the map.
    func observe(_ ready: RaftReady) {
        switch ready.leader {
        case .known(let leader):
            leaderChanges += 1
            logger.notice("control plane leader", metadata: ["leader": "\(leader.name)", "term": "\(raft.term)", "self": "\(leader == raft.id)"])
        case .unknown:
            leaderChanges += 1
            logger.warning("control plane has no leader", metadata: ["term": "\(raft.term)", "role": "\(raft.role.rawValue)"])
        case nil:
            break
        }
        if let role = ready.role {
            if role == .leader { proposedRoles = nil }
            logger.info("control plane role", metadata: ["from": "\(knownRole.rawValue)", "to": "\(role.rawValue)", "term": "\(raft.term)"])
            knownRole = role
        }
        var reassigned: [String] = []
        var rolesChanged = false
        for entry in ready.applied {
            switch entry.command {
            case .memberState(let name, .down):
                logger.warning("member down: its partitions move to other nodes", metadata: ["member": "\(name)", "index": "\(entry.index)"])
            case .memberState(let name, .up):
                logger.notice("member up", metadata: ["member": "\(name)", "index": "\(entry.index)"])
            case .memberDraining(let name, let draining):
                logger.notice(draining ? "member draining: its copies move to other nodes" : "member no longer draining", metadata: ["member": "\(name)", "index": "\(entry.index)"])
            case .voterIncarnation(let name, let incarnation):
                logger.notice("restarted voter caught up: it votes again", metadata: ["member": "\(MemberID(name: name, incarnation: incarnation))", "index": "\(entry.index)"])
            case .memberIncarnation(let name, let incarnation):
                logger.notice("member joined as a new incarnation", metadata: ["member": "\(MemberID(name: name, incarnation: incarnation))", "index": "\(entry.index)"])
            case .assign(let assignment):
                if let target = assignment.handoverTo {
                    reassigned.append("\(assignment.partition)→\(assignment.primary ?? "none")@\(assignment.epoch) handing over to \(target)")
                } else {
                    reassigned.append("\(assignment.partition)→\(assignment.primary ?? "none")@\(assignment.epoch)")
                }
            case .roles, .fence, .unfence:
                rolesChanged = true
            case .siteOffline(let site, let offline):
                logger.notice(offline ? "site taken offline: nothing is shipped to it" : "site brought online: anti-entropy catches it up", metadata: ["site": "\(state.siteName(site))"])
                if state.federation != nil {
                    let actions = state.federation!.setOffline(raft.map.offlineSites)
                    state.transport?.perform(actions)
                }
            case .memberAdded(let name):
                if state.configuration.site.nodes.contains(where: { $0.name == name }) {
                    logger.notice("member added to the site (listed by the topology)", metadata: ["member": "\(name)", "index": "\(entry.index)"])
                } else {
                    logger.error(
                        "member added that this node's topology does not list: apply the site's newest topology to this node",
                        metadata: ["member": "\(name)", "topology_version": "\(state.configuration.topology.topologyVersion)"]
                    )
                }
            case .memberRemoved(let name):
                logger.notice("member removed from the site (no longer listed by the topology)", metadata: ["member": "\(name)", "index": "\(entry.index)"])
            case .noop, .markInSync:
                break
            }
        }
        if !reassigned.isEmpty {
            logger.info("partitions assigned (partition→primary@epoch)", metadata: ["count": "\(reassigned.count)", "assignments": "\(reassigned.joined(separator: " "))"])
        }
        if !ready.applied.isEmpty { followRebalance() }
        if rolesChanged { followRoles() }
        state.dataPlane?.followMap()
        if ready.role == .leader { commitLearnedRoles() }
    }

    /// Commits the assignment a linked site told this node about, when this node leads (a
    /// node that just restarted may hear it before it has elected itself; it commits it once
    /// it leads). Other nodes of a site leave it to the leader, which hears it too.
    func commitLearnedRoles() {
        guard let learned = state.learnedRoles else { return }
        guard learned.supersedes(raft.map.roles.assignment) else {
            state.learnedRoles = nil
            return
        }
        guard raft.role == .leader, proposedRoles != learned else { return }
        proposedRoles = learned
        propose(.roles(learned))
    }

    /// Asks the site's control plane for a role change; false when this node does not lead
    /// (the caller asks the leader, or the leader learns it itself).
    @discardableResult
    func propose(_ command: ClusterCommand) -> Bool {
        guard timer != nil else { return false }
        let now = WallClock.monotonicMilliseconds()
        guard let ready = raft.propose(command, now: now) else { return false }
        transport?.send(ready.messages)
        observe(ready)
        scheduleWakeup(now: now)
        return true
    }

    /// The map's roles changed: say so, have federation carry the new assignment, and tell
    /// the linked sites at once rather than at the next heartbeat.
    func followRoles() {
        let roles = raft.map.roles
        logger.notice(
            "site role",
            metadata: [
                "role": "\(roles.roleName)", "role_epoch": "\(roles.assignment.epoch)", "assignment": "\(roles.assignment)",
                "handover": "\(roles.handover.map { "\($0)" } ?? "none")",
            ]
        )
        state.federation?.adopt(roles.assignment)
        if let learned = state.learnedRoles, !learned.supersedes(roles.assignment) { state.learnedRoles = nil }
        state.transport?.announceRoles()
    }
}

extension ControlPlaneRuntime {
    /// Counts the placement moves that finished and logs the progress of a run of work (at
    /// most every 5 s, and when it ends).
    func followRebalance() {
        let now = WallClock.monotonicMilliseconds()
        let map = raft.map
        let wasMoving = rebalance.isMoving
        let figures = rebalance.observe(moving: map.movesInFlight, left: map.movesLeft, now: now)
        if wasMoving && !rebalance.isMoving {
            logger.notice("placement balanced", metadata: ["moves": "\(figures.movesFinished)"])
        } else if rebalance.isMoving && now - rebalanceLoggedAt >= 5_000 {
            rebalanceLoggedAt = now
            logger.info("placement moving", metadata: [
                "moving": "\(figures.moving)", "left": "\(figures.left)", "finished": "\(figures.movesFinished)",
                "eta_ms": "\(figures.etaMilliseconds.map(String.init) ?? "unknown")",
            ])
        }
    }
}

extension NodeConfiguration {
    /// The control plane's timing from the topology's defaults: elections after 1 to 1.5
    /// election timeouts of silence, leader heartbeats at a tenth of it, member reports at a
    /// fifth of the failure timeout, leases of three quarters of the shorter timeout.
    public var controlPlaneSettings: ControlPlaneSettings {
        let defaults = topology.defaults
        let election = UInt64(defaults.electionTimeoutMilliseconds)
        let failure = UInt64(defaults.failureTimeoutMilliseconds)
        var settings = ControlPlaneSettings()
        settings.electionTimeoutMilliseconds = election...(election * 3 / 2)
        settings.leaderHeartbeatMilliseconds = max(10, min(100, election / 10))
        settings.failureTimeoutMilliseconds = failure
        settings.rebalanceMovesInFlight = defaults.rebalanceMovesInFlight
        settings.memberHeartbeatMilliseconds = max(10, min(200, failure / 5))
        settings.leaseMilliseconds = min(election, failure) * 3 / 4
        return settings
    }
}

extension ControlPlaneRuntime {
    func snapshot() -> ControlPlaneSnapshot {
        let map = raft.map
        let now = WallClock.monotonicMilliseconds()
        // The copies a partition can have: the backup count, bounded by the other members.
        let wantedBackups = min(map.backupCount, max(0, map.members.count - 1))
        var primaries: [String: Int] = [:], backups: [String: Int] = [:]
        for assignment in map.partitions {
            if let primary = assignment.primary { primaries[primary, default: 0] += 1 }
            for backup in assignment.backups { backups[backup, default: 0] += 1 }
        }
        let summary = ControlPlaneSnapshot.PartitionSummary(
            count: map.partitions.count,
            withoutPrimary: map.partitions.filter { $0.primary == nil }.count,
            orphaned: map.partitions.filter { $0.orphanedFrom != nil }.count,
            degraded: map.partitions.filter { $0.primary != nil && $0.backups.filter($0.inSync.contains).count < wantedBackups }.count,
            refusingWrites: state.configuration.site.nodes.count > 1
                ? map.partitions.filter { $0.primary != nil && 1 + $0.inSync.count < state.configuration.topology.defaults.minInSync }.count : 0,
            recreatedEmpty: map.partitions.reduce(0) { $0 + $1.recreatedEmpty },
            highestEpoch: map.partitions.map(\.epoch).max() ?? 0,
            primaries: primaries,
            backups: backups,
            handoversInProgress: map.partitions.filter { $0.handoverTo != nil }.count,
            onLeavingMembers: map.partitions.filter { !map.drainingMembers.isDisjoint(with: $0.holders) }.count
        )
        let members = map.members.values.sorted { $0.name < $1.name }.map { member in
            let link = transport?.links[member.name]
            return ControlPlaneSnapshot.Member(
                name: member.name,
                incarnation: member.incarnation,
                voter: member.voter,
                state: member.state.rawValue,
                draining: member.draining,
                connection: link?.phase.rawValue,
                inboundConnected: link == nil ? nil : transport?.inbound[member.name] != nil,
                lastError: link?.lastError,
                framesSent: link?.framesSent ?? 0,
                framesDropped: link?.framesDropped ?? 0
            )
        }
        return ControlPlaneSnapshot(
            role: raft.role.rawValue,
            term: raft.term,
            leader: raft.leader?.name,
            incarnation: raft.id.incarnation,
            commitIndex: raft.commitIndex,
            appliedIndex: map.appliedIndex,
            lastLogIndex: raft.lastIndex,
            leaderChanges: leaderChanges,
            leaseRemainingMilliseconds: raft.leaseUntil > now ? raft.leaseUntil - now : 0,
            actingPrimaries: raft.actingPrimaries(now: now).count,
            siteRole: map.roles.roleName,
            roleEpoch: map.roles.assignment.epoch,
            members: members,
            partitions: summary,
            rebalancing: rebalance.figures(now: now),
            partitionTable: map.partitions.map {
                ControlPlaneSnapshot.Partition(
                    partition: $0.partition, epoch: $0.epoch, primary: $0.primary, backups: $0.backups, inSync: $0.inSync.sorted(), handoverTo: $0.handoverTo
                )
            },
            peerFramesReceived: transport?.counters.framesReceived ?? 0,
            peerHandshakesRefused: transport?.counters.handshakesRefused ?? 0,
            peerMalformedFrames: transport?.counters.malformedFrames ?? 0
        )
    }
}
