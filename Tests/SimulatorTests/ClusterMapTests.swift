import ControlPlane
import Testing

@Suite struct ClusterMapTests {
    static func map(members: [String], partitions: Int = 12, backups: Int = 1) -> ClusterMap {
        var map = ClusterMap(voters: members, partitionCount: partitions, backupCount: backups)
        for (index, name) in members.enumerated() {
            map.apply(.memberIncarnation(name: name, incarnation: UInt64(index + 1)), index: map.appliedIndex + 1)
            map.apply(.memberState(name: name, state: .up), index: map.appliedIndex + 1)
        }
        return map
    }

    static func applyAll(_ commands: [ClusterCommand], to map: inout ClusterMap) {
        for command in commands { map.apply(command, index: map.appliedIndex + 1) }
    }

    static func markAllInSync(_ map: inout ClusterMap) {
        for assignment in map.partitions {
            for backup in assignment.backups {
                map.apply(.markInSync(partition: assignment.partition, epoch: assignment.epoch, member: backup), index: map.appliedIndex + 1)
            }
        }
    }

    @Test func initialPlacementIsBalancedWithNoTwoCopiesOnOneNode() {
        var map = Self.map(members: ["a", "b", "c"])
        Self.applyAll(map.repairs(), to: &map)
        var primaries: [String: Int] = [:], copies: [String: Int] = [:]
        for assignment in map.partitions {
            let holders = assignment.holders
            #expect(Set(holders).count == holders.count, "two copies of partition \(assignment.partition) on one node")
            #expect(holders.count == 2)
            primaries[assignment.primary!, default: 0] += 1
            for holder in holders { copies[holder, default: 0] += 1 }
        }
        #expect(primaries.values.max()! - primaries.values.min()! <= 1)
        #expect(copies.values.max()! - copies.values.min()! <= 1)
    }

    @Test func aDownPrimaryIsReplacedByAnInSyncBackupWithANewEpoch() {
        var map = Self.map(members: ["a", "b", "c"])
        Self.applyAll(map.repairs(), to: &map)
        Self.markAllInSync(&map)
        let before = map.partitions
        map.apply(.memberState(name: "a", state: .down), index: map.appliedIndex + 1)
        Self.applyAll(map.repairs(), to: &map)
        for (old, new) in zip(before, map.partitions) {
            #expect(!new.holders.contains("a"))
            if old.primary == "a" {
                #expect(new.primary == old.backups.first)
                #expect(new.epoch == old.epoch + 1)
                #expect(new.backups.count == 1 && !new.inSync.contains(new.backups[0]), "a new backup catches up before it is in sync")
            } else {
                #expect(new.epoch == old.epoch)
            }
        }
    }

    @Test func anOrphanedPartitionWaitsForItsPrimaryOrIsRecreatedEmpty() {
        var map = Self.map(members: ["a", "b", "c"], partitions: 3)
        Self.applyAll(map.repairs(), to: &map)
        // Backups never caught up: the primary's copy is the only complete one.
        let orphan = map.partitions[0].primary!
        map.apply(.memberState(name: orphan, state: .down), index: map.appliedIndex + 1)
        Self.applyAll(map.repairs(), to: &map)
        #expect(map.partitions[0].primary == nil)
        #expect(map.partitions[0].orphanedFrom?.name == orphan)
        // It comes back unchanged (it was unreachable): reinstated, new epoch.
        var returned = map
        returned.apply(.memberState(name: orphan, state: .up), index: returned.appliedIndex + 1)
        Self.applyAll(returned.repairs(), to: &returned)
        #expect(returned.partitions[0].primary == orphan)
        #expect(returned.partitions[0].recreatedEmpty == 0)
        // It comes back restarted: every copy is gone; re-created empty (federation refills it).
        var restarted = map
        restarted.apply(.memberIncarnation(name: orphan, incarnation: 99), index: restarted.appliedIndex + 1)
        restarted.apply(.memberState(name: orphan, state: .up), index: restarted.appliedIndex + 1)
        Self.applyAll(restarted.repairs(), to: &restarted)
        #expect(restarted.partitions[0].primary != nil)
        #expect(restarted.partitions[0].recreatedEmpty == 1)
        #expect(restarted.partitions[0].epoch > map.partitions[0].epoch)
    }

    @Test func aJoiningMemberReceivesCopiesUntilBalanced() {
        var map = Self.map(members: ["a", "b", "c"])
        map.apply(.memberState(name: "c", state: .down), index: map.appliedIndex + 1)
        Self.applyAll(map.repairs(), to: &map)
        Self.markAllInSync(&map)
        map.apply(.memberState(name: "c", state: .up), index: map.appliedIndex + 1)
        for _ in 0..<100 {
            var commands = map.repairs()
            // Every old primary hands off at once (no writes in flight).
            if commands.isEmpty { commands = map.partitions.filter { $0.handoverTo != nil }.map { .assign($0.completingHandover(wholeCopies: $0.inSync, eligible: Set(map.eligibleMembers))) } }
            if commands.isEmpty { commands = map.rebalance() }
            if commands.isEmpty { break }
            Self.applyAll(commands, to: &map)
            Self.markAllInSync(&map)
        }
        var copies: [String: Int] = [:]
        for assignment in map.partitions {
            #expect(Set(assignment.holders).count == assignment.holders.count)
            #expect(assignment.backups.count == 1)
            for holder in assignment.holders { copies[holder, default: 0] += 1 }
        }
        #expect(copies["c", default: 0] >= 7, "c holds \(copies["c", default: 0]) of 24 copies")
    }

}


@Suite struct OrphanedPartitionTests {
    /// A site of three with every copy in sync; then the primary of a partition and its
    /// in-sync backup go down in one decision. Returns the map after the repairs.
    static func primaryAndBackupDownTogether() -> (ClusterMap, PartitionAssignment, String) {
        var map = ClusterMapTests.map(members: ["a", "b", "c"], partitions: 3)
        ClusterMapTests.applyAll(map.repairs(), to: &map)
        ClusterMapTests.markAllInSync(&map)
        let partition = map.partitions.first { $0.primary == "a" }!
        let backup = partition.backups[0]
        ClusterMapTests.applyAll([.memberState(name: "a", state: .down), .memberState(name: backup, state: .down)], to: &map)
        ClusterMapTests.applyAll(map.repairs(), to: &map)
        return (map, partition, backup)
    }

    /// Found by `sessionfed simulate --seed 206 --data-plane --steps 5000`: the primary crashed
    /// while its in-sync backup was cut off from the leader; both went down in one decision.
    /// The backup's copy is complete too: when it returns (the same incarnation) it must be
    /// made primary, not forgotten while the partition is re-created empty.
    @Test func primaryLostWhileInSyncBackupUnreachable_backupReturning_becomesPrimary() {
        var (map, partition, backup) = Self.primaryAndBackupDownTogether()
        let orphaned = map.partitions[partition.partition]
        #expect(orphaned.primary == nil, "no up copy holds every acknowledged write")
        #expect(orphaned.orphanedCopies.map(\.name) == [backup])
        // The primary comes back restarted (its copy is gone); the backup comes back whole.
        ClusterMapTests.applyAll([.memberIncarnation(name: "a", incarnation: 99), .memberState(name: "a", state: .up)], to: &map)
        ClusterMapTests.applyAll(map.repairs(), to: &map)
        #expect(map.partitions[partition.partition].primary == nil, "not re-created empty while a complete copy may return")
        #expect(map.partitions[partition.partition].recreatedEmpty == 0)
        ClusterMapTests.applyAll([.memberState(name: backup, state: .up)], to: &map)
        ClusterMapTests.applyAll(map.repairs(), to: &map)
        let reinstated = map.partitions[partition.partition]
        #expect(reinstated.primary == backup)
        #expect(reinstated.epoch > orphaned.epoch)
        #expect(reinstated.recreatedEmpty == 0)
        #expect(reinstated.orphanedFrom == nil && reinstated.orphanedCopies.isEmpty)
    }

    @Test func everyCompleteCopyRestarted_partitionIsRecreatedEmpty() {
        var (map, partition, backup) = Self.primaryAndBackupDownTogether()
        ClusterMapTests.applyAll(
            [.memberIncarnation(name: "a", incarnation: 99), .memberState(name: "a", state: .up), .memberIncarnation(name: backup, incarnation: 98), .memberState(name: backup, state: .up)],
            to: &map
        )
        ClusterMapTests.applyAll(map.repairs(), to: &map)
        #expect(map.partitions[partition.partition].primary != nil)
        #expect(map.partitions[partition.partition].recreatedEmpty == 1)
    }
}
