import Foundation

/// A topology drawn (`sessionfed topology graph`): its sites with their role and nodes, and the
/// links between sites (mesh, hub or explicit pairs, as `linkGraph` resolves them). Labels on
/// links are optional (`--live` puts each link's lag there). Graphviz DOT, Mermaid, or an SVG
/// laid out here: sites on a circle, links as straight lines between them.
public struct TopologyGraph: Sendable {
    public let topology: Topology
    /// Per pair of site names (sorted), the text written on that link.
    public var linkLabels: [[String]: String] = [:]

    public init(_ topology: Topology, linkLabels: [[String]: String] = [:]) {
        self.topology = topology
        self.linkLabels = linkLabels
    }

    /// Each link once, as a sorted pair of site names, in a stable order.
    public var links: [[String]] {
        let names = Dictionary(topology.sites.map { ($0.id, $0.name) }, uniquingKeysWith: { first, _ in first })
        var pairs = Set<[String]>()
        for (site, neighbours) in topology.linkGraph {
            for other in neighbours {
                if let a = names[site], let b = names[other] { pairs.insert([a, b].sorted()) }
            }
        }
        return pairs.sorted { $0.lexicographicallyPrecedes($1) }
    }

    var title: String { "federation \(topology.federation) · topology version \(topology.topologyVersion)" }

    static func nodeLine(_ node: Topology.Node) -> String { "\(node.name)\(node.voter ? "" : " (non-voter)") · \(node.client)" }

    // MARK: DOT

    public func dot() -> String {
        func quoted(_ text: String) -> String { "\"" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\"" }
        var lines = [
            "graph \(quoted(topology.federation)) {",
            "  label=\(quoted(title)); labelloc=t; fontname=\"Helvetica\"; compound=true;",
            "  node [shape=box, style=\"rounded,filled\", fillcolor=white, fontname=\"Helvetica\", fontsize=10];",
        ]
        for site in topology.sites {
            lines.append("  subgraph \(quoted("cluster_" + site.name)) {")
            lines.append("    label=\(quoted("\(site.name) (id \(site.id)) · \(site.role.rawValue)")); style=\"rounded,filled\"; fillcolor=\(quoted(site.role == .active ? "#d8f0d8" : "#e8e8e8"));")
            for node in site.nodes { lines.append("    \(quoted(node.name)) [label=\(quoted(Self.nodeLine(node)))];") }
            lines.append("  }")
        }
        let first = Dictionary(topology.sites.compactMap { site in site.nodes.first.map { (site.name, $0.name) } }, uniquingKeysWith: { a, _ in a })
        for pair in links {
            guard let a = first[pair[0]], let b = first[pair[1]] else { continue }
            let label = linkLabels[pair].map { ", label=\(quoted($0))" } ?? ""
            lines.append("  \(quoted(a)) -- \(quoted(b)) [ltail=\(quoted("cluster_" + pair[0])), lhead=\(quoted("cluster_" + pair[1]))\(label)];")
        }
        lines.append("}")
        return lines.joined(separator: "\n") + "\n"
    }

    // MARK: Mermaid

    public func mermaid() -> String {
        func id(_ name: String) -> String { "n_" + name.map { $0.isLetter || $0.isNumber ? String($0) : "_" }.joined() }
        func text(_ value: String) -> String { value.replacingOccurrences(of: "\"", with: "#quot;") }
        var lines = ["---", "title: \(title)", "---", "flowchart LR"]
        for site in topology.sites {
            lines.append("  subgraph \(id("site " + site.name))[\"\(text("\(site.name) (id \(site.id)) · \(site.role.rawValue)"))\"]")
            for node in site.nodes { lines.append("    \(id(node.name))[\"\(text(Self.nodeLine(node)))\"]") }
            lines.append("  end")
        }
        for pair in links {
            let label = linkLabels[pair].map { "|\"\(text($0))\"|" } ?? ""
            lines.append("  \(id("site " + pair[0])) <-->\(label) \(id("site " + pair[1]))")
        }
        for site in topology.sites {
            lines.append("  style \(id("site " + site.name)) fill:\(site.role == .active ? "#d8f0d8" : "#e8e8e8")")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    // MARK: SVG

    /// Sites as rounded boxes on a circle (one site: centred), links as lines between their
    /// centres, drawn first so the boxes cover their ends.
    public func svg() -> String {
        let boxWidth = 300.0
        let lineHeight = 16.0
        let sites = topology.sites
        let tallest = Double(sites.map(\.nodes.count).max() ?? 0) * lineHeight + 44
        let radius = sites.count > 1 ? max(220, Double(sites.count) * 90) : 0
        let width = 2 * radius + boxWidth + 80
        let centre = (x: width / 2, y: 60 + radius + tallest / 2)
        var position: [String: (x: Double, y: Double)] = [:]
        for (index, site) in sites.enumerated() {
            let angle = -Double.pi / 2 + 2 * Double.pi * Double(index) / Double(max(sites.count, 1))
            position[site.name] = (centre.x + radius * cos(angle), centre.y + radius * sin(angle))
        }
        // As tall as the lowest box reaches.
        let height = (sites.compactMap { site in position[site.name].map { $0.y + (Double(site.nodes.count) * lineHeight + 44) / 2 } }.max() ?? 60) + 40
        func escaped(_ text: String) -> String {
            text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
        }
        func number(_ value: Double) -> String { String(format: "%.1f", value) }
        var parts = [
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(number(width))\" height=\"\(number(height))\" viewBox=\"0 0 \(number(width)) \(number(height))\" font-family=\"Helvetica, Arial, sans-serif\">",
            "  <rect width=\"100%\" height=\"100%\" fill=\"white\"/>",
            "  <text x=\"\(number(width / 2))\" y=\"30\" text-anchor=\"middle\" font-size=\"16\" font-weight=\"bold\">\(escaped(title))</text>",
        ]
        for pair in links {
            guard let a = position[pair[0]], let b = position[pair[1]] else { continue }
            parts.append("  <line x1=\"\(number(a.x))\" y1=\"\(number(a.y))\" x2=\"\(number(b.x))\" y2=\"\(number(b.y))\" stroke=\"#4a6fa5\" stroke-width=\"2\"/>")
            if let label = linkLabels[pair] {
                parts.append("  <text x=\"\(number((a.x + b.x) / 2))\" y=\"\(number((a.y + b.y) / 2 - 6))\" text-anchor=\"middle\" font-size=\"12\" fill=\"#4a6fa5\" stroke=\"white\" stroke-width=\"4\" paint-order=\"stroke\">\(escaped(label))</text>")
            }
        }
        for site in sites {
            guard let at = position[site.name] else { continue }
            let boxHeight = Double(site.nodes.count) * lineHeight + 44
            let left = at.x - boxWidth / 2
            let top = at.y - boxHeight / 2
            let fill = site.role == .active ? "#d8f0d8" : "#e8e8e8"
            parts.append("  <g>")
            parts.append("    <rect x=\"\(number(left))\" y=\"\(number(top))\" width=\"\(number(boxWidth))\" height=\"\(number(boxHeight))\" rx=\"10\" fill=\"\(fill)\" stroke=\"#555\"/>")
            parts.append("    <text x=\"\(number(at.x))\" y=\"\(number(top + 22))\" text-anchor=\"middle\" font-size=\"14\" font-weight=\"bold\">\(escaped("\(site.name) (id \(site.id)) · \(site.role.rawValue)"))</text>")
            for (index, node) in site.nodes.enumerated() {
                parts.append("    <text x=\"\(number(left + 14))\" y=\"\(number(top + 42 + Double(index) * lineHeight))\" font-size=\"12\">\(escaped(Self.nodeLine(node)))</text>")
            }
            parts.append("  </g>")
        }
        parts.append("</svg>")
        return parts.joined(separator: "\n") + "\n"
    }
}
