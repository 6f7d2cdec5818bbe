import SessionModel

/// One message on a federation link once its handshake is done (DESIGN.md §4): deltas and
/// their acknowledgements, anti-entropy and collection rounds. The federation core speaks
/// these; `Wire` frames them (`Frame.federation`) next to the link-level frames (Hello and its
/// reply, heartbeats) and the frames between nodes of one site.
public enum FederationMessage: Hashable, Sendable {
    case deltaBatch(DeltaBatch)
    case deltaBatchAck(DeltaBatchAck)
    case keyStates(partition: UInt32, [KeyStateRecord])
    case merkleRootsRequest(round: UInt64)
    /// One root per partition, index = partition.
    case merkleRoots(round: UInt64, roots: [StateDigest])
    case merkleLeavesRequest(round: UInt64, partitions: [UInt32])
    case merkleLeaves(round: UInt64, [PartitionLeaves])
    case bucketDigests(round: UInt64, chunk: UInt32, [Bucket])
    case bucketRepair(BucketRepair)
    // Federation-wide collection of tombstones and expired keys (DESIGN.md §2.5).
    case collectionCheck(round: UInt64, [KeyDigest])
    /// `partitions`: those whose proposed keys the vote answers (empty: every key proposed).
    case collectionVote(round: UInt64, agreed: [[UInt8]], partitions: [UInt32])
    case collectionCommit([KeyDigest])
}

extension FederationMessage {
    /// The message's kind, for logs: the name of the protobuf message that carries it.
    public var kind: String {
        switch self {
        case .deltaBatch: return "DeltaBatch"
        case .deltaBatchAck: return "DeltaBatchAck"
        case .keyStates: return "KeyStateBatch"
        case .merkleRootsRequest: return "MerkleRootsRequest"
        case .merkleRoots: return "MerkleRoots"
        case .merkleLeavesRequest: return "MerkleLeavesRequest"
        case .merkleLeaves: return "MerkleLeaves"
        case .bucketDigests: return "BucketDigests"
        case .bucketRepair: return "BucketRepair"
        case .collectionCheck: return "CollectionCheck"
        case .collectionVote: return "CollectionVote"
        case .collectionCommit: return "CollectionCommit"
        }
    }
}
