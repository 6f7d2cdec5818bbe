import Keyspace
import RESP
import SessionModel
import Topology

/// CLUSTER and the commands cluster-aware clients send around it (READONLY, READWRITE,
/// ASKING). A client in cluster mode reads the slot map and sends each key to its
/// partition's primary, saving the hop a forwarded command takes. The map is the one this
/// node applied; a client that acts on an older one is forwarded, not refused.
extension ClientConnection {
    func cluster(_ arguments: [[UInt8]]) {
        guard clusterClientsServed else {
            reply(Self.clusterDisabled)
            return
        }
        let sub = String(decoding: arguments[1], as: UTF8.self).uppercased()
        switch (sub, arguments.count) {
        case ("SLOTS", 2):
            reply(clusterSlots().slotsReply)
        case ("SHARDS", 2):
            reply(clusterSlots().shardsReply)
        case ("NODES", 2):
            reply(.verbatim(format: "txt", text: Array(clusterSlots().nodesText(myself: state.configuration.node.name, epoch: clusterEpoch).utf8)))
        case ("INFO", 2):
            reply(.verbatim(format: "txt", text: Array(clusterInfo().utf8)))
        case ("MYID", 2):
            reply(.bulk(ClusterSlots.nodeID(site: state.configuration.site.name, node: state.configuration.node.name)))
        case ("KEYSLOT", 3):
            reply(.integer(Int64(Partitioning.slot(of: arguments[2]))))
        case ("HELP", 2):
            reply(.array([
                "CLUSTER <subcommand> [<arg> ...]. Subcommands are:", "INFO", "KEYSLOT <key>", "MYID", "NODES", "SHARDS", "SLOTS",
                "The site's partitions are placed by sessionfed itself (sessionfed topology, drain).",
            ].map { .simpleString($0) }))
        // After every case of the right count: a known subcommand with any other count.
        case ("SLOTS", _), ("SHARDS", _), ("NODES", _), ("INFO", _), ("MYID", _), ("KEYSLOT", _), ("HELP", _):
            reply(RedisError.wrongArity("cluster|\(sub)"))
        case ("MEET", _), ("ADDSLOTS", _), ("ADDSLOTSRANGE", _), ("DELSLOTS", _), ("DELSLOTSRANGE", _), ("SETSLOT", _), ("FAILOVER", _),
            ("FORGET", _), ("REPLICATE", _), ("RESET", _), ("FLUSHSLOTS", _), ("SAVECONFIG", _), ("BUMPEPOCH", _), ("SET-CONFIG-EPOCH", _):
            reply(.error("ERR CLUSTER \(sub) is not supported by this server: sessionfed places the site's partitions itself (sessionfed topology, sessionfed drain)"))
        default:
            reply(RedisError.unknownSubcommand(arguments[1], of: "cluster"))
        }
    }

    /// Whether this site answers cluster-aware clients (`defaults.clusterClients`).
    var clusterClientsServed: Bool { state.configuration.topology.defaults.clusterClients }

    /// Redis's own answer when cluster mode is off: clients that probe for it (CLUSTER SLOTS,
    /// READONLY) take it to mean "standalone".
    static let clusterDisabled = RESPValue.error("ERR This instance has cluster support disabled")

    /// The slot map this node would give a client on this connection: a client that came
    /// over TLS is given the nodes' TLS ports.
    func clusterSlots() -> ClusterSlots {
        let configuration = state.configuration
        let nodes = Self.clusterNodes(of: configuration.site, overTLS: overTLS)
        if configuration.site.nodes.count == 1 {
            guard let myself = nodes[configuration.node.name] else { return ClusterSlots(ranges: [], directory: []) }
            return ClusterSlots(alone: myself)
        }
        // A node of a larger site that has not applied a map yet (starting) has no ranges to
        // give: CLUSTER INFO says `fail`, and a client asks another node.
        guard let dataPlane = state.dataPlane, let map = state.controlPlane?.raft.map else {
            return ClusterSlots(ranges: [], directory: Array(nodes.values))
        }
        return ClusterSlots(partitionCount: dataPlane.partitioning.partitionCount, assignments: map.partitions, nodes: nodes)
    }

    /// The site's nodes as a client on a connection of this kind reaches them (a node
    /// without a TLS port is left out for a TLS client).
    static func clusterNodes(of site: Topology.Site, overTLS: Bool) -> [String: ClusterSlots.Node] {
        var nodes: [String: ClusterSlots.Node] = [:]
        for node in site.nodes {
            guard let address = overTLS ? node.clientTLS : node.client else { continue }
            nodes[node.name] = ClusterSlots.Node(
                name: node.name, id: ClusterSlots.nodeID(site: site.name, node: node.name),
                host: advertisedHost(client: address, peer: node.peer), port: address.port,
                plainPort: node.client.port, tlsPort: node.clientTLS?.port
            )
        }
        return nodes
    }

    /// Where clients reach a node: its client address, unless that is a wildcard a listener
    /// binds to (0.0.0.0, ::), which no client can connect to; then the host its site's other
    /// nodes reach it on.
    static func advertisedHost(client: Topology.Address, peer: Topology.Address) -> String {
        ["0.0.0.0", "::", "[::]", ""].contains(client.host) ? peer.host : client.host
    }

    /// The map's position in the control plane's log: it only grows, as Redis's epochs do.
    var clusterEpoch: UInt64 { state.controlPlane?.raft.map.appliedIndex ?? 0 }

    /// CLUSTER INFO: Redis's fields, from the slot map. `cluster_state` is `fail` while some
    /// slot has no primary, as Redis says it when a master is lost.
    func clusterInfo() -> String {
        let slots = clusterSlots()
        let covered = slots.coveredSlots
        let fields: [(String, String)] = [
            ("cluster_enabled", "1"),
            ("cluster_state", covered == Partitioning.slotCount ? "ok" : "fail"),
            ("cluster_slots_assigned", String(covered)),
            ("cluster_slots_ok", String(covered)),
            ("cluster_slots_pfail", "0"),
            ("cluster_slots_fail", String(Partitioning.slotCount - covered)),
            ("cluster_known_nodes", String(state.configuration.site.nodes.count)),
            ("cluster_size", String(Set(slots.ranges.map(\.primary.name)).count)),
            ("cluster_current_epoch", String(clusterEpoch)),
            ("cluster_my_epoch", String(clusterEpoch)),
        ]
        return fields.map { "\($0.0):\($0.1)\r\n" }.joined()
    }
}
