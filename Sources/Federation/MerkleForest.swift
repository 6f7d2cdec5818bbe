import SessionModel

/// Merkle trees over (key, state digest) pairs, one per partition (DESIGN.md §4). A leaf covers a
/// contiguous range of the partition's slots and holds the wrapping sum of its keys'
/// contributions, so it does not depend on the order keys are visited; a root is the digest of
/// its leaves. Two sites with equal roots hold equal states for every key of the partition
/// (up to hash collisions).
public struct MerkleForest: Hashable, Sendable {
    public let partitioning: Partitioning
    public let leafCount: Int
    /// `leaves[partition][leaf]`.
    public private(set) var leaves: [[StateDigest]]
    public private(set) var keyCount = 0

    public init(partitioning: Partitioning, leafCount: Int) {
        precondition(leafCount >= 1, "Invalid state: \(leafCount) Merkle leaves")
        self.partitioning = partitioning
        self.leafCount = leafCount
        leaves = Array(repeating: Array(repeating: StateDigest(high: 0, low: 0), count: leafCount), count: partitioning.partitionCount)
    }

    /// Builds the forest from every stored key of `store`.
    public init(of store: inout some AntiEntropyStore, partitioning: Partitioning, leafCount: Int) {
        self.init(partitioning: partitioning, leafCount: leafCount)
        store.forEachDigest { key, digest in add(key: key, digest: digest) }
    }

    /// Builds the leaves of `partitions` alone (the others stay empty).
    public init(of store: inout some AntiEntropyStore, partitions: Set<Int>, partitioning: Partitioning, leafCount: Int) {
        self.init(partitioning: partitioning, leafCount: leafCount)
        guard !partitions.isEmpty else { return }
        store.forEachDigest(inPartitions: partitions, of: partitioning) { key, digest in add(key: key, digest: digest) }
    }

    public mutating func add(key: [UInt8], digest: StateDigest) {
        let (partition, leaf) = location(of: key)
        let contribution = Self.contribution(key: key, digest: digest)
        leaves[partition][leaf].high &+= contribution.high
        leaves[partition][leaf].low &+= contribution.low
        keyCount += 1
    }

    /// The partition and leaf a key belongs to.
    public func location(of key: [UInt8]) -> (partition: Int, leaf: Int) {
        let slot = Partitioning.slot(of: key)
        let partition = partitioning.partition(ofSlot: slot)
        let first = (partition * Partitioning.slotCount + partitioning.partitionCount - 1) / partitioning.partitionCount
        let end = ((partition + 1) * Partitioning.slotCount + partitioning.partitionCount - 1) / partitioning.partitionCount
        let leaf = (slot - first) * leafCount / max(1, end - first)
        return (partition, min(leaf, leafCount - 1))
    }

    public func root(of partition: Int) -> StateDigest {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(leafCount * 16)
        for leaf in leaves[partition] {
            Self.append(leaf.high, to: &bytes)
            Self.append(leaf.low, to: &bytes)
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
            Self.append(root.high, to: &bytes)
            Self.append(root.low, to: &bytes)
        }
        return StateDigest(of: bytes)
    }

    static func contribution(key: [UInt8], digest: StateDigest) -> StateDigest {
        var bytes = key
        append(digest.high, to: &bytes)
        append(digest.low, to: &bytes)
        return StateDigest(of: bytes)
    }

    static func append(_ value: UInt64, to bytes: inout [UInt8]) {
        for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: value >> UInt64(shift))) }
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
}

extension AntiEntropyStore {
    /// Visits every key and keeps those of `partitions`: for stores without an index by
    /// partition.
    public mutating func forEachDigest(inPartitions partitions: Set<Int>, of partitioning: Partitioning, _ body: ([UInt8], StateDigest) -> Void) {
        forEachDigest { key, digest in
            if partitions.contains(partitioning.partition(of: key)) { body(key, digest) }
        }
    }
}
