import ArgumentParser
import Foundation
import NodeRuntime
import Topology

/// `sessionfed dr take-offline SITE` / `bring-online SITE`: every other site linked with SITE
/// stops (resumes) shipping to it, as Infinispan's `site take-offline` does. Its outboxes are
/// released at once, so a site that is down for long costs the others no memory; brought
/// back online, anti-entropy catches it up.
struct DRTakeOffline: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "take-offline", abstract: "Stop shipping to SITE from every other site (its outboxes are released).")

    @Option(help: "The topology file.") var topology: String
    @Argument(help: "The site to take offline.") var site: String

    func run() async throws {
        try await setOffline(site, offline: true, topology: try loadTopology(topology))
    }
}

/// Asks each site linked with `name` to stop or resume shipping to it; fails naming the sites
/// that did not take the change.
func setOffline(_ name: String, offline: Bool, topology: Topology) async throws {
    let view = await FederationView.read(topology)
    let target = try view.site(named: name)
    let linked = topology.linkGraph[target.id] ?? []
    var failures: [String] = []
    for site in topology.sites where linked.contains(site.id) {
        do {
            let answer = try await postRoleChange(to: site, in: view, "/dr/offline?site=\(name)&offline=\(offline ? 1 : 0)")
            print("\(site.name): \(answer.text)")
            if answer.status >= 300 { failures.append(site.name) }
        } catch {
            print("\(site.name): \(error)")
            failures.append(site.name)
        }
    }
    if !failures.isEmpty {
        throw ValidationError("\(failures.joined(separator: ", ")) did not take \(name) \(offline ? "offline" : "online"); run the command again once they answer")
    }
}
