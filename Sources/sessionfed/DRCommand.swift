import ArgumentParser
import Foundation
import NodeRuntime
import SessionModel
import Topology

/// `sessionfed dr …`: disaster recovery between sites (DESIGN.md §5). Role changes go to the
/// control-plane leader of a site through its admin endpoint; each is committed there and
/// spreads to the other sites in the federation's handshakes and heartbeats.
struct DR: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dr",
        abstract: "Show and move the sites' roles: status, switchover (planned, zero loss), failover (unplanned), failback.",
        subcommands: [DRStatus.self, DRSwitchover.self, DRFailover.self, DRFailback.self, DRTakeOffline.self, DRBringOnline.self]
    )
}

/// What `dr` commands read of a running federation: every node's /status.
struct FederationView {
    let topology: Topology
    let reports: [Status.NodeReport]

    static func read(_ topology: Topology) async -> FederationView {
        FederationView(topology: topology, reports: await Status.collect(topology))
    }

    func site(named name: String) throws -> Topology.Site {
        guard let site = topology.sites.first(where: { $0.name == name }) else {
            throw ValidationError("no site \"\(name)\" in the topology (sites: \(topology.sites.map(\.name).joined(separator: ", ")))")
        }
        return site
    }

    func reports(of site: String) -> [NodeSnapshot] {
        reports.filter { $0.site == site }.compactMap(\.status)
    }

    /// The roles a site has in force, from the answering node that knows the highest epoch.
    func roles(of site: String) -> (role: String, roles: RolesSnapshot)? {
        reports(of: site).max { $0.roles.epoch < $1.roles.epoch }.map { ($0.role, $0.roles) }
    }

    /// The node of `site` that leads its control plane (role changes are committed there).
    func leader(of site: Topology.Site) throws -> Topology.Node {
        // A site of one node: it is its own leader (it says so if not yet).
        if site.nodes.count == 1 { return site.nodes[0] }
        let answering = reports(of: site.name)
        guard !answering.isEmpty else { throw ValidationError("no node of site \(site.name) answers; see `sessionfed dr status`") }
        if let name = answering.first(where: { $0.controlPlane?.role == "leader" })?.node ?? answering.compactMap({ $0.controlPlane?.leader }).first,
            let node = site.nodes.first(where: { $0.name == name })
        {
            return node
        }
        let roles = answering.map { "\($0.node): \($0.controlPlane?.role ?? "not started")" }
        throw ValidationError("site \(site.name) has no control-plane leader now (\(roles.joined(separator: ", "))); retry once it has elected one")
    }

    /// The sites active in the highest assignment any answering node knows.
    var activeSites: [String] {
        reports.compactMap(\.status).max { $0.roles.epoch < $1.roles.epoch }?.roles.activeSites ?? []
    }
}

/// POSTs a role change to the control-plane leader of `site`; the answer's status and text.
/// A site without a leader yet (a node that just started elects itself within about 1.5 s)
/// or whose leader moved answers 421: asked again, from a fresh view, for up to 10 s.
func postRoleChange(to site: Topology.Site, in view: FederationView, _ path: String) async throws -> (status: Int, text: String) {
    let deadline = Date().addingTimeInterval(10)
    var view = view
    while true {
        let leader = try? view.leader(of: site)
        if let leader {
            let answer = try await AdminClient.post(leader.admin, path: path, timeout: .seconds(5))
            let text = String(decoding: answer.body, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            if answer.status != 421 || Date() >= deadline { return (answer.status, text) }
        } else if Date() >= deadline {
            _ = try view.leader(of: site)  // throws, naming each node's role
        }
        try await Task.sleep(for: .milliseconds(200))
        view = await FederationView.read(view.topology)
    }
}

/// Polls the federation until `condition` holds or `deadline` passes; the last view.
func waitFor(_ topology: Topology, until deadline: Date, every interval: Duration = .milliseconds(50), _ condition: (FederationView) -> Bool) async throws -> (Bool, FederationView) {
    while true {
        let view = await FederationView.read(topology)
        if condition(view) { return (true, view) }
        if Date() >= deadline { return (false, view) }
        try await Task.sleep(for: interval)
    }
}

func milliseconds(since start: Date) -> Int { Int(Date().timeIntervalSince(start) * 1000) }

/// Tells every other site the new assignment at once (each adopts it only if it supersedes its
/// own; heartbeats would carry it within a second anyway).
func spread(_ assignment: RoleAssignment, in view: FederationView, except skipped: Set<String>) async {
    for site in view.topology.sites where !skipped.contains(site.name) {
        // One try each: a site that does not answer learns it when it returns.
        guard let leader = try? view.leader(of: site), !view.reports(of: site.name).isEmpty else { continue }
        _ = try? await AdminClient.post(leader.admin, path: "/dr/adopt?\(assignment.query)", timeout: .seconds(2))
    }
}
