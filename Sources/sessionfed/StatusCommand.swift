import ArgumentParser
import Foundation
import NodeRuntime
import Topology

/// `sessionfed status`: reads every node's /status and prints sites, nodes and links.
struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show every node and federation link of a topology.")

    @Option(help: "The topology file.") var topology: String
    @Flag(help: "Print JSON instead of tables.") var json = false

    struct NodeReport: Codable {
        var site: String
        var node: String
        var admin: String
        var reachable: Bool
        var error: String?
        var status: NodeSnapshot?
    }

    func run() async throws {
        let topology = try loadTopology(self.topology)
        var reports: [NodeReport] = []
        for site in topology.sites {
            for node in site.nodes {
                var report = NodeReport(site: site.name, node: node.name, admin: node.admin.description, reachable: false)
                do {
                    let response = try await AdminClient.get(node.admin, path: "/status")
                    guard response.status == 200 else { throw AdminClient.Failure(description: "HTTP \(response.status) from \(node.admin)") }
                    report.status = try JSONDecoder().decode(NodeSnapshot.self, from: Data(response.body))
                    report.reachable = true
                } catch {
                    report.error = "\(error)"
                }
                reports.append(report)
            }
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(reports), as: UTF8.self))
            return
        }
        print("federation \(topology.federation) · topology version \(topology.topologyVersion) · \(topology.sites.count) site(s)\n")
        var nodes = [["SITE", "NODE", "STATE", "KEYS", "MEMORY", "MERKLE ROOT"]]
        for report in reports {
            if let status = report.status {
                nodes.append([
                    report.site, report.node, status.loading ? "loading" : "serving", "\(status.keys)",
                    Self.bytes(UInt64(status.usedMemoryBytes)), status.merkleRoot ?? "-",
                ])
            } else {
                nodes.append([report.site, report.node, "DOWN", "-", "-", report.error ?? "unreachable"])
            }
        }
        print(Self.table(nodes))
        var links = [["FROM", "TO", "STATE", "LAG", "LAG MS", "SENT", "RECEIVED", "CONFLICTS", "RESYNCS", "REPAIRED", "LAST ERROR"]]
        for report in reports {
            for link in report.status?.federationLinks ?? [] {
                links.append([
                    report.node, link.site, link.state, "\(link.lagDeltas)", "\(link.lagMilliseconds)",
                    Self.bytes(link.bytesSent), Self.bytes(link.bytesReceived),
                    "\(link.statistics.conflicts.values.reduce(0, +))", "\(link.statistics.resyncRuns)",
                    "\(link.statistics.keysRepaired)", link.lastError ?? "",
                ])
            }
        }
        if links.count > 1 {
            print("\nlinks (as each node sees them; LAG = deltas not yet acknowledged, LAG MS = age of the oldest)")
            print(Self.table(links))
        }
    }

    static func table(_ rows: [[String]]) -> String {
        let widths = (0..<(rows.first?.count ?? 0)).map { column in rows.map { $0[column].count }.max() ?? 0 }
        return rows.map { row in
            row.enumerated().map { column, cell in
                column == row.count - 1 ? cell : cell.padding(toLength: widths[column], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }.joined(separator: "\n")
    }

    static func bytes(_ count: UInt64) -> String {
        if count < 1_024 { return "\(count) B" }
        if count < 1 << 20 { return String(format: "%.1f KiB", Double(count) / 1_024) }
        return String(format: "%.1f MiB", Double(count) / 1_048_576)
    }
}
