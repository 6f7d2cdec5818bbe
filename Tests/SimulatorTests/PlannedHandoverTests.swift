import Testing
@testable import ControlPlane

/// A planned handover of a partition's primary (pure): the map names the target first, at
/// the same epoch; the next epoch starts only once the old primary reported its copy handed
/// off, and every in-sync copy — the old primary's included — carries on.
@Suite struct PlannedHandoverTests {
    /// a leads partition 0 at epoch 4, b and c are in-sync backups, a hands over to b.
    static func handingOver() -> ClusterMap {
        var map = MapControllerTests.map()
        map.backupCount = 2
        map.partitions[0] = PartitionAssignment(partition: 0, epoch: 4, primary: "a", backups: ["b", "c"], inSync: ["b", "c"])
        map.partitions[0].handoverTo = "b"
        map.partitions[0].changedAt = 10
        return map
    }

    static func observations(now: UInt64, handedOff: [String: Set<PartitionEpoch>] = [:]) -> MapController.Observations {
        var observed = MapControllerTests.observations(now: now, reportIndex: 10)
        observed.inSync = [
            "b": ([PartitionEpoch(partition: 0, epoch: 4)], 10), "c": ([PartitionEpoch(partition: 0, epoch: 4)], 10),
        ]
        observed.handedOff = handedOff
        return observed
    }

    static let voters: [String: UInt64] = ["a": 1, "b": 1, "c": 1]

    @Test func rebalancing_namesTheTarget_atTheSameEpoch() {
        var map = ClusterMapTests.map(members: ["a", "b", "c"], partitions: 6)
        ClusterMapTests.applyAll(map.repairs(), to: &map)
        ClusterMapTests.markAllInSync(&map)
        // Every primary on a: a must give some away.
        for assignment in map.partitions where assignment.primary != "a" {
            var moved = assignment
            moved.backups = moved.backups.map { $0 == "a" ? assignment.primary! : $0 }
            moved.primary = "a"
            moved.inSync = Set(moved.backups)
            ClusterMapTests.applyAll([.assign(moved)], to: &map)
        }
        let before = map
        let commands = map.rebalance()
        guard case .assign(let started)? = commands.first else {
            Issue.record("no handover started: \(commands)")
            return
        }
        let old = before.partitions[started.partition]
        #expect(started.epoch == old.epoch && started.primary == "a", "the epoch and primary wait for the hand-off")
        #expect(started.handoverTo != nil && old.inSync.contains(started.handoverTo!))
        ClusterMapTests.applyAll(commands, to: &map)
        #expect(map.rebalance().isEmpty, "one handover at a time")
    }

    @Test func theNextEpoch_waitsForTheOldPrimarysHandOff() {
        let now: UInt64 = 100_000
        let waiting = MapControllerTests.controller.proposals(map: Self.handingOver(), voters: Self.voters, observed: Self.observations(now: now), now: now)
        #expect(waiting.isEmpty, "\(waiting)")
        let handedOff = Self.observations(now: now, handedOff: ["a": [PartitionEpoch(partition: 0, epoch: 4)]])
        let proposals = MapControllerTests.controller.proposals(map: Self.handingOver(), voters: Self.voters, observed: handedOff, now: now)
        guard case .assign(let next)? = proposals.first, proposals.count == 1 else {
            Issue.record("expected one assignment: \(proposals)")
            return
        }
        #expect(next.epoch == 5 && next.primary == "b" && next.continuing && next.handoverTo == nil)
        #expect(next.backups.sorted() == ["a", "c"] && next.inSync == ["a", "c"], "the old primary stays a complete copy: \(next)")
    }

    /// A drain keeps placement busy (copies added, caught up, dropped): the handed-off
    /// partition, whose commands wait, does not wait for that work.
    @Test func aHandOff_isCompletedBeforePlacementWork() {
        let now: UInt64 = 100_000
        var map = Self.handingOver()
        map.partitions.append(PartitionAssignment(partition: 1, epoch: 1, primary: "b", backups: [], inSync: []))
        #expect(!map.repairs().isEmpty, "placement has work: partition 1 lacks backups")
        let handedOff = Self.observations(now: now, handedOff: ["a": [PartitionEpoch(partition: 0, epoch: 4)]])
        let proposals = MapControllerTests.controller.proposals(map: map, voters: Self.voters, observed: handedOff, now: now)
        #expect(proposals == [.assign(map.partitions[0].completingHandover(wholeCopies: ["b", "c"], eligible: ["a", "b", "c"]))], "\(proposals)")
    }

    /// A hand-off reported for an earlier epoch says nothing about this one.
    @Test func aHandOffOfAnotherEpoch_isNotTakenForThisOne() {
        let now: UInt64 = 100_000
        let stale = Self.observations(now: now, handedOff: ["a": [PartitionEpoch(partition: 0, epoch: 3)]])
        #expect(MapControllerTests.controller.proposals(map: Self.handingOver(), voters: Self.voters, observed: stale, now: now).isEmpty)
    }

    @Test func aTargetThatLeftTheInSyncSet_leavesThePrimaryWhereItWas_atANewEpoch() {
        var assignment = Self.handingOver().partitions[0]
        assignment.inSync = ["c"]
        let next = assignment.completingHandover(wholeCopies: ["b", "c"], eligible: ["a", "b", "c"])
        #expect(next.primary == "a" && next.epoch == 5 && next.continuing && next.inSync == ["c"])
    }

    /// Found in review: a member the map counts in sync may have followed an older epoch only
    /// (its map lagged, or a snapshot jumped past this one). Carried on, it would re-copy while
    /// counted in sync, and could be promoted with part of the partition. Only members that
    /// reported this epoch caught up carry on.
    @Test func aCopyNotReportedCaughtUpAtTheEndingEpoch_isNotCarriedOn() {
        let now: UInt64 = 100_000
        var observed = Self.observations(now: now, handedOff: ["a": [PartitionEpoch(partition: 0, epoch: 4)]])
        observed.inSync["c"] = ([PartitionEpoch(partition: 0, epoch: 3)], 10)
        let proposals = MapControllerTests.controller.proposals(map: Self.handingOver(), voters: Self.voters, observed: observed, now: now)
        guard case .assign(let next)? = proposals.first else {
            Issue.record("no assignment: \(proposals)")
            return
        }
        #expect(next.primary == "b" && next.inSync == ["a"], "c did not report epoch 4: \(next)")
    }

    /// A target that went down or started leaving since it was chosen does not take over.
    @Test func aTargetNoLongerEligible_leavesThePrimaryWhereItWas() {
        let next = Self.handingOver().partitions[0].completingHandover(wholeCopies: ["b", "c"], eligible: ["a", "c"])
        #expect(next.primary == "a" && next.inSync == ["b", "c"])
    }

    @Test func theOldPrimaryGoingDown_endsTheHandover_withAnOrdinaryFailover() {
        var map = Self.handingOver()
        map.apply(.memberState(name: "a", state: .down), index: map.appliedIndex + 1)
        guard case .assign(let next)? = map.repairs().first else {
            Issue.record("no failover")
            return
        }
        #expect(next.primary == "b" && next.epoch == 5 && next.handoverTo == nil && !next.continuing && next.inSync.isEmpty)
    }
}
