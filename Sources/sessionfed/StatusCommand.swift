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

    /// Every node's /status, in topology order; an unreachable node says why.
    static func collect(_ topology: Topology) async -> [NodeReport] {
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
        return reports
    }

    func run() async throws {
        let topology = try loadTopology(self.topology)
        let reports = await Self.collect(topology)
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
                    report.site, report.node, status.draining ? "draining" : status.loading ? "loading" : "serving", "\(status.keys)",
                    Self.bytes(UInt64(status.usedMemoryBytes)), status.merkleRoot ?? "-",
                ])
            } else {
                nodes.append([report.site, report.node, "DOWN", "-", "-", report.error ?? "unreachable"])
            }
        }
        print(Self.table(nodes))
        printControlPlanes(topology: topology, reports: reports)
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

    /// Per site: each node's view (role, term, leader) and the cluster map of the node with the
    /// highest commit index (the leader's, when it answers).
    func printControlPlanes(topology: Topology, reports: [NodeReport]) {
        for site in topology.sites {
            let views = reports.filter { $0.site == site.name }.compactMap { report in report.status?.controlPlane.map { (report.node, $0) } }
            guard let (_, map) = views.max(by: { ($0.1.commitIndex, $0.1.role == "leader" ? 1 : 0) < ($1.1.commitIndex, $1.1.role == "leader" ? 1 : 0) }) else {
                print("\ncontrol plane of \(site.name): no node of the site answered")
                continue
            }
            let leaders = Set(views.compactMap(\.1.leader))
            print("\ncontrol plane of \(site.name): leader \(map.leader ?? "NONE") · term \(map.term) · commit index \(map.commitIndex)\(leaders.count > 1 ? " · nodes disagree on the leader: \(leaders.sorted())" : "")")
            var members = [["MEMBER", "STATE", "VOTER", "ROLE", "TERM", "LEADER", "COMMIT", "PRIMARIES", "BACKUPS"]]
            for member in map.members {
                let view = views.first { $0.0 == member.name }?.1
                members.append([
                    member.name, member.draining ? "\(member.state),draining" : member.state, member.voter ? "yes" : "no", view?.role ?? "unreachable", view.map { "\($0.term)" } ?? "-",
                    view?.leader ?? "-", view.map { "\($0.commitIndex)" } ?? "-",
                    "\(map.partitions.primaries[member.name] ?? 0)", "\(map.partitions.backups[member.name] ?? 0)",
                ])
            }
            print(Self.table(members))
            let partitions = map.partitions
            print(
                "partitions: \(partitions.count) · without primary \(partitions.withoutPrimary) · orphaned \(partitions.orphaned)"
                    + " · handing over \(partitions.handoversInProgress) · on leaving members \(partitions.onLeavingMembers)"
                    + " · degraded \(partitions.degraded) · refusing writes \(partitions.refusingWrites) · re-created empty \(partitions.recreatedEmpty) · highest epoch \(partitions.highestEpoch)"
            )
            let rebalancing = map.rebalancing
            if rebalancing.moving + rebalancing.left > 0 {
                let copied = reports.filter { $0.site == site.name }.reduce(UInt64(0)) { $0 + ($1.status?.dataPlane?.transferBytesSent ?? 0) }
                let eta = rebalancing.etaMilliseconds.map { "about \(($0 + 999) / 1_000) s" } ?? "unknown until a move finishes"
                print(
                    "rebalancing: \(rebalancing.moving) moving · \(rebalancing.left) left · \(rebalancing.movesFinished) done"
                        + " · \(Self.bytes(copied)) copied by the site's nodes since they started · ETA \(eta)"
                )
            }
            if site.nodes.count > 1 { printPartitionTable(map, reports: reports.filter { $0.site == site.name }) }
        }
    }

    /// Per partition: the committed placement and, from its primary's own report, how far
    /// the writes went (LAG: writes a backup has not acknowledged; WAITING: replies held for
    /// them) and which backups copy it at all.
    func printPartitionTable(_ map: ControlPlaneSnapshot, reports: [NodeReport]) {
        var copies: [String: [Int: DataPlaneSnapshot.Copy]] = [:]
        for report in reports {
            for copy in report.status?.dataPlane?.copies ?? [] { copies[report.node, default: [:]][copy.partition] = copy }
        }
        var rows = [["PARTITION", "EPOCH", "PRIMARY", "BACKUPS", "IN SYNC", "LAST WRITE", "COMMITTED", "LAG", "WAITING"]]
        for row in map.partitionTable {
            let primary = row.primary.flatMap { copies[$0]?[row.partition] }
            let lag = primary?.lagWrites.sorted { $0.key < $1.key }.map { "\($0.key):\($0.value)" }.joined(separator: ",") ?? ""
            rows.append([
                "\(row.partition)", "\(row.epoch)", (row.primary ?? "NONE") + (row.handoverTo.map { "→\($0)" } ?? ""), row.backups.joined(separator: ","), row.inSync.joined(separator: ","),
                primary.map { "\($0.lastSequence)" } ?? "-", primary.map { "\($0.committedSequence)" } ?? "-",
                lag.isEmpty ? (primary == nil ? "-" : "0") : lag, primary.map { "\($0.waitingCommands)" } ?? "-",
            ])
        }
        print(Self.table(rows))
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
