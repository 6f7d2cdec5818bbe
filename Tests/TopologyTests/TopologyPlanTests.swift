import Foundation
import Testing
@testable import Topology

/// `sessionfed topology plan`: the golden plans in plans/ (an added node, an added site, a
/// refused change), and each rule that refuses or restarts.
@Suite struct TopologyPlanTests {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("plans")

    static func load(_ name: String) throws -> Topology {
        let path = directory.appendingPathComponent(name).path
        let text = try String(contentsOfFile: path, encoding: .utf8)
        guard case .success(let topology) = TopologyParser.parse(text, file: path) else { throw PlanTestError.invalid(name) }
        return topology
    }

    enum PlanTestError: Error { case invalid(String) }

    @Test(arguments: ["added-node", "added-site", "refused"])
    func plan_matchesItsGoldenFile(name: String) throws {
        let plan = TopologyPlan.between(try Self.load("base.yaml"), try Self.load("\(name).yaml"))
        let golden = try String(contentsOfFile: Self.directory.appendingPathComponent("\(name).plan.txt").path, encoding: .utf8)
        #expect(plan.rendered() == golden)
        #expect(plan.refused == (name == "refused"))
    }

    @Test func sameOrSkippedVersion_refused() throws {
        let base = try Self.load("base.yaml")
        var same = base
        same.defaults.batchIntervalMilliseconds = 9
        #expect(TopologyPlan.between(base, same).refused, "a new version not greater than the old")
        var skipped = base
        skipped.topologyVersion = 3
        #expect(TopologyPlan.between(base, skipped).refused, "nodes meet only one version apart")
        var next = base
        next.topologyVersion = 2
        #expect(!TopologyPlan.between(base, next).refused)
    }

    @Test func removingTheActiveSite_refused_aPassiveOne_rolls() throws {
        let base = try Self.load("base.yaml")
        var withoutSeoul = base
        withoutSeoul.topologyVersion = 2
        withoutSeoul.sites.removeAll { $0.name == "seoul" }
        let refused = TopologyPlan.between(base, withoutSeoul)
        #expect(refused.refused && refused.rendered().contains("seoul is active: move its writes away first"))
        var withoutTokyo = base
        withoutTokyo.topologyVersion = 2
        withoutTokyo.sites.removeAll { $0.name == "tokyo" }
        #expect(!TopologyPlan.between(base, withoutTokyo).refused)
    }

    @Test func addingAVoter_restartsTheSite_addingANonVoter_startsIt() throws {
        let base = try Self.load("base.yaml")
        var voter = try Self.load("added-node.yaml")
        voter.sites[0].nodes[3].voter = true
        let plan = TopologyPlan.between(base, voter)
        #expect(plan.changes.contains { $0.subject == "node seoul-4 (site seoul, voter)" && $0.effect == .siteRestart("seoul (a voter joins only with the site restarted; add it as `voter: false` to join live)") })
    }

    /// Every link of a hub topology is drawn once, and every format names every site.
    @Test func graph_drawsEachLinkOnce_inEveryFormat() throws {
        var topology = try Self.load("added-site.yaml")
        topology.links = .hub("seoul")
        let graph = TopologyGraph(topology, linkLabels: [["seoul", "tokyo"]: "lag 0 deltas · 0 ms"])
        #expect(graph.links == [["frankfurt", "seoul"], ["seoul", "tokyo"]])
        for text in [graph.dot(), graph.mermaid(), graph.svg()] {
            for site in ["seoul", "tokyo", "frankfurt"] { #expect(text.contains(site)) }
            #expect(text.contains("lag 0 deltas"))
        }
        #expect(graph.dot().components(separatedBy: " -- ").count == 3)
        #expect(graph.svg().components(separatedBy: "<line ").count == 3)
    }
}
