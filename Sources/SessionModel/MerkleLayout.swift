/// Where a key counts in the Merkle forest anti-entropy compares (DESIGN.md §4), and what it
/// adds there: shared by `MerkleForest` and by the leaves the keyspace keeps current as keys
/// change, so both give the same digests.
///
/// A leaf covers a contiguous range of its partition's slots and holds the wrapping sum of its
/// keys' contributions: it does not depend on the order keys are added, and a key's change
/// updates it by subtracting the old contribution and adding the new one.
public struct MerkleLayout: Hashable, Sendable {
    public let partitioning: Partitioning
    public let leafCount: Int

    public init(partitioning: Partitioning, leafCount: Int) {
        precondition(leafCount >= 1, "Invalid state: \(leafCount) Merkle leaves")
        self.partitioning = partitioning
        self.leafCount = leafCount
    }

    /// The partition and leaf a key belongs to.
    public func location(of key: [UInt8]) -> (partition: Int, leaf: Int) {
        let slot = Partitioning.slot(of: key)
        let partition = partitioning.partition(ofSlot: slot)
        let count = partitioning.partitionCount
        let first = (partition * Partitioning.slotCount + count - 1) / count
        let end = ((partition + 1) * Partitioning.slotCount + count - 1) / count
        let leaf = (slot - first) * leafCount / max(1, end - first)
        return (partition, min(leaf, leafCount - 1))
    }

    /// What a key with state digest `digest` adds to its leaf.
    public static func contribution(key: [UInt8], digest: StateDigest) -> StateDigest {
        var bytes = key
        bytes.reserveCapacity(key.count + 16)
        append(digest.high, to: &bytes)
        append(digest.low, to: &bytes)
        return StateDigest(of: bytes)
    }

    public static func append(_ value: UInt64, to bytes: inout [UInt8]) {
        for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: value >> UInt64(shift))) }
    }
}

extension StateDigest {
    public static let zero = StateDigest(high: 0, low: 0)

    /// Wrapping sum: a leaf of the forest.
    public mutating func add(_ other: StateDigest) {
        high &+= other.high
        low &+= other.low
    }

    public mutating func subtract(_ other: StateDigest) {
        high &-= other.high
        low &-= other.low
    }
}
