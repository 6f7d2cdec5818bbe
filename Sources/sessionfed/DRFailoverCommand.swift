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

/// `sessionfed dr failback --to SITE`: the site that was lost has returned passive; once
/// anti-entropy has brought it up to date with the active site, a switchover makes it active.
struct DRFailback: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "failback", abstract: "Once SITE (returned passive) has resynchronised, switch the writes back to it.")

    @Option(help: "The topology file.") var topology: String
    @Option(help: "The site to make active again.") var to: String
    @Option(help: "Seconds to wait for the resync, and then for the switchover's drain.") var timeout: Double = 60

    func run() async throws {
        let topology = try loadTopology(topology)
        let view = await FederationView.read(topology)
        _ = try view.site(named: to)
        let active = view.activeSites
        guard let role = view.roles(of: to) else { throw ValidationError("no node of \(to) answers") }
        guard role.role == "passive", let source = active.first, active.count == 1 else {
            throw ValidationError("failback brings a returned passive site back; \(to) is \(role.role) and the active sites are \(active.joined(separator: ", "))")
        }
        // Resynchronised: its links with the active site connected and compared by
        // anti-entropy since it returned. (What the active site still sends it is the
        // switchover's drain, which waits for every acknowledgement.)
        let (synced, last) = try await waitFor(topology, until: Date().addingTimeInterval(timeout), every: .milliseconds(200)) { view in
            let returned = view.reports(of: to).flatMap { $0.federationLinks.filter { $0.site == source } }
            let current = view.reports(of: source).flatMap { $0.federationLinks.filter { $0.site == to } }
            return !returned.isEmpty && !current.isEmpty
                && (returned + current).allSatisfy { $0.connected && $0.synchronized && !$0.needsResync && !$0.resyncInProgress }
        }
        guard synced else {
            let states = last.reports(of: source).flatMap { node in node.federationLinks.filter { $0.site == to }.map { "\(node.node)→\(to): \($0.state), lag \($0.lagDeltas)" } }
            throw ValidationError("\(to) has not resynchronised with \(source) within \(timeout) s (\(states.joined(separator: "; "))); nothing changed")
        }
        print("\(to): resynchronised with \(source)")
        try await Switchover(topology: topology, target: to, timeout: timeout).run()
    }
}
