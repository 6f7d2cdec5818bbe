import SessionModel
import Topology

/// What the topology parser guarantees for any file an operator can write (read as UTF-8,
/// invalid sequences replaced, as a file read with `String(decoding:)` would be):
///
/// - It ends with a topology or with located errors; never a trap or a hang.
/// - Refused: at least one error, each with the file's name, a line from 1, a key and a
///   message.
/// - Accepted: the rules `validate` promises hold (unique site names, ids and node names, no
///   address used twice, a voter in every site, an active site, links between known sites,
///   settings within their ranges), and what the rest of the program derives from a topology
///   (link graph, merge policies, rendered graphs, a plan against itself) does not trap.
public enum TopologyParserProperty {
    static let file = "fuzz.yaml"

    public static func check(_ input: [UInt8]) throws(PropertyViolation) {
        let text = String(decoding: input, as: UTF8.self)
        switch TopologyParser.parse(text, file: file) {
        case .failure(let refusal):
            try checkRefusal(refusal)
        case .success(let topology):
            try checkAccepted(topology)
        }
    }

    static func checkRefusal(_ refusal: TopologyErrors) throws(PropertyViolation) {
        guard !refusal.errors.isEmpty else { throw PropertyViolation("a refused file names a problem", "no errors") }
        for error in refusal.errors where error.file != file || error.line < 1 || error.key.isEmpty || error.message.isEmpty {
            throw PropertyViolation("every error is located", "\(error)")
        }
    }

    static func checkAccepted(_ topology: Topology) throws(PropertyViolation) {
        func require(_ holds: Bool, _ property: String, _ details: @autoclosure () -> String = "") throws(PropertyViolation) {
            if !holds { throw PropertyViolation(property, details()) }
        }
        try require(!topology.federation.isEmpty, "an accepted topology names its federation")
        try require(topology.topologyVersion >= 1, "topologyVersion is at least 1", "\(topology.topologyVersion)")
        let defaults = topology.defaults
        try require((1...16384).contains(defaults.partitions), "partitions within 1...16384", "\(defaults.partitions)")
        try require((0...4).contains(defaults.backupCount), "backupCount within 0...4", "\(defaults.backupCount)")
        try require((1...5).contains(defaults.minInSync), "minInSync within 1...5", "\(defaults.minInSync)")
        try require(!topology.sites.isEmpty, "an accepted topology has a site")
        try require(topology.sites.contains { $0.role == .active }, "an accepted topology has an active site")

        var siteNames: Set<String> = [], siteIDs: Set<UInt32> = [], nodeNames: Set<String> = [], addresses: Set<String> = []
        for site in topology.sites {
            try require(siteNames.insert(site.name).inserted, "site names are unique", site.name)
            try require(siteIDs.insert(site.id).inserted, "site ids are unique", "\(site.id)")
            try require((1...65535).contains(site.id), "site ids within 1...65535", "\(site.id)")
            try require(site.nodes.contains(where: \.voter), "every site has a voter", site.name)
            for node in site.nodes {
                try require(nodeNames.insert(node.name).inserted, "node names are unique", node.name)
                for address in [node.client, node.peer, node.federation, node.admin] + (node.clientTLS.map { [$0] } ?? []) {
                    try require((1...65535).contains(address.port), "ports within 1...65535", "\(address)")
                    try require(addresses.insert(address.description).inserted, "no address is used twice", "\(address)")
                }
            }
        }
        switch topology.links {
        case .mesh:
            break
        case .hub(let hub):
            try require(siteNames.contains(hub), "the hub is a site", hub)
        case .pairs(let pairs):
            for pair in pairs {
                try require(pair.count == 2 && pair.allSatisfy(siteNames.contains) && pair[0] != pair[1], "links join two known sites", "\(pair)")
            }
        }

        let graph = topology.linkGraph
        try require(Set(graph.keys) == siteIDs, "the link graph has every site", "\(graph)")
        for (site, neighbours) in graph {
            try require(!neighbours.contains(site), "no site links to itself", "\(site)")
            try require(neighbours.allSatisfy { graph[$0]?.contains(site) == true }, "links go both ways", "\(graph)")
        }
        // Each pattern matched against every pattern's text: glob matching of arbitrary patterns
        // must end and not trap.
        for policy in topology.policies {
            _ = topology.mergePolicy(forKey: Array(policy.pattern.utf8))
        }
        let rendered = TopologyGraph(topology)
        _ = (rendered.dot(), rendered.mermaid(), rendered.svg())
        let plan = TopologyPlan.between(topology, topology)
        try require(plan.changes.count == 1 && plan.refused, "a topology against itself changes only its version, which is refused", plan.rendered())
    }
}
