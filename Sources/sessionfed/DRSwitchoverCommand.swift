import ArgumentParser
import Foundation
import NodeRuntime
import SessionModel
import Topology

/// `sessionfed dr switchover --to SITE`: a planned move of the writes, with zero loss. The
/// active site turns read-only (fenced), its outboxes drain to SITE until SITE has
/// acknowledged every delta (lag 0 proven by acknowledgements), then SITE commits the
/// handover assignment at the next epoch and takes writes. A drain that does not finish
/// within `--timeout` is rolled back: the fence is lifted and the old site takes writes again.
struct DRSwitchover: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "switchover", abstract: "Move the writes to SITE with zero loss (planned).")

    @Option(help: "The topology file.") var topology: String
    @Option(help: "The site to make active.") var to: String
    @Option(help: "Seconds the drain may take before the switchover is rolled back.") var timeout: Double = 30

    func run() async throws {
        try await Switchover(topology: try loadTopology(topology), target: to, timeout: timeout).run()
    }
}

/// The steps of a switchover, shared with `dr failback`.
struct Switchover {
    let topology: Topology
    let target: String
    let timeout: Double

    func run() async throws {
        let view = await FederationView.read(topology)
        let targetSite = try view.site(named: target)
        let active = view.activeSites
        guard active != [target] else {
            print("\(target) is the active site already; nothing to do")
            return
        }
        guard active.count == 1, let source = active.first else {
            throw ValidationError("a switchover moves the writes of one active site; the assignment in force has \(active.isEmpty ? "none" : active.joined(separator: ", ")). Use `dr failover --to \(target)` to make \(target) the only active site.")
        }
        let sourceSite = try view.site(named: source)
        guard !view.reports(of: target).isEmpty else { throw ValidationError("no node of \(target) answers; it cannot take the writes") }
        let started = Date()
        let deadline = started.addingTimeInterval(timeout)

        // 1. The active site turns read-only.
        let fence = try await postRoleChange(to: sourceSite, in: view, "/dr/fence?to=\(target)")
        guard fence.status < 300, let handover = fence.text.split(separator: "\n").first.flatMap({ RoleAssignment(query: $0) }) else {
            throw ValidationError("\(source) refused to turn read-only: \(fence.text) (HTTP \(fence.status))")
        }
        // The fence holds the epoch in force; the handover is the next one.
        let epoch = handover.epoch - 1
        print("\(source): read-only (fenced) · draining its writes to \(target)")

        // 2. Every node of it has the fence, and has had every delta acknowledged by the target.
        let (drained, last) = try await waitFor(topology, until: deadline) { view in
            let nodes = view.reports(of: source)
            return nodes.count == sourceSite.nodes.count
                && nodes.allSatisfy { node in
                    node.role == "fenced"
                        && node.federationLinks.contains { $0.site == target && $0.connected && $0.lagDeltas == 0 }
                }
        }
        guard drained else {
            let lag = last.reports(of: source).flatMap { node in node.federationLinks.filter { $0.site == target }.map { "\(node.node): \($0.lagDeltas) deltas, \($0.state)" } }
            let rollback = try await postRoleChange(to: sourceSite, in: last, "/dr/unfence?epoch=\(epoch)")
            throw ValidationError(
                "switchover rolled back after \(milliseconds(since: started)) ms: \(source) did not drain to \(target) within \(timeout) s (\(lag.joined(separator: "; "))); \(source): \(rollback.text)"
            )
        }
        print("\(source): every delta acknowledged by \(target) after \(milliseconds(since: started)) ms")

        // 3. The target commits the handover and takes the writes.
        let adopted = try await postRoleChange(to: targetSite, in: view, "/dr/adopt?\(handover.query)")
        let (accepting, after) = try await waitFor(topology, until: Date().addingTimeInterval(max(5, deadline.timeIntervalSinceNow))) { view in
            let nodes = view.reports(of: target)
            return !nodes.isEmpty && nodes.allSatisfy { $0.roles.acceptsWrites }
        }
        guard accepting else {
            // Its answer may have been lost after it committed: roll back only if it did not.
            if after.reports(of: target).contains(where: { $0.roles.epoch > epoch }) {
                throw ValidationError("\(target) committed the handover (role epoch \(epoch + 1)) but not every node of it takes writes yet; see `sessionfed dr status`")
            }
            let rollback = try await postRoleChange(to: sourceSite, in: last, "/dr/unfence?epoch=\(epoch)")
            throw ValidationError("switchover rolled back: \(target) did not take the writes (\(adopted.text), HTTP \(adopted.status)); \(source): \(rollback.text)")
        }
        let pause = milliseconds(since: started)
        await spread(handover, in: view, except: [target])
        print("\(target): active at role epoch \(epoch + 1) · writes were refused for \(pause) ms (fence to \(target) accepting)")
    }
}
