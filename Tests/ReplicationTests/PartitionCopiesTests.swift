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
