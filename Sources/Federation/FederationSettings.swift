import SessionModel

/// What a node's federation core needs to know about the federation (derived from the topology
/// by the runtime; plain values so the simulator can build them too).
public struct FederationSettings: Hashable, Sendable {
    public struct SiteInfo: Hashable, Sendable {
        public var name: String
        public var nodes: [String]

        public init(name: String, nodes: [String]) {
            self.name = name
            self.nodes = nodes
        }
    }

    public var federation: String
    public var protocolVersion: UInt32 = FederationSettings.currentProtocolVersion
    public var topologyVersion: UInt64
    public var localSite: SiteID
    public var localNode: String
    public var sites: [SiteID: SiteInfo]
    /// Which sites exchange deltas directly (symmetric): mesh, a hub, or explicit pairs.
    public var links: [SiteID: Set<SiteID>]
    public var partitioning: Partitioning
    /// A partial batch waits at most this long for more deltas.
    public var batchIntervalMilliseconds: UInt64
    /// A batch is cut once its deltas reach this many bytes.
    public var batchBytes: Int
    /// Per remote site: unacknowledged deltas beyond this are dropped and the link resynced.
    public var outboxLimitBytes: Int
    /// Anti-entropy runs on connect, after an outbox overflow and every this many milliseconds
    /// (0: only on connect and overflow).
    public var antiEntropyIntervalMilliseconds: UInt64
    /// Leaves per partition in the Merkle tree.
    public var merkleLeaves: Int
    /// Anti-entropy frames carry at most about this many bytes of digests or states.
    public var repairChunkBytes: Int
    /// Each key's merge policy, for counting conflicts by the policy that resolved them.
    public var policies: KeyPolicies
    /// The role assignment the node starts from (the topology's roles at epoch 0); the site's
    /// control plane holds the one in force.
    public var initialRoles: RoleAssignment? = nil
    /// Federation-wide collection of tombstones and long-expired keys (DESIGN.md §2.5): a
    /// round every this many milliseconds (0: never collect).
    public var collectionIntervalMilliseconds: UInt64
    /// Keys proposed per collection round.
    public var collectionBatchKeys = 2_000
    /// How long a collected key's tombstone is remembered, so that what was on its way when
    /// the key was collected cannot bring it back.
    public var collectionHorizonMilliseconds: UInt64

    /// 2: anti-entropy compares partitions' leaves directly (no roots), each partition answered
    /// by its primary, so that sites of several nodes take part.
    /// 3: key states and deltas carry restarts (a write to an expired key); a version-2 site
    /// would drop them and show the old key's data again.
    public static let currentProtocolVersion: UInt32 = 3
    public static let defaultMerkleLeaves = 64

    public init(
        federation: String,
        topologyVersion: UInt64,
        localSite: SiteID,
        localNode: String,
        sites: [SiteID: SiteInfo],
        links: [SiteID: Set<SiteID>],
        partitioning: Partitioning,
        batchIntervalMilliseconds: UInt64 = 5,
        batchBytes: Int = 1 << 20,
        outboxLimitBytes: Int = 256 << 20,
        antiEntropyIntervalMilliseconds: UInt64 = 300_000,
        merkleLeaves: Int = FederationSettings.defaultMerkleLeaves,
        repairChunkBytes: Int = 1 << 20,
        policies: KeyPolicies = KeyPolicies(),
        collectionIntervalMilliseconds: UInt64 = 10_000,
        collectionHorizonMilliseconds: UInt64 = 600_000
    ) {
        self.federation = federation
        self.topologyVersion = topologyVersion
        self.localSite = localSite
        self.localNode = localNode
        self.sites = sites
        self.links = links
        self.partitioning = partitioning
        self.batchIntervalMilliseconds = batchIntervalMilliseconds
        self.batchBytes = batchBytes
        self.outboxLimitBytes = outboxLimitBytes
        self.antiEntropyIntervalMilliseconds = antiEntropyIntervalMilliseconds
        self.merkleLeaves = merkleLeaves
        self.repairChunkBytes = repairChunkBytes
        self.policies = policies
        self.collectionIntervalMilliseconds = collectionIntervalMilliseconds
        self.collectionHorizonMilliseconds = collectionHorizonMilliseconds
    }

    /// The sites this site exchanges deltas with, in id order.
    public var linkedSites: [SiteID] {
        (links[localSite] ?? []).sorted()
    }

    /// Where a delta that `sender` brought from `origin` must go next: linked sites that are not
    /// linked to the origin themselves (so would never see it otherwise), except the sender.
    /// Empty in a mesh; the hub's spokes in a hub topology.
    public func forwardTargets(origin: SiteID, sender: SiteID) -> [SiteID] {
        let originLinks = links[origin] ?? []
        return linkedSites.filter { $0 != origin && $0 != sender && !originLinks.contains($0) }
    }

    public func name(of site: SiteID) -> String {
        sites[site]?.name ?? "site-\(site.rawValue)"
    }
}

extension FederationSettings {
    /// Why a peer running topology `peer` is refused by a node running `own`, or nil. A new
    /// topology rolls through a federation node by node, so the version before and the
    /// version after meet while it does: a window of one version either way. Further apart,
    /// a node missed a change; it must be brought up to date first.
    public static func topologyVersionRefusal(peer: UInt64, own: UInt64) -> String? {
        let gap = peer > own ? peer - own : own - peer
        guard gap > 1 else { return nil }
        return "peer runs topology version \(peer), this node runs \(own): nodes meet only one version apart while a topology rolls out; apply version \(max(peer, own)) to the node that lags"
    }
}
