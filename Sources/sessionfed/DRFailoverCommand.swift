import ArgumentParser
import Foundation
import NodeRuntime
import SessionModel
import Topology

/// `sessionfed dr failover --to SITE`: unplanned. SITE takes the writes at once, at a new role
/// epoch, without waiting for the lost site; what the lost site had not shipped is the RPO the
/// operator accepts (the last lag known). The lost site, when it returns, learns the new epoch
/// from the first site it reaches and comes back passive.
struct DRFailover: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "failover", abstract: "Make SITE the only active site now, without waiting for the lost one (unplanned).")

    @Option(help: "The topology file.") var topology: String
    @Option(help: "The site to make active.") var to: String

    func run() async throws {
        let view = await FederationView.read(try loadTopology(topology))
        let target = try view.site(named: to)
        let lost = view.activeSites.filter { $0 != to }
        // The RPO accepted: what the previously active sites last reported not yet acknowledged
        // by the target (unknown for a site that does not answer).
        for site in lost {
            let links = view.reports(of: site).flatMap { node in node.federationLinks.filter { $0.site == to } }
            if links.isEmpty {
                let contact = view.reports(of: to).flatMap(\.federationLinks).filter { $0.site == site }.compactMap(\.lastContactMillisecondsAgo).min()
                print("\(site): unreachable · RPO accepted: unknown, at most what it wrote since \(to) last heard from it (\(contact.map { "\($0) ms ago" } ?? "never since start"))")
            } else {
                print("\(site): RPO accepted: \(links.map(\.lagDeltas).reduce(0, +)) deltas, oldest \(links.map(\.lagMilliseconds).max() ?? 0) ms, not yet acknowledged by \(to)")
            }
        }
        let started = Date()
        let answer = try await postRoleChange(to: target, in: view, "/dr/takeover")
        guard answer.status < 300, let assignment = answer.text.split(separator: "\n").first.flatMap({ RoleAssignment(query: $0) }) else {
            throw ValidationError("\(to) refused to take over: \(answer.text) (HTTP \(answer.status))")
        }
        let (accepting, _) = try await waitFor(view.topology, until: started.addingTimeInterval(10)) { view in
            let nodes = view.reports(of: to)
            return !nodes.isEmpty && nodes.allSatisfy { $0.roles.acceptsWrites }
        }
        guard accepting else { throw ValidationError("\(to) committed the failover (role epoch \(assignment.epoch)) but not every node of it takes writes yet; see `sessionfed dr status`") }
        await spread(assignment, in: view, except: [to])
        print("\(to): active at role epoch \(assignment.epoch) · took \(milliseconds(since: started)) ms")
    }
}
