import Testing
@testable import ControlPlane

/// Placement for a leaving member (pure): every copy it holds is re-created on a staying
/// member before it is dropped, and its primaries move by planned handover.
@Suite struct DrainPlacementTests {
    /// Runs the leader's decisions to a fixed point, every backup catching up at once and
    /// every old primary handing off at once; returns the decisions' count.
    @discardableResult
    static func settle(_ map: inout ClusterMap, check: (ClusterMap) -> Void = { _ in }) -> Int {
        for round in 0..<200 {
            var commands = map.repairs()
            if commands.isEmpty { commands = map.partitions.filter { $0.handoverTo != nil }.map { .assign($0.completingHandover()) } }
            if commands.isEmpty { commands = map.rebalance() }
            if commands.isEmpty { return round }
            ClusterMapTests.applyAll(commands, to: &map)
            check(map)
            ClusterMapTests.markAllInSync(&map)
            check(map)
        }
        Issue.record("placement did not settle")
        return 200
    }

    /// Never fewer whole copies than before the drain started (the leaving member's count).
    static func copiesNeverDrop(below minimum: Int) -> (ClusterMap) -> Void {
        { map in
            for assignment in map.partitions {
                let whole = (assignment.primary.map { [$0] } ?? []) + assignment.backups.filter(assignment.inSync.contains)
                #expect(whole.count >= minimum, "partition \(assignment.partition) fell to \(whole) whole copies")
            }
        }
    }

    @Test(arguments: [1, 2])
    func aLeavingMember_endsWithNoCopy_andNoPartitionLosesAWholeCopyOnTheWay(_ backups: Int) {
        var map = ClusterMapTests.map(members: ["a", "b", "c", "d"], partitions: 16, backups: backups)
        Self.settle(&map)
        #expect(map.holdsCopies("b"))
        map.apply(.memberDraining(name: "b", draining: true), index: map.appliedIndex + 1)
        Self.settle(&map, check: Self.copiesNeverDrop(below: backups + 1))
        #expect(!map.holdsCopies("b"), "\(map.partitions)")
        for assignment in map.partitions {
            #expect(assignment.primary != nil && assignment.backups.count == backups && assignment.inSync.count == backups)
        }
    }

    /// A three-node site with one backup: the leaving node's partitions fit on the other two.
    @Test func aThreeNodeSite_drainsOneNode_ontoTheOtherTwo() {
        var map = ClusterMapTests.map(members: ["a", "b", "c"], partitions: 12)
        Self.settle(&map)
        map.apply(.memberDraining(name: "a", draining: true), index: map.appliedIndex + 1)
        Self.settle(&map, check: Self.copiesNeverDrop(below: 2))
        #expect(!map.holdsCopies("a"))
        #expect(map.partitions.allSatisfy { Set($0.holders) == ["b", "c"] })
    }

    /// With no other member to take them, the copies stay: nothing is dropped.
    @Test func aLoneLeavingMember_keepsItsCopies() {
        var map = ClusterMapTests.map(members: ["a"], partitions: 4, backups: 1)
        Self.settle(&map)
        map.apply(.memberDraining(name: "a", draining: true), index: map.appliedIndex + 1)
        Self.settle(&map)
        #expect(map.partitions.allSatisfy { $0.primary == "a" })
    }

    /// Every node stopping at once (a deployment deleted): nothing to move to, nothing moves.
    @Test func aWholeSiteLeaving_movesNothing() {
        var map = ClusterMapTests.map(members: ["a", "b", "c"], partitions: 12)
        Self.settle(&map)
        let before = map.partitions
        for name in ["a", "b", "c"] { map.apply(.memberDraining(name: name, draining: true), index: map.appliedIndex + 1) }
        #expect(map.repairs().isEmpty && map.rebalance().isEmpty)
        Self.settle(&map)
        #expect(map.partitions.map(\.holders) == before.map(\.holders))
    }

    /// A restarted member (the rolling restart) comes back not draining and is given its share.
    @Test func aMemberBackAsANewIncarnation_isNoLongerDraining_andGetsCopiesAgain() {
        var map = ClusterMapTests.map(members: ["a", "b", "c"], partitions: 12)
        Self.settle(&map)
        map.apply(.memberDraining(name: "a", draining: true), index: map.appliedIndex + 1)
        Self.settle(&map)
        ClusterMapTests.applyAll([.memberState(name: "a", state: .down), .memberIncarnation(name: "a", incarnation: 42), .memberState(name: "a", state: .up)], to: &map)
        #expect(map.members["a"]?.draining == false)
        Self.settle(&map)
        let primaries = map.partitions.filter { $0.primary == "a" }.count
        #expect(primaries >= 3 && primaries <= 5, "a leads \(primaries) of 12")
    }

    @Test func theLeader_marksAMemberDraining_fromItsReport_andUndoesIt() {
        let now: UInt64 = 100_000
        var observed = MapControllerTests.observations(now: now, reportIndex: 10)
        observed.draining = ["c"]
        let proposals = MapControllerTests.controller.proposals(map: MapControllerTests.map(), voters: ["a": 1, "b": 1, "c": 1], observed: observed, now: now)
        #expect(proposals.contains(.memberDraining(name: "c", draining: true)), "\(proposals)")
        var draining = MapControllerTests.map()
        draining.members["c"]?.draining = true
        observed.draining = []
        let undone = MapControllerTests.controller.proposals(map: draining, voters: ["a": 1, "b": 1, "c": 1], observed: observed, now: now)
        #expect(undone.contains(.memberDraining(name: "c", draining: false)), "\(undone)")
    }
}
