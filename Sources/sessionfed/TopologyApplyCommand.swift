import ArgumentParser
import Foundation
import NodeRuntime
import Topology

extension TopologyCommand {
    /// `sessionfed topology apply NEW --current OLD`: rolls NEW through the running nodes.
    ///
    /// Nodes read their topology at start, so each node in turn is drained (`/drain`: its
    /// partitions move to the site's other nodes, then it exits 0) and its supervisor
    /// (systemd, Kubernetes, ECS) starts it again with the new file, which the operator has
    /// put in place on every node beforehand. Apply waits until the node serves again at the
    /// new version before it moves on; nodes one version apart keep talking meanwhile. The
    /// order: passive sites before active ones; in a site, non-voters, then voters, the
    /// control-plane leader last. It stops at the first failure, says where, and a second run
    /// resumes (nodes already at the new version are skipped).
    struct Apply: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Roll NEW through the running nodes one at a time (drain, restart by the supervisor with NEW, wait); resumable.",
            discussion: "Put NEW where every node reads its topology first: each drained node exits 0 and its supervisor starts it again with that file. New nodes are started by you once the others run NEW (apply lists them)."
        )

        @Argument(help: "The new topology (already in place on every node).") var new: String
        @Option(help: "The topology the federation runs now.") var current: String
        @Option(help: "Seconds each node may take to drain, restart and serve again.") var timeoutPerNode: Double = 120

        func run() async throws {
            let old = try loadTopology(current)
            let new = try loadTopology(self.new)
            let plan = TopologyPlan.between(old, new)
            print(plan.rendered())
            guard !plan.refused else { throw ValidationError("nothing applied: the plan has refused changes") }
            let remaining = new.sites.flatMap(\.nodes).map(\.name)
            var view = await FederationView.read(old)
            let order = Self.order(old, new: new, view: view)
            var rolled = 0
            for (site, node) in order {
                view = await FederationView.read(old)
                let report = view.reports.first { $0.node == node.name }
                guard let status = report?.status else {
                    throw stopped(at: node.name, "it does not answer (\(report?.error ?? "unreachable")); bring it back, then run apply again")
                }
                if status.topologyVersion == new.topologyVersion {
                    print("\(node.name): at version \(new.topologyVersion) already")
                    continue
                }
                guard site.nodes.count > 1 else {
                    throw stopped(at: node.name, "\(site.name) has one node, which cannot hand its data to another: restart \(node.name) with the new file yourself (it recovers from the other sites), then run apply again")
                }
                guard remaining.contains(node.name) else {
                    throw stopped(at: node.name, "version \(new.topologyVersion) no longer lists it: `sessionfed drain --topology \(current) --node \(node.name)` and stop it first")
                }
                try await roll(node, topology: old, version: new.topologyVersion)
                rolled += 1
            }
            let newcomers = new.sites.flatMap(\.nodes).filter { node in old.node(named: node.name) == nil }.map(\.name)
            print("applied: version \(new.topologyVersion) runs on every node of version \(old.topologyVersion) (\(rolled) restarted)")
            if !newcomers.isEmpty { print("start the new nodes now: \(newcomers.joined(separator: ", "))") }
        }

        /// Passive sites before active ones (the writes move last); in a site, non-voters,
        /// then voters, the leader last (one election at most).
        static func order(_ old: Topology, new: Topology, view: FederationView) -> [(Topology.Site, Topology.Node)] {
            let sites = old.sites.sorted { ($0.role == .active ? 1 : 0, $0.id) < ($1.role == .active ? 1 : 0, $1.id) }
            return sites.flatMap { site -> [(Topology.Site, Topology.Node)] in
                let leader = view.reports(of: site.name).compactMap { $0.controlPlane?.leader }.first
                let nodes = site.nodes.sorted { a, b in
                    let rank = { (node: Topology.Node) in node.name == leader ? 2 : node.voter ? 1 : 0 }
                    return (rank(a), a.name) < (rank(b), b.name)
                }
                return nodes.map { (site, $0) }
            }
        }

        /// Drains `node`, waits until it is gone and then back at `version`, serving.
        func roll(_ node: Topology.Node, topology: Topology, version: Int) async throws {
            let started = Date()
            let deadline = started.addingTimeInterval(timeoutPerNode)
            let answer = try await AdminClient.post(node.admin, path: "/drain")
            guard answer.status == 202 else {
                throw stopped(at: node.name, "its drain was refused: \(String(decoding: answer.body, as: UTF8.self)) (HTTP \(answer.status))")
            }
            print("\(node.name): draining")
            var sawItGo = false
            while Date() < deadline {
                let status = try? await AdminClient.get(node.admin, path: "/status", timeout: .seconds(2))
                let snapshot = status.flatMap { $0.status == 200 ? try? JSONDecoder().decode(NodeSnapshot.self, from: Data($0.body)) : nil }
                if snapshot == nil { sawItGo = true }
                if let snapshot, snapshot.topologyVersion == version, !snapshot.loading, !snapshot.draining {
                    print("\(node.name): serving at version \(version) after \(Int(Date().timeIntervalSince(started))) s")
                    return
                }
                try await Task.sleep(for: .milliseconds(sawItGo ? 200 : 100))
            }
            throw stopped(
                at: node.name,
                sawItGo
                    ? "it stopped after its drain but did not come back at version \(version) within \(Int(timeoutPerNode)) s: is its supervisor restarting it, and does it read the new file?"
                    : "it did not finish its drain within \(Int(timeoutPerNode)) s (see its log and `sessionfed status`)"
            )
        }

        func stopped(at node: String, _ reason: String) -> ValidationError {
            ValidationError("apply stopped at \(node): \(reason). Run the same command again to resume: nodes already at the new version are skipped.")
        }
    }
}
