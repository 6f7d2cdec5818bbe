import ControlPlane
import Federation
import SessionModel

/// A consistent copy of a node's figures, taken on its event loop, for /status and /metrics.
public struct NodeSnapshot: Codable, Sendable {
    public var node: String
    public var site: String
    public var siteID: UInt32
    public var federation: String
    public var topologyVersion: Int
    /// The site's DR role now: active | passive | fenced (read-only while a switchover drains).
    public var role: String
    /// The federation's role assignment this site has in force.
    public var roles: RolesSnapshot
    public var clientAddress: String
    public var uptimeSeconds: UInt64
    public var connectedClients: Int
    public var keys: Int
    public var keysWithExpiry: Int
    public var storedKeys: Int
    /// Changed keys not yet folded into the Merkle leaves anti-entropy compares.
    public var merkleDirtyKeys: Int
    public var usedMemoryBytes: Int
    public var residentMemoryBytes: Int
    /// Bytes the C allocator has handed out and not had back (RSS less free pages kept).
    public var allocatedMemoryBytes: Int
    /// Event-loop steps that held the loop for 10 ms or more (each is logged), and the longest.
    public var slowSteps: UInt64
    public var longestStepMilliseconds: Double
    public var maximumMemoryBytes: Int
    public var commandsProcessed: UInt64
    public var commandsByName: [String: UInt64]
    public var connectionsReceived: UInt64
    public var connectionsRejected: UInt64
    public var protocolErrors: UInt64
    /// When each certificate in use expires (seconds since 1970): node, ca, client-tls, client-ca.
    public var certificateExpiries: [String: UInt64]
    /// SIGHUP reloads of the TLS contexts, and those that failed (the old ones stayed).
    public var certificateReloads: UInt64
    public var certificateReloadFailures: UInt64
    public var expiredKeys: UInt64
    public var keysCreated: UInt64
    public var keysDestroyed: UInt64
    public var outOfMemoryRejections: UInt64
    public var deltasProduced: UInt64
    /// True while a starting federated node recovers data from the other sites (-LOADING).
    public var loading: Bool
    /// True while the node drains (it stops once the site's other nodes hold its copies).
    public var draining: Bool
    public var federationLinks: [FederationLinkSnapshot]
    /// Federation-wide collection of tombstones and expired keys: whether this node proposes
    /// rounds, which linked sites block it now, and what it collected (nil: not federated).
    public var collection: CollectionStatus?
    /// Keys collected federation-wide here (dropped at this node).
    public var keysCollected: UInt64
    /// Collected keys whose tombstone this node still remembers (for the collection horizon).
    public var collectedKeysRemembered: Int
    /// One digest over every partition's Merkle root: equal at two sites when their data are
    /// equal (computed on /status only; nil in /metrics).
    public var merkleRoot: String?
    /// The site's control plane as this node sees it (nil before it started).
    public var controlPlane: ControlPlaneSnapshot?
    /// The partition copies this node holds and their replication (nil on a one-node site).
    public var dataPlane: DataPlaneSnapshot?
}

/// The control plane on /status: this node's Raft state and the cluster map it applied.
public struct ControlPlaneSnapshot: Codable, Sendable {
    /// bootstrapping | learner | follower | pre-candidate | candidate | leader
    public var role: String
    public var term: UInt64
    /// The leader's node name, when this node knows one.
    public var leader: String?
    public var incarnation: UInt64
    public var commitIndex: UInt64
    public var appliedIndex: UInt64
    public var lastLogIndex: UInt64
    public var leaderChanges: UInt64
    /// How much longer this node may act as primary of its partitions without hearing from
    /// the leader (0: lease lapsed; it must not act on its map).
    public var leaseRemainingMilliseconds: UInt64
    /// Partitions this node may act as primary for now (its map names it and its lease holds).
    public var actingPrimaries: Int
    public var siteRole: String
    public var roleEpoch: UInt64
    public var members: [Member]
    public var partitions: PartitionSummary
    /// The site's placement work as this node's map shows it: moves under way and left, and
    /// when the rest should be done (see `RebalanceProgress`).
    public var rebalancing: RebalanceProgress.Figures
    public var partitionTable: [Partition]
    public var peerFramesReceived: UInt64
    public var peerHandshakesRefused: UInt64
    public var peerMalformedFrames: UInt64

    public struct Member: Codable, Sendable {
        public var name: String
        public var incarnation: UInt64
        public var voter: Bool
        /// up | down, as committed in the map.
        public var state: String
        /// Leaving: its copies are moving to other members (SIGTERM or `sessionfed drain`).
        public var draining: Bool
        /// This node's connection to that member, which carries this node's messages to it
        /// (nil for itself or in a one-node site).
        public var connection: String?
        /// Whether that member's connection to this node (its messages here) is open.
        public var inboundConnected: Bool?
        public var lastError: String?
        public var framesSent: UInt64
        public var framesDropped: UInt64
    }

    public struct PartitionSummary: Codable, Sendable {
        public var count: Int
        /// Partitions with no primary: writes to them are refused until one is assigned.
        public var withoutPrimary: Int
        /// Partitions waiting for their lost primary to come back (no in-sync copy left).
        public var orphaned: Int
        /// Partitions with fewer caught-up backups than the site can hold.
        public var degraded: Int
        /// Partitions with fewer copies in sync (primary included) than `minInSync`: they
        /// refuse writes with -NOREPLICAS and serve reads.
        public var refusingWrites: Int
        public var recreatedEmpty: UInt64
        public var highestEpoch: UInt64
        public var primaries: [String: Int]
        public var backups: [String: Int]
        /// Planned handovers under way: the old primary sealed, waiting for its hand-off.
        public var handoversInProgress: Int
        /// Partitions with a copy on a leaving member.
        public var onLeavingMembers: Int
    }

    public struct Partition: Codable, Sendable {
        public var partition: Int
        public var epoch: UInt64
        public var primary: String?
        public var backups: [String]
        public var inSync: [String]
        /// The member a planned handover moves the primary to (nil: none under way).
        public var handoverTo: String?
    }
}

/// One federation link as /status shows it: the core's figures plus the connection's.
/// The role assignment on /status (DESIGN.md §5), with site names.
public struct RolesSnapshot: Codable, Sendable {
    public var epoch: UInt64
    /// The site that issued the assignment ("topology": the topology's roles, epoch 0).
    public var issuer: String
    public var activeSites: [String]
    public var acceptsWrites: Bool
    /// False while the assignment was learned from a linked site and the site's control plane
    /// has not committed it yet (writes obey it already).
    public var committed: Bool
    /// While fenced for a switchover: the site the writes go to, at `handoverEpoch`.
    public var handoverTo: String?
    public var handoverEpoch: UInt64?
}

public struct FederationLinkSnapshot: Codable, Sendable {
    public var site: String
    public var siteID: UInt32
    /// connected | handshaking | connecting | backoff | refused, `needs-resync` when the
    /// outbox overflowed and anti-entropy has not repaired the link yet, `offline` when the
    /// site was taken offline (`sessionfed dr take-offline`).
    public var state: String
    /// This node's connection to the site completed its handshake.
    public var connected: Bool
    public var needsResync: Bool
    public var synchronized: Bool
    public var resyncInProgress: Bool
    public var remoteNode: String?
    public var lastError: String?
    public var inboundConnected: Bool
    public var lagDeltas: Int
    public var lagMilliseconds: UInt64
    public var outboxBytes: Int
    public var bytesSent: UInt64
    public var bytesReceived: UInt64
    public var framesSent: UInt64
    public var framesReceived: UInt64
    public var handshakesRefused: UInt64
    public var malformedFrames: UInt64
    /// How long ago anything arrived from the site (nil: nothing since this node started).
    public var lastContactMillisecondsAgo: UInt64?
    public var statistics: LinkStatistics
}

extension NodeState {
    func snapshot(includeMerkleRoot: Bool = false) -> NodeSnapshot {
        let now = WallClock.nowMilliseconds()
        let client = configuration.node.client
        return NodeSnapshot(
            node: configuration.node.name,
            site: configuration.site.name,
            siteID: configuration.site.id,
            federation: configuration.topology.federation,
            topologyVersion: configuration.topology.topologyVersion,
            role: roleName,
            roles: rolesSnapshot(),
            clientAddress: client.description,
            uptimeSeconds: (now - startedAt) / 1_000,
            connectedClients: clients.count,
            keys: keyspace.count(now: now),
            keysWithExpiry: keyspace.countWithExpiry(now: now),
            storedKeys: keyspace.storedKeyCount,
            merkleDirtyKeys: keyspace.dirtyDigestCount,
            usedMemoryBytes: keyspace.usedMemoryBytes,
            residentMemoryBytes: ProcessIdentity.residentBytes(),
            allocatedMemoryBytes: MemoryRelease.allocatedBytes,
            slowSteps: slowSteps.count,
            longestStepMilliseconds: Double(slowSteps.longestNanoseconds / 1_000) / 1_000,
            maximumMemoryBytes: keyspace.configuration.maximumMemoryBytes,
            commandsProcessed: statistics.commandsProcessed,
            commandsByName: statistics.commands.byName,
            connectionsReceived: statistics.connectionsReceived,
            connectionsRejected: statistics.rejectedConnections,
            protocolErrors: statistics.protocolErrors,
            certificateExpiries: certificateExpiries,
            certificateReloads: certificateReloads,
            certificateReloadFailures: certificateReloadFailures,
            expiredKeys: keyspace.statistics.expiredKeys,
            keysCreated: keyspace.statistics.keysCreated,
            keysDestroyed: keyspace.statistics.keysDestroyed,
            outOfMemoryRejections: statistics.rejectedForMemory,
            deltasProduced: pendingDeltaCount,
            loading: loading,
            draining: drain != nil,
            federationLinks: federationLinkSnapshots(now: now),
            collection: federation?.collectionStatus(),
            keysCollected: keyspace.statistics.keysCollected,
            collectedKeysRemembered: keyspace.collectedKeyCount,
            merkleRoot: includeMerkleRoot ? merkleRoot() : nil,
            controlPlane: controlPlane?.snapshot(),
            dataPlane: dataPlane?.summary()
        )
    }

    func federationLinkSnapshots(now: UInt64) -> [FederationLinkSnapshot] {
        guard let federation, let transport else { return [] }
        let monotonic = WallClock.monotonicMilliseconds()
        return federation.status(now: now).map { link in
            let site = SiteID(link.siteID)
            let dial = transport.dials[site]
            let traffic = transport.traffic[site] ?? FederationTransport.Traffic()
            let phase = dial?.phase.rawValue ?? "connecting"
            return FederationLinkSnapshot(
                site: link.site,
                siteID: link.siteID,
                state: link.offline ? "offline" : link.needsResync ? "needs-resync" : phase,
                connected: link.connected,
                needsResync: link.needsResync,
                synchronized: link.synchronized,
                resyncInProgress: link.resyncInProgress,
                remoteNode: dial?.remoteNode,
                lastError: dial?.lastError,
                inboundConnected: transport.inbound.keys.contains { $0.site == site },
                lagDeltas: link.lagDeltas,
                lagMilliseconds: link.lagMilliseconds,
                outboxBytes: link.outboxBytes,
                bytesSent: traffic.bytesSent,
                bytesReceived: traffic.bytesReceived,
                framesSent: traffic.framesSent,
                framesReceived: traffic.framesReceived,
                handshakesRefused: traffic.handshakesRefused,
                malformedFrames: traffic.malformedFrames,
                lastContactMillisecondsAgo: traffic.lastReceivedAt.map { monotonic >= $0 ? monotonic - $0 : 0 },
                statistics: link.statistics
            )
        }
    }

    /// The combined Merkle root of this node's data (the same forest anti-entropy compares).
    func merkleRoot() -> String {
        let partitions = configuration.topology.defaults.partitions
        let leaves = federation?.settings.merkleLeaves ?? FederationSettings.defaultMerkleLeaves
        return MerkleForest(of: &keyspace, partitioning: Partitioning(partitionCount: partitions), leafCount: leaves).combinedRoot.description
    }
}

extension NodeServer {
    public func snapshot(includeMerkleRoot: Bool = false) async throws -> NodeSnapshot {
        try await withState { state in state.timed("status snapshot") { state.snapshot(includeMerkleRoot: includeMerkleRoot) } }
    }
}

extension NodeState {
    func rolesSnapshot() -> RolesSnapshot {
        let roles = siteRoles
        let assignment = assignmentInForce
        return RolesSnapshot(
            epoch: assignment.epoch,
            issuer: assignment.issuer == SiteID(0) ? "topology" : siteName(assignment.issuer),
            activeSites: assignment.active.map(siteName),
            acceptsWrites: acceptsWrites,
            committed: assignment == roles.assignment,
            handoverTo: assignment == roles.assignment ? roles.handover?.active.first.map(siteName) : nil,
            handoverEpoch: assignment == roles.assignment ? roles.handover?.epoch : nil
        )
    }
}
