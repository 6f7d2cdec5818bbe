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
            if commands.isEmpty { commands = map.partitions.filter { $0.handoverTo != nil }.map { .assign($0.completingHandover(wholeCopies: $0.inSync, eligible: Set(map.eligibleMembers))) } }
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

    /// Found in review: a new leader that has not heard a member's report yet must not undo
    /// its drain (it would be given copies again while leaving).
    @Test func aNewLeader_doesNotUndoADrainItHasNotHeardAbout() {
        let now: UInt64 = 100_000
        var draining = MapControllerTests.map()
        draining.members["c"]?.draining = true
        let proposals = MapControllerTests.controller.proposals(map: draining, voters: ["a": 1, "b": 1, "c": 1], observed: MapControllerTests.observations(now: now, reportIndex: 10), now: now)
        #expect(!proposals.contains(.memberDraining(name: "c", draining: false)), "\(proposals)")
    }

    /// Found in review: a drained voter that stops while another voter is down leaves the
    /// site without a majority (no failover, no leases). It waits instead.
    @Test func aVoterMayStopOnlyIfAMajorityOfVotersStays() {
        var map = ClusterMapTests.map(members: ["a", "b", "c"], partitions: 4)
        #expect(map.leavesAMajorityOfVoters(without: "a"))
        map.apply(.memberState(name: "c", state: .down), index: map.appliedIndex + 1)
        #expect(!map.leavesAMajorityOfVoters(without: "a"), "b alone is not a majority of three")
        map.apply(.memberState(name: "c", state: .up), index: map.appliedIndex + 1)
        map.apply(.memberDraining(name: "c", draining: true), index: map.appliedIndex + 1)
        #expect(!map.leavesAMajorityOfVoters(without: "a"), "c is leaving too")
    }

    /// A leaving member's primaries are spread over the staying members, not all given to one.
    @Test func aLeavingMembersPrimaries_goToSeveralMembers() {
        var map = ClusterMapTests.map(members: ["a", "b", "c", "d"], partitions: 16)
        Self.settle(&map)
        map.apply(.memberDraining(name: "a", draining: true), index: map.appliedIndex + 1)
        let targets = map.repairs().compactMap { command -> String? in
            if case .assign(let assignment) = command { return assignment.handoverTo }
            return nil
        }
        #expect(targets.count >= 3 && Set(targets).count >= 2, "targets: \(targets)")
    }

    @Test func theLeader_marksAMemberDraining_fromItsReport_andUndoesIt() {
        let now: UInt64 = 100_000
        var observed = MapControllerTests.observations(now: now, reportIndex: 10)
        observed.draining = ["c": true]
        let proposals = MapControllerTests.controller.proposals(map: MapControllerTests.map(), voters: ["a": 1, "b": 1, "c": 1], observed: observed, now: now)
        #expect(proposals.contains(.memberDraining(name: "c", draining: true)), "\(proposals)")
        var draining = MapControllerTests.map()
        draining.members["c"]?.draining = true
        observed.draining = ["c": false]
        let undone = MapControllerTests.controller.proposals(map: draining, voters: ["a": 1, "b": 1, "c": 1], observed: observed, now: now)
        #expect(undone.contains(.memberDraining(name: "c", draining: false)), "\(undone)")
    }
}

/// Rebalancing after a node joins (pure): it ends with its share of primaries within one.
@Suite struct ScaleOutPlacementTests {
    /// Found by the scale-out story: with copies already balanced, the joiner held backups of
    /// no partition of the one member rebalancing looked at (the busiest), so no handover
    /// was possible and no copy was added: it stayed with one primary of sixteen.
    @Test(arguments: [(3, 16), (3, 64), (4, 16), (4, 12), (5, 64)])
    func aJoiningMember_getsItsShareOfPrimaries(_ members: Int, _ partitions: Int) {
        let names = (0..<members).map { "n\($0)" }
        var map = ClusterMapTests.map(members: names, partitions: partitions)
        let joiner = "n\(members)"
        map.members[joiner] = ClusterMap.Member(name: joiner, incarnation: 0, voter: false, state: .down)
        DrainPlacementTests.settle(&map)
        ClusterMapTests.applyAll([.memberIncarnation(name: joiner, incarnation: 77), .memberState(name: joiner, state: .up)], to: &map)
        DrainPlacementTests.settle(&map)
        let share = Double(partitions) / Double(members + 1)
        for name in names + [joiner] {
            let led = map.partitions.filter { $0.primary == name }.count
            #expect(Double(led) >= share - 1 && Double(led) <= share + 1, "\(name) leads \(led) of \(partitions)")
        }
    }
}

extension ScaleOutPlacementTests {
    /// Found by the scale-out story, which stalled with the joiner leading one partition of
    /// sixteen: rebalancing looked only at the single busiest member (a), whose partitions the
    /// joiner (d) held no backup of, while copies were already balanced — so nothing moved,
    /// although b and c, as busy, had partitions d backs up in sync.
    @Test func aJoinerBackingUpOnlyOtherBusyMembersPartitions_stillGetsAPrimary() {
        var map = ClusterMapTests.map(members: ["a", "b", "c", "d"], partitions: 16)
        func place(_ partitions: ClosedRange<Int>, primary: String, backup: String) {
            for partition in partitions {
                map.apply(.assign(PartitionAssignment(partition: partition, epoch: 1, primary: primary, backups: [backup], inSync: [backup])), index: map.appliedIndex + 1)
            }
        }
        place(0...2, primary: "a", backup: "b")
        place(3...4, primary: "a", backup: "c")
        place(5...9, primary: "b", backup: "d")
        place(10...11, primary: "c", backup: "d")
        place(12...14, primary: "c", backup: "a")
        place(15...15, primary: "d", backup: "c")
        #expect(map.repairs().isEmpty)
        let commands = map.rebalance()
        guard case .assign(let started)? = commands.first else {
            Issue.record("rebalancing stalled: \(commands)")
            return
        }
        #expect(started.handoverTo == "d", "\(started)")
    }
}
