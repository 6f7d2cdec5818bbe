import Logging
import NIOCore
import Replication
import Wire

/// Writes for a backup, held until the end of the event loop's current turn so that the
/// writes of every command the turn ran leave as one frame per partition.
///
/// Why: a primary replicated each write in a frame of its own, and the backup acknowledged
/// each frame: two frames encoded, decoded and handled per write, most of a replicated
/// site's CPU. Writes of one partition are numbered consecutively, so those a turn produces
/// join one `PartitionWrites` frame, and the backup answers it with one acknowledgement.
/// Holding them to the end of the turn delays nothing: the connection is flushed only then.
struct HeldWrites {
    var partition: UInt32
    var epoch: UInt64
    var firstSequence: UInt64
    var writes: [ReplicatedWrite]

    /// A turn holds at most this many writes of a partition before sending them (a frame
    /// stays far below the frame limit, and a backup's acknowledgement comes sooner).
    static let maximumWrites = 256

    /// Whether `batch` continues these writes (same partition and epoch, next sequence).
    func isContinued(by batch: PartitionWrites) -> Bool {
        batch.partition == partition && batch.epoch == epoch && batch.firstSequence == firstSequence + UInt64(writes.count)
    }

    var frame: Frame {
        .partitionWrites(PartitionWrites(partition: partition, epoch: epoch, firstSequence: firstSequence, writes: writes))
    }
}

extension PeerTransport {
    /// Holds `batch` for `node` until the turn ends (joined with the writes of its partition
    /// held already); false when the connection to `node` is not up.
    func hold(_ batch: PartitionWrites, for node: String) -> Bool {
        guard let link = links[node], link.phase == .connected, link.channel != nil else { return false }
        var held = heldWrites[node, default: []]
        if let index = held.firstIndex(where: { $0.partition == batch.partition }) {
            if held[index].isContinued(by: batch) && held[index].writes.count + batch.writes.count <= HeldWrites.maximumWrites {
                held[index].writes += batch.writes
                heldWrites[node] = held
                return true
            }
            // A resend or a new epoch: what is held goes first, in order.
            heldWrites[node] = held
            releaseHeldWrites(to: node)
            held = []
        }
        held.append(HeldWrites(partition: batch.partition, epoch: batch.epoch, firstSequence: batch.firstSequence, writes: batch.writes))
        heldWrites[node] = held
        scheduleFlush(of: node)
        return true
    }

    /// Writes the held writes for `node` to its connection (not flushed); dropped when the
    /// connection went down meanwhile, as frames written to it would have been.
    func releaseHeldWrites(to node: String) {
        guard let held = heldWrites.removeValue(forKey: node), let link = links[node], link.phase == .connected, let channel = link.channel else { return }
        for batch in held { writeSplitting(batch, on: channel, to: node) }
    }

    /// One frame for the batch, or halves of it while it exceeds the frame limit.
    private func writeSplitting(_ batch: HeldWrites, on channel: Channel, to node: String) {
        if let written = writeIfFits(batch.frame, on: channel) {
            counters.bytesSent += UInt64(written)
            links[node]?.framesSent += 1
            return
        }
        guard batch.writes.count > 1 else {
            logger.error(
                "a write over the frame limit cannot reach a backup",
                metadata: ["partition.id": "\(batch.partition)", "peer": "\(node)", "sequence": "\(batch.firstSequence)"]
            )
            return
        }
        let half = batch.writes.count / 2
        var first = batch
        first.writes = Array(batch.writes[..<half])
        var second = batch
        second.firstSequence += UInt64(half)
        second.writes = Array(batch.writes[half...])
        writeSplitting(first, on: channel, to: node)
        writeSplitting(second, on: channel, to: node)
    }
}
