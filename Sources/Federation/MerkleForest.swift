import SessionModel

/// Merkle trees over (key, state digest) pairs, one per partition (DESIGN.md §4). A leaf covers a
/// contiguous range of the partition's slots and holds the wrapping sum of its keys'
/// contributions, so it does not depend on the order keys are visited; a root is the digest of
/// its leaves. Two sites with equal roots hold equal states for every key of the partition
/// (up to hash collisions).
public struct MerkleForest: Hashable, Sendable {
    public let layout: MerkleLayout
    public var partitioning: Partitioning { layout.partitioning }
    public var leafCount: Int { layout.leafCount }
    /// `leaves[partition][leaf]`.
    public private(set) var leaves: [[StateDigest]]

    public init(partitioning: Partitioning, leafCount: Int) {
        layout = MerkleLayout(partitioning: partitioning, leafCount: leafCount)
        leaves = Array(repeating: Array(repeating: .zero, count: leafCount), count: partitioning.partitionCount)
    }

    /// Builds the forest from every stored key of `store`.
    public init(of store: inout some AntiEntropyStore, partitioning: Partitioning, leafCount: Int) {
        self.init(of: &store, partitions: Set(0..<partitioning.partitionCount), partitioning: partitioning, leafCount: leafCount)
    }

    /// Builds the leaves of `partitions` alone (the others stay empty): from the leaves the
    /// store keeps current when it keeps them for this layout, else from every key's digest.
    public init(of store: inout some AntiEntropyStore, partitions: Set<Int>, partitioning: Partitioning, leafCount: Int) {
        self.init(partitioning: partitioning, leafCount: leafCount)
        guard !partitions.isEmpty else { return }
        if let kept = store.merkleLeaves(ofPartitions: partitions, layout: layout) {
            for (partition, partitionLeaves) in kept { leaves[partition] = partitionLeaves }
            return
        }
        store.forEachDigest(inPartitions: partitions, of: partitioning) { key, digest in add(key: key, digest: digest) }
    }

    public mutating func add(key: [UInt8], digest: StateDigest) {
        let (partition, leaf) = location(of: key)
        leaves[partition][leaf].add(MerkleLayout.contribution(key: key, digest: digest))
    }

    /// The partition and leaf a key belongs to.
    public func location(of key: [UInt8]) -> (partition: Int, leaf: Int) {
        layout.location(of: key)
    }

    public func root(of partition: Int) -> StateDigest {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(leafCount * 16)
        for leaf in leaves[partition] {
            MerkleLayout.append(leaf.high, to: &bytes)
            MerkleLayout.append(leaf.low, to: &bytes)
        }
        return StateDigest(of: bytes)
    }

    public var roots: [StateDigest] {
        (0..<partitioning.partitionCount).map(root(of:))
    }

    /// One digest for the whole keyspace (shown in /status: equal at two sites when their data
    /// are equal).
    public var combinedRoot: StateDigest {
        var bytes: [UInt8] = []
        for root in roots {
            MerkleLayout.append(root.high, to: &bytes)
            MerkleLayout.append(root.low, to: &bytes)
        }
        return StateDigest(of: bytes)
    }
}

/// What anti-entropy needs from a node's data (the keyspace conforms; the simulator may bring
/// its own).
public protocol AntiEntropyStore {
    /// Every stored key (tombstones included) with the digest of its state.
    mutating func forEachDigest(_ body: ([UInt8], StateDigest) -> Void)
    /// The stored keys of `partitions` (by `partitioning`) with their digests.
    mutating func forEachDigest(inPartitions partitions: Set<Int>, of partitioning: Partitioning, _ body: ([UInt8], StateDigest) -> Void)
    func state(of key: [UInt8]) -> KeyState?
    mutating func merge(state: KeyState, key: [UInt8], now: UInt64) -> MergeOutcome
    mutating func merge(_ delta: Delta, now: UInt64) -> MergeOutcome
    /// The leaves of `partitions` under `layout`, when the store keeps them current as keys
    /// change (so a round costs no pass over the keys); nil otherwise.
    mutating func merkleLeaves(ofPartitions partitions: Set<Int>, layout: MerkleLayout) -> [Int: [StateDigest]]?
    /// Tombstones and long-expired keys with their digests, at most `limit` found among about
    /// `scanBudget` keys (collection).
    mutating func collectionCandidates(now: UInt64, limit: Int, scanBudget: Int, partitions: Set<UInt32>?) -> [([UInt8], StateDigest)]
    /// Drops `key` if its state still has `digest`; true when dropped.
    mutating func collect(_ key: [UInt8], digest: StateDigest, now: UInt64) -> Bool
    /// Forgets the tombstones of keys collected before `horizon`.
    mutating func forgetCollected(before horizon: UInt64)
    /// Whether `key` is not stored because collection dropped it (and is still remembered).
    func wasCollected(_ key: [UInt8]) -> Bool
}

extension AntiEntropyStore {
    public mutating func merkleLeaves(ofPartitions partitions: Set<Int>, layout: MerkleLayout) -> [Int: [StateDigest]]? { nil }
    public mutating func collectionCandidates(now: UInt64, limit: Int, scanBudget: Int, partitions: Set<UInt32>?) -> [([UInt8], StateDigest)] { [] }
    public mutating func collect(_ key: [UInt8], digest: StateDigest, now: UInt64) -> Bool { false }
    public mutating func forgetCollected(before horizon: UInt64) {}
    public func wasCollected(_ key: [UInt8]) -> Bool { false }

    /// Visits every key and keeps those of `partitions`: for stores without an index by
    /// partition.
    public mutating func forEachDigest(inPartitions partitions: Set<Int>, of partitioning: Partitioning, _ body: ([UInt8], StateDigest) -> Void) {
        forEachDigest { key, digest in
            if partitions.contains(partitioning.partition(of: key)) { body(key, digest) }
        }
    }
}
