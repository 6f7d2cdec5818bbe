import ArgumentParser
import Foundation
import NodeRuntime

/// `sessionfed dr status`: per site its role and role epoch; per link its state, lag (deltas,
/// bytes, milliseconds: the current RPO), last contact and whether it needs a resync.
struct DRStatus: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "Show each site's role and role epoch and each link's lag (the current RPO).")

    @Option(help: "The topology file.") var topology: String
    @Flag(help: "Print JSON instead of tables.") var json = false

    struct SiteRow: Codable {
        var site: String
        /// active | passive | fenced, or unreachable.
        var role: String
        var roleEpoch: UInt64?
        var activeSites: [String]?
        var handoverTo: String?
        var nodesAnswering: Int
        var nodes: Int
    }

    struct LinkRow: Codable {
        var fromSite: String
        var fromNode: String
        var toSite: String
        var state: String
        var lagDeltas: Int
        var lagBytes: Int
        var lagMilliseconds: UInt64
        var lastContactMillisecondsAgo: UInt64?
        var needsResync: Bool
    }

    struct Report: Codable {
        var sites: [SiteRow]
        var links: [LinkRow]
    }

    func run() async throws {
        let view = await FederationView.read(try loadTopology(topology))
        var report = Report(sites: [], links: [])
        for site in view.topology.sites {
            let known = view.roles(of: site.name)
            report.sites.append(
                SiteRow(
                    site: site.name, role: known?.role ?? "unreachable", roleEpoch: known?.roles.epoch, activeSites: known?.roles.activeSites,
                    handoverTo: known?.roles.handoverTo, nodesAnswering: view.reports(of: site.name).count, nodes: site.nodes.count
                )
            )
            for node in view.reports(of: site.name) {
                for link in node.federationLinks {
                    report.links.append(
                        LinkRow(
                            fromSite: site.name, fromNode: node.node, toSite: link.site, state: link.state, lagDeltas: link.lagDeltas,
                            lagBytes: link.outboxBytes, lagMilliseconds: link.lagMilliseconds, lastContactMillisecondsAgo: link.lastContactMillisecondsAgo,
                            needsResync: link.needsResync
                        )
                    )
                }
            }
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
            return
        }
        var sites = [["SITE", "ROLE", "ROLE EPOCH", "ACTIVE SITES", "NODES ANSWERING"]]
        for row in report.sites {
            let role = row.handoverTo.map { "\(row.role) (handing over to \($0))" } ?? row.role
            sites.append([row.site, role, row.roleEpoch.map(String.init) ?? "-", row.activeSites?.joined(separator: ", ") ?? "-", "\(row.nodesAnswering)/\(row.nodes)"])
        }
        print(Status.table(sites))
        var links = [["FROM", "NODE", "TO", "STATE", "LAG DELTAS", "LAG BYTES", "LAG MS (RPO)", "LAST CONTACT", "NEEDS RESYNC"]]
        for row in report.links {
            links.append([
                row.fromSite, row.fromNode, row.toSite, row.state, "\(row.lagDeltas)", Status.bytes(UInt64(row.lagBytes)), "\(row.lagMilliseconds)",
                row.lastContactMillisecondsAgo.map { "\($0) ms ago" } ?? "never", row.needsResync ? "yes" : "no",
            ])
        }
        if links.count > 1 {
            print("\nlinks (LAG = deltas the receiving site has not acknowledged; LAG MS = age of the oldest: what a failover now would lose)")
            print(Status.table(links))
        }
    }
}
