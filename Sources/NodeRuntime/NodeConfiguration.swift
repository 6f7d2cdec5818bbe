import ControlPlane
import Federation
import Keyspace
import RESP
import SessionModel
import Topology

/// Everything one node needs to run, derived from the topology file and its name in it.
public struct NodeConfiguration: Sendable {
    public var topology: Topology
    public var site: Topology.Site
    public var node: Topology.Node
    public var limits: RESPLimits
    /// Maximum simultaneous client connections (Redis `maxclients`).
    public var maximumClients: Int
    /// How often the active expiry cycle runs, and how many keys one cycle may expire.
    public var expiryCycleMilliseconds: Int64
    public var expiryKeysPerCycle: Int
    /// Relative paths in the topology (TLS files) are resolved against this directory: the
    /// topology file's own.
    public var topologyDirectory = "."
    /// SIGTERM/SIGINT drain the node first (its copies move to the site's other nodes). The
    /// demo, whose nodes all stop together, turns it off.
    public var drainsOnShutdown = true

    /// Redis's default `maxclients`.
    public static let defaultMaximumClients = 10_000
    /// Redis runs its active expiry 10 times a second (`hz 10`).
    public static let defaultExpiryCycleMilliseconds: Int64 = 100
    /// Bounded work per cycle so a mass expiry cannot stall client commands.
    public static let defaultExpiryKeysPerCycle = 200

    public init(topology: Topology, nodeName: String) throws(NodeConfigurationError) {
        guard let found = topology.node(named: nodeName) else {
            throw NodeConfigurationError(message: "node '\(nodeName)' is not in the topology (nodes: \(topology.sites.flatMap(\.nodes).map(\.name).joined(separator: ", ")))")
        }
        self.topology = topology
        site = found.site
        node = found.node
        limits = .default
        maximumClients = Self.defaultMaximumClients
        expiryCycleMilliseconds = Self.defaultExpiryCycleMilliseconds
        expiryKeysPerCycle = Self.defaultExpiryKeysPerCycle
    }

    /// A federated keyspace indexes its keys by partition and keeps its Merkle leaves current,
    /// so anti-entropy never passes over every key on the event loop.
    public var keyspaceConfiguration: KeyspaceConfiguration {
        let federation = federationSettings
        return KeyspaceConfiguration(
            site: SiteID(site.id),
            policy: topology.defaultMergePolicy,
            rules: topology.keyPolicies.rules,
            retainTombstones: topology.sites.count > 1,
            expiryGraceMilliseconds: UInt64(topology.defaults.expiryGraceMilliseconds),
            maximumMemoryBytes: topology.defaults.maxmemoryBytes,
            partitioning: site.nodes.count > 1 || federation != nil ? Partitioning(partitionCount: topology.defaults.partitions) : nil,
            merkleLeafCount: federation?.merkleLeaves
        )
    }
}

extension NodeConfiguration {
    /// The federation settings of this node, or nil when its site links with no other site.
    public var federationSettings: FederationSettings? {
        let graph = topology.linkGraph
        guard let linked = graph[site.id], !linked.isEmpty else { return nil }
        var sites: [SiteID: FederationSettings.SiteInfo] = [:]
        for site in topology.sites {
            sites[SiteID(site.id)] = FederationSettings.SiteInfo(name: site.name, nodes: site.nodes.map(\.name))
        }
        var links: [SiteID: Set<SiteID>] = [:]
        for (site, neighbours) in graph { links[SiteID(site)] = Set(neighbours.map(SiteID.init)) }
        let defaults = topology.defaults
        var settings = FederationSettings(
            federation: topology.federation,
            topologyVersion: UInt64(topology.topologyVersion),
            localSite: SiteID(site.id),
            localNode: node.name,
            sites: sites,
            links: links,
            partitioning: Partitioning(partitionCount: defaults.partitions),
            batchIntervalMilliseconds: UInt64(defaults.batchIntervalMilliseconds),
            batchBytes: defaults.batchBytes,
            outboxLimitBytes: defaults.outboxLimitBytes,
            antiEntropyIntervalMilliseconds: UInt64(defaults.antiEntropyIntervalMilliseconds),
            policies: topology.keyPolicies,
            collectionIntervalMilliseconds: UInt64(defaults.collectionIntervalMilliseconds),
            collectionHorizonMilliseconds: UInt64(defaults.collectionHorizonMilliseconds)
        )
        settings.initialRoles = topology.initialRoles
        return settings
    }

    /// This site's roles at start: the topology's assignment (a site that is not federated is
    /// always active).
    public var initialSiteRoles: SiteRoles {
        guard federationSettings != nil else { return .standalone }
        return SiteRoles(site: SiteID(site.id), assignment: topology.initialRoles)
    }
}

public struct NodeConfigurationError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public var description: String { message }
}
