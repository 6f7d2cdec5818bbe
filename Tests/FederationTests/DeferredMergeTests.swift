import Federation
import Keyspace
import SessionModel
import Testing

/// A site of several nodes merges remote batches at its partitions' primaries
/// (`mergesAtPrimaries`): the core hands each batch out and acknowledges it only once it
/// and every earlier batch of its stream merged, so a sender never drops a delta that the
/// site does not hold.
@Suite struct DeferredMergeTests {
    static let node = "site1-1"

    /// The receiving core (tokyo, of a site with several nodes) after seoul's node dialed in,
    /// and seoul's deltas for three keys of one partition.
    func setUp() -> (receiver: FederationHarness.Node, deltas: [Delta], partition: UInt32) {
        let harness = FederationHarness(sites: [1, 2])
        var receiver = harness.nodes[tokyo]!
        receiver.core.mergesAtPrimaries = true
        _ = receiver.core.inboundAccepted(harness.nodes[seoul]!.core.hello(to: tokyo))
        var writer = harness.nodes[seoul]!.keyspace
        let deltas = ["a", "b", "c"].flatMap { name in
            writer.execute([Array("SET".utf8), Array("{s}\(name)".utf8), Array("v".utf8)], now: harness.now)!.deltas
        }
        return (receiver, deltas, UInt32(harness.nodes[seoul]!.core.settings.partitioning.partition(of: Array("{s}a".utf8))))
    }

    func batch(_ deltas: ArraySlice<Delta>, first: UInt64, partition: UInt32) -> FederationMessage {
        .deltaBatch(DeltaBatch(originSite: seoul, senderSite: seoul, partition: partition, firstSequence: first, deltas: Array(deltas)))
    }

    static func merges(_ actions: [FederationAction]) -> [RemoteBatch] {
        actions.compactMap { if case .merge(let batch) = $0 { return batch } else { return nil } }
    }

    static func acknowledged(_ actions: [FederationAction]) -> [UInt64] {
        actions.compactMap { if case .send(_, .deltaBatchAck(let ack)) = $0 { return ack.sequence } else { return nil } }
    }

    @Test func batches_areAcknowledgedInOrder_onlyOnceMerged() throws {
        var (receiver, deltas, partition) = setUp()
        let connection = FederationConnection.inbound(seoul, node: Self.node)
        let first = receiver.core.receive(batch(deltas[0..<2], first: 1, partition: partition), on: connection, store: &receiver.keyspace, now: 1)
        let second = receiver.core.receive(batch(deltas[2...], first: 3, partition: partition), on: connection, store: &receiver.keyspace, now: 1)
        let handedOut = Self.merges(first) + Self.merges(second)
        #expect(handedOut.map(\.last) == [2, 3])
        #expect(Self.acknowledged(first + second).isEmpty, "nothing is acknowledged before it merged")
        // Nothing was merged into the store of the node the link reached.
        #expect(receiver.keyspace.state(of: Array("{s}a".utf8)) == nil)
        // A repeat of a batch still merging is neither merged again nor acknowledged.
        let repeated = receiver.core.receive(batch(deltas[0..<2], first: 1, partition: partition), on: connection, store: &receiver.keyspace, now: 1)
        #expect(Self.merges(repeated).isEmpty && Self.acknowledged(repeated).isEmpty)
        // The later batch merging first waits for the earlier one; then both are acknowledged.
        #expect(Self.acknowledged(receiver.core.remoteBatchMerged(handedOut[1], now: 2)).isEmpty)
        #expect(Self.acknowledged(receiver.core.remoteBatchMerged(handedOut[0], now: 2)) == [3])
        // Merged and acknowledged: a repeat is acknowledged at once and not merged again.
        let late = receiver.core.receive(batch(deltas[2...], first: 3, partition: partition), on: connection, store: &receiver.keyspace, now: 3)
        #expect(Self.merges(late).isEmpty && Self.acknowledged(late) == [3])
    }

    @Test func aFailedMerge_closesTheLink_andTheResentBatchIsHandedOutAgain() throws {
        var (receiver, deltas, partition) = setUp()
        let connection = FederationConnection.inbound(seoul, node: Self.node)
        let handedOut = Self.merges(receiver.core.receive(batch(deltas[...], first: 1, partition: partition), on: connection, store: &receiver.keyspace, now: 1))
        #expect(handedOut.count == 1)
        let failed = receiver.core.remoteBatchFailed(handedOut[0], reason: "no primary")
        #expect(failed.contains { if case .close(connection, _) = $0 { return true } else { return false } })
        #expect(Self.acknowledged(failed).isEmpty)
        // The sender reconnects and sends what it has not seen acknowledged: merged again.
        let again = receiver.core.receive(batch(deltas[...], first: 1, partition: partition), on: connection, store: &receiver.keyspace, now: 2)
        #expect(Self.merges(again).map(\.last) == [3])
        // A report for the abandoned hand-out changes nothing; the new one acknowledges.
        #expect(Self.acknowledged(receiver.core.remoteBatchMerged(Self.merges(again)[0], now: 3)) == [3])
    }

    @Test func batchesOfEachSendingNode_areTrackedApart() throws {
        var (receiver, deltas, partition) = setUp()
        // Another node of seoul took the partition over and numbers its own stream from 1.
        var hello = FederationHarness(sites: [1, 2]).nodes[seoul]!.core.hello(to: tokyo)
        hello.nodeName = "site1-2"
        hello.incarnation = 99
        _ = receiver.core.inboundAccepted(hello)
        let one = FederationConnection.inbound(seoul, node: Self.node)
        let two = FederationConnection.inbound(seoul, node: "site1-2")
        let fromOne = Self.merges(receiver.core.receive(batch(deltas[0..<2], first: 1, partition: partition), on: one, store: &receiver.keyspace, now: 1))
        let fromTwo = Self.merges(receiver.core.receive(batch(deltas[2...], first: 1, partition: partition), on: two, store: &receiver.keyspace, now: 1))
        #expect(fromOne.count == 1 && fromTwo.count == 1, "sequence 1 from the second node is not a repeat of the first node's")
        let acknowledged = receiver.core.remoteBatchMerged(fromTwo[0], now: 2)
        #expect(acknowledged.contains { if case .send(two, .deltaBatchAck(let ack)) = $0 { return ack.sequence == 1 } else { return false } })
    }
}
