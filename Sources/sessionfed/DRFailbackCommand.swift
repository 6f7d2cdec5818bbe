import ArgumentParser
import Foundation
import NodeRuntime
import SessionModel
import Topology

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
