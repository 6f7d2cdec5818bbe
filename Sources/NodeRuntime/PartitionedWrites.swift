import Replication
import SessionModel

/// A command's writes, one per partition, in partition order (the order they are numbered
/// and sent in). Most commands write one key: that write is one entry whose deltas are the
/// command's own array, where a dictionary, a sorted copy of its keys and a new array of
/// deltas were three allocations of every replicated write.
struct PartitionedWrites {
    /// Sorted by partition, each partition once.
    private(set) var entries: [(partition: Int, write: ReplicatedWrite)] = []

    init() {}

    /// One partition's write.
    init(partition: Int, _ write: ReplicatedWrite) {
        entries = [(partition, write)]
    }

    /// `deltas` and the keys an expiry released, each under its key's partition.
    init(_ deltas: [Delta], expired: [[UInt8]] = [], partitioning: Partitioning) {
        if expired.isEmpty, let first = deltas.first {
            let partition = partitioning.partition(of: first.key)
            if deltas.allSatisfy({ partitioning.partition(of: $0.key) == partition }) {
                entries = [(partition, ReplicatedWrite(deltas: deltas))]
                return
            }
        }
        for delta in deltas { modify(partitioning.partition(of: delta.key)) { $0.deltas.append(delta) } }
        for key in expired { modify(partitioning.partition(of: key)) { $0.expiredKeys.append(key) } }
    }

    var isEmpty: Bool { entries.isEmpty }

    var partitions: [Int] { entries.map(\.partition) }

    /// The write to `partition`, nil when there is none.
    subscript(_ partition: Int) -> ReplicatedWrite? {
        let index = position(of: partition)
        return index < entries.count && entries[index].partition == partition ? entries[index].write : nil
    }

    /// Changes the write to `partition` where it lies (an empty one added in its place when
    /// there is none): appending a command's many deltas copies nothing.
    mutating func modify(_ partition: Int, _ body: (inout ReplicatedWrite) -> Void) {
        let index = position(of: partition)
        if index == entries.count || entries[index].partition != partition {
            entries.insert((partition, ReplicatedWrite()), at: index)
        }
        body(&entries[index].write)
    }

    /// The first index whose partition is not below `partition`.
    private func position(of partition: Int) -> Int {
        var low = 0, high = entries.count
        while low < high {
            let middle = (low + high) / 2
            if entries[middle].partition < partition { low = middle + 1 } else { high = middle }
        }
        return low
    }
}
