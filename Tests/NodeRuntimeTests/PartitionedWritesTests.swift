import Replication
import SessionModel
import Testing
@testable import NodeRuntime

/// A command's writes split by partition: in partition order, each delta and released key
/// under its key's partition, and one partition's deltas kept as the command's own array.
@Suite struct PartitionedWritesTests {
    let partitioning = Partitioning(partitionCount: 16)

    func delta(_ key: String, counter: UInt64) -> Delta {
        Delta(
            key: Array(key.utf8), dot: Dot(site: SiteID(1), counter: counter), timestamp: HLCTimestamp(physicalMilliseconds: 1, logical: 0),
            context: CausalContext(), deletes: VersionVector(), operations: [.setString([1])]
        )
    }

    @Test func deltasAndReleasedKeys_byPartition_inOrder() {
        let deltas = (1...40).map { delta("key:\($0)", counter: UInt64($0)) }
        let expired = (1...10).map { Array("gone:\($0)".utf8) }
        let writes = PartitionedWrites(deltas, expired: expired, partitioning: partitioning)
        #expect(writes.partitions == writes.partitions.sorted() && Set(writes.partitions).count == writes.partitions.count)
        var expected: [Int: ReplicatedWrite] = [:]
        for delta in deltas { expected[partitioning.partition(of: delta.key), default: ReplicatedWrite()].deltas.append(delta) }
        for key in expired { expected[partitioning.partition(of: key), default: ReplicatedWrite()].expiredKeys.append(key) }
        #expect(writes.partitions == expected.keys.sorted())
        for partition in 0..<16 { #expect(writes[partition] == expected[partition]) }
        // Deltas alone, over several partitions: each under its own.
        let spread = PartitionedWrites(deltas, partitioning: partitioning)
        #expect(spread.partitions.count > 1)
        #expect(spread.partitions == expected.filter { !$0.value.deltas.isEmpty }.keys.sorted())
        for partition in 0..<16 { #expect((spread[partition]?.deltas ?? []) == (expected[partition]?.deltas ?? [])) }
        #expect(spread.entries.allSatisfy { $0.write.expiredKeys.isEmpty })
    }

    @Test func oneKeysWrite_keepsTheCommandsArray() {
        let deltas = [delta("session:1", counter: 1), delta("session:1", counter: 2)]
        let writes = PartitionedWrites(deltas, partitioning: partitioning)
        #expect(writes.entries.count == 1 && writes.entries[0].partition == partitioning.partition(of: deltas[0].key))
        let shared = writes.entries[0].write.deltas.withUnsafeBufferPointer { $0.baseAddress } == deltas.withUnsafeBufferPointer { $0.baseAddress }
        #expect(shared, "the deltas are not copied")
        #expect(PartitionedWrites([], partitioning: partitioning).isEmpty)
    }

    @Test func modify_addsInPlaceAndKeepsOrder() {
        var writes = PartitionedWrites()
        for partition in [7, 2, 9, 2, 0] {
            writes.modify(partition) { $0.expiredKeys.append([UInt8(partition)]) }
        }
        #expect(writes.partitions == [0, 2, 7, 9])
        #expect(writes[2]?.expiredKeys == [[2], [2]])
        #expect(PartitionedWrites(partition: 5, ReplicatedWrite()).partitions == [5])
    }
}
