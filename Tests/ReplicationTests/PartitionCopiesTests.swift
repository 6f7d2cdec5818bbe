import ControlPlane
import Replication
import Testing

@Suite struct PartitionCopiesTests {
    static func assignment(_ partition: Int, epoch: UInt64, primary: String?, backups: [String] = [], inSync: Set<String> = [], orphanedFrom: MemberID? = nil) -> PartitionAssignment {
        PartitionAssignment(partition: partition, epoch: epoch, primary: primary, backups: backups, inSync: inSync, orphanedFrom: orphanedFrom)
    }

    @Test func promotedCaughtUpBackup_keepsItsKeys() {
        var copies = PartitionCopies(node: "node-2")
        _ = copies.follow([Self.assignment(0, epoch: 1, primary: "node-1", backups: ["node-2"])], now: 0)
        _ = copies.receiveChunk(from: "node-1", partition: 0, epoch: 1, attempt: 1, chunk: 0, baseSequence: 0, keys: [], last: false, now: 0)
        _ = copies.receiveChunk(from: "node-1", partition: 0, epoch: 1, attempt: 1, chunk: 1, baseSequence: 0, keys: [], last: true, now: 0)
        let actions = copies.follow([Self.assignment(0, epoch: 2, primary: "node-2")], now: 0)
        #expect(!actions.contains(.discard(partition: 0)))
        #expect(actions.contains(.becamePrimary(partition: 0, epoch: 2)))
    }

    @Test func backupThatNeverCaughtUp_startsEmptyWhenMadePrimary() {
        var copies = PartitionCopies(node: "node-2")
        _ = copies.follow([Self.assignment(0, epoch: 1, primary: "node-1", backups: ["node-2"])], now: 0)
        let actions = copies.follow([Self.assignment(0, epoch: 2, primary: "node-2")], now: 0)
        #expect(actions.contains(.discard(partition: 0)))
    }

    /// Found by `sessionfed simulate --seed 3 --data-plane --steps 5000`: a primary cut off
    /// long enough to be replaced while no backup was in sync leaves the partition orphaned
    /// from it; its copy is the only complete one and is kept, and when it comes back (the
    /// same incarnation) and is reinstated at a new epoch, it must still have those keys.
    @Test func orphanedPrimaryReinstated_keepsTheOnlyCompleteCopy() {
        var copies = PartitionCopies(node: "node-3")
        _ = copies.follow([Self.assignment(1, epoch: 2, primary: "node-3", backups: ["node-2"])], now: 0)
        let orphaned = copies.follow([Self.assignment(1, epoch: 2, primary: nil, backups: ["node-2"], orphanedFrom: MemberID(name: "node-3", incarnation: 7))], now: 0)
        #expect(orphaned == [.stoppedPrimary(partition: 1)], "the copy is kept while the partition waits for it")
        let reinstated = copies.follow([Self.assignment(1, epoch: 3, primary: "node-3", backups: ["node-2"])], now: 0)
        #expect(!reinstated.contains(.discard(partition: 1)), "the only complete copy must not be discarded")
        #expect(reinstated.contains(.becamePrimary(partition: 1, epoch: 3)))
    }

    @Test func copyGivenAway_isDiscarded() {
        var copies = PartitionCopies(node: "node-3")
        _ = copies.follow([Self.assignment(1, epoch: 2, primary: "node-3")], now: 0)
        let actions = copies.follow([Self.assignment(1, epoch: 3, primary: "node-1", backups: ["node-2"])], now: 0)
        #expect(actions == [.stoppedPrimary(partition: 1), .discard(partition: 1)])
    }
}

/// The copies' side of a planned handover: the old primary seals, reports once everything
/// it numbered is committed, and at the next epoch every whole copy carries on.
@Suite struct PlannedHandoverCopiesTests {
    static func assignment(epoch: UInt64, primary: String, backups: [String], inSync: Set<String>, handoverTo: String? = nil, continuing: Bool = false) -> PartitionAssignment {
        var assignment = PartitionAssignment(partition: 0, epoch: epoch, primary: primary, backups: backups, inSync: inSync)
        assignment.handoverTo = handoverTo
        assignment.continuing = continuing
        return assignment
    }

    static let write = ReplicatedWrite(expiredKeys: [Array("k".utf8)])

    @Test func theOldPrimary_seals_reportsOnlyOnceItsWritesCommitted_andCarriesOnAsABackup() {
        var copies = PartitionCopies(node: "a")
        _ = copies.follow([Self.assignment(epoch: 4, primary: "a", backups: ["b"], inSync: ["b"])], now: 0)
        let (sequence, _) = copies.submit(Self.write, partition: 0, now: 0)
        _ = copies.follow([Self.assignment(epoch: 4, primary: "a", backups: ["b"], inSync: ["b"], handoverTo: "b")], now: 1)
        #expect(copies.primaries[0]?.sealed == true)
        #expect(copies.handedOffCopies.isEmpty, "a write is still in flight")
        let committed = copies.receive(.acknowledge(sequence: sequence), from: "b", partition: 0, epoch: 4, keys: { [] }, now: 2)
        #expect(committed.contains(.primary(partition: 0, epoch: 4, .commit(upTo: sequence))))
        #expect(copies.handedOffCopies == [PartitionEpoch(partition: 0, epoch: 4)])
        let next = copies.follow([Self.assignment(epoch: 5, primary: "b", backups: ["a"], inSync: ["a"], continuing: true)], now: 3)
        #expect(next == [.stoppedPrimary(partition: 0)], "no discard, no transfer: \(next)")
        #expect(copies.backups[0]?.isCaughtUp == true)
        // The new primary's first write applies at once.
        let applied = copies.receiveWrites(from: "b", partition: 0, epoch: 5, firstSequence: 1, writes: [Self.write], now: 4)
        #expect(applied.contains(.backup(partition: 0, epoch: 5, primary: "b", .apply(Self.write))))
    }

    @Test func theTarget_becomesPrimary_withItsCopy_andCountsTheCarriedOnBackupsAtOnce() {
        var copies = PartitionCopies(node: "b")
        _ = copies.follow([Self.assignment(epoch: 4, primary: "a", backups: ["b"], inSync: [])], now: 0)
        _ = copies.receiveChunk(from: "a", partition: 0, epoch: 4, attempt: 1, chunk: 0, baseSequence: 0, keys: [], last: true, now: 0)
        let next = copies.follow([Self.assignment(epoch: 5, primary: "b", backups: ["a"], inSync: ["a"], continuing: true)], now: 1)
        #expect(!next.contains(.discard(partition: 0)) && next.contains(.becamePrimary(partition: 0, epoch: 5)))
        let (sequence, sent) = copies.submit(Self.write, partition: 0, now: 2)
        #expect(sent == [.primary(partition: 0, epoch: 5, .replicate(to: "a", firstSequence: sequence, writes: [Self.write]))], "waits for a: \(sent)")
    }

    /// A copy that was still being transferred at the end of the epoch holds less than the
    /// old primary did: it starts over, whatever the map says.
    @Test func aCopyStillTransferring_startsOver() {
        var copies = PartitionCopies(node: "c")
        _ = copies.follow([Self.assignment(epoch: 4, primary: "a", backups: ["c"], inSync: [])], now: 0)
        let next = copies.follow([Self.assignment(epoch: 5, primary: "b", backups: ["a", "c"], inSync: ["a"], continuing: true)], now: 1)
        #expect(next.contains(.backup(partition: 0, epoch: 5, primary: "b", .discardPartition)))
    }

    @Test func aHandoverDroppedWithinTheEpoch_unseals() {
        var copies = PartitionCopies(node: "a")
        _ = copies.follow([Self.assignment(epoch: 4, primary: "a", backups: ["b"], inSync: ["b"], handoverTo: "b")], now: 0)
        #expect(copies.primaries[0]?.sealed == true)
        _ = copies.follow([Self.assignment(epoch: 4, primary: "a", backups: ["b"], inSync: ["b"])], now: 1)
        #expect(copies.primaries[0]?.sealed == false)
    }
}
