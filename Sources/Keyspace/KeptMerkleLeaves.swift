import SessionModel

/// The Merkle leaves of a federated keyspace, kept current as keys change so that an
/// anti-entropy round costs no pass over the keys (a pass over 1,000,000 keys held the event
/// loop for a whole round step). A change only marks its key dirty; dirty keys are folded in
/// by `refreshMerkleLeaves(budget:)` in small slices between client commands, and those of a
/// round's partitions when the round asks for them.
struct KeptMerkleLeaves: Sendable {
    let layout: MerkleLayout
    /// `leaves[partition][leaf]`: the sum of the contributions of the keys not dirty.
    var leaves: [[StateDigest]]
    /// Per partition, the keys whose contribution in `leaves` is stale or missing.
    var dirty: [Set<[UInt8]>]
    var dirtyCount = 0
    /// Where the next budgeted refresh starts (partitions in turn).
    var nextPartition = 0

    init(layout: MerkleLayout) {
        self.layout = layout
        leaves = Array(repeating: Array(repeating: .zero, count: layout.leafCount), count: layout.partitioning.partitionCount)
        dirty = Array(repeating: [], count: layout.partitioning.partitionCount)
    }

    mutating func markDirty(_ key: [UInt8]) {
        if dirty[layout.partitioning.partition(of: key)].insert(key).inserted { dirtyCount += 1 }
    }

    /// Takes a key out of the leaves: it is no longer stored.
    mutating func remove(_ key: [UInt8], contribution: StateDigest?) {
        let (partition, leaf) = layout.location(of: key)
        if dirty[partition].remove(key) != nil { dirtyCount -= 1 }
        if let contribution { leaves[partition][leaf].subtract(contribution) }
    }

    /// Takes at most `limit` keys of `partition` out of the dirty set, for folding.
    mutating func takeDirty(_ partition: Int, limit: Int = .max) -> [[UInt8]] {
        let taken = limit >= dirty[partition].count ? Array(dirty[partition]) : Array(dirty[partition].prefix(limit))
        if taken.count == dirty[partition].count { dirty[partition] = [] } else { for key in taken { dirty[partition].remove(key) } }
        dirtyCount -= taken.count
        return taken
    }

    mutating func clear(partition: Int) {
        dirtyCount -= dirty[partition].count
        dirty[partition] = []
        leaves[partition] = Array(repeating: .zero, count: layout.leafCount)
    }
}

extension Keyspace {
    /// Folds the current contribution of each of `dirtyKeys` (taken out of the dirty set) into
    /// the leaves.
    mutating func fold(_ dirtyKeys: [[UInt8]], partition: Int) {
        guard var kept = merkle else { return }
        merkle = nil  // taken out while it changes, so it is not copied
        defer { merkle = kept }
        for key in dirtyKeys {
            guard let index = keys.index(forKey: key) else { continue }
            let leaf = kept.layout.location(of: key).leaf
            if let old = keys.values[index].contribution { kept.leaves[partition][leaf].subtract(old) }
            let contribution = MerkleLayout.contribution(key: key, digest: digest(at: index))
            kept.leaves[partition][leaf].add(contribution)
            keys.values[index].contribution = contribution
        }
    }

    /// Folds in at most `budget` dirty keys; returns how many remain dirty. The runtime calls it
    /// in short slices so that digests are current when a round asks for them.
    @discardableResult
    public mutating func refreshMerkleLeaves(budget: Int) -> Int {
        guard let kept = merkle, kept.dirtyCount > 0 else { return 0 }
        var remaining = budget
        var partition = kept.nextPartition
        for _ in 0..<kept.dirty.count where remaining > 0 {
            let taken = merkle!.takeDirty(partition, limit: remaining)
            fold(taken, partition: partition)
            remaining -= taken.count
            if remaining > 0 { partition = (partition + 1) % kept.dirty.count }
        }
        merkle!.nextPartition = partition
        return merkle!.dirtyCount
    }

    /// The leaves of `partitions`, current: what `MerkleForest` would compute from every key.
    public mutating func merkleLeaves(ofPartitions partitions: Set<Int>, layout: MerkleLayout) -> [Int: [StateDigest]]? {
        guard let kept = merkle, kept.layout == layout else { return nil }
        var result: [Int: [StateDigest]] = [:]
        for partition in partitions where partition < kept.dirty.count {
            fold(merkle!.takeDirty(partition), partition: partition)
            result[partition] = merkle!.leaves[partition]
        }
        return result
    }

    /// Keys waiting to be folded into the kept Merkle leaves (0 when none are kept).
    public var dirtyDigestCount: Int { merkle?.dirtyCount ?? 0 }
}
