import ArgumentParser
import NodeRuntime
import Topology

extension TopologyCommand {
    /// `sessionfed topology graph FILE`: the sites, their nodes and roles, and the links,
    /// as Graphviz DOT, Mermaid or SVG; with `--live`, each link labelled with its lag.
    struct Graph: AsyncParsableCommand {
        enum Format: String, ExpressibleByArgument, CaseIterable {
            case dot, mermaid, svg
        }

        static let configuration = CommandConfiguration(
            abstract: "Draw a topology: sites, nodes, roles and links (DOT, Mermaid or SVG).",
            discussion: "With --live, every node's /status is read and each link is labelled with its lag (deltas not yet acknowledged, age of the oldest) or 'down'."
        )

        @Argument(help: "The topology file.") var file: String
        @Option(help: "dot, mermaid or svg.") var format: Format = .dot
        @Flag(help: "Label each link with its current lag, read from the running nodes.") var live = false

        func run() async throws {
            let topology = try loadTopology(file)
            var graph = TopologyGraph(topology)
            if live { graph.linkLabels = Self.lagLabels(await Status.collect(topology), links: graph.links) }
            switch format {
            case .dot: print(graph.dot(), terminator: "")
            case .mermaid: print(graph.mermaid(), terminator: "")
            case .svg: print(graph.svg(), terminator: "")
            }
        }

        /// Per link, the larger lag of its two directions as the sending nodes report it.
        static func lagLabels(_ reports: [Status.NodeReport], links: [[String]]) -> [[String]: String] {
            var labels: [[String]: String] = [:]
            for pair in links {
                let directions = reports.compactMap { report -> FederationLinkSnapshot? in
                    guard pair.contains(report.site), let other = pair.first(where: { $0 != report.site }) else { return nil }
                    return report.status?.federationLinks.first { $0.site == other }
                }
                if directions.isEmpty || directions.contains(where: { !$0.connected }) {
                    labels[pair] = "down"
                } else {
                    labels[pair] = "lag \(directions.map(\.lagDeltas).max() ?? 0) deltas · \(directions.map(\.lagMilliseconds).max() ?? 0) ms"
                }
            }
            return labels
        }
    }
}
