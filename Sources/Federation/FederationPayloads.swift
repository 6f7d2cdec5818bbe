import SessionModel

// The contents of `FederationMessage`s; `Wire` converts them to and from protobuf.

/// Deltas of one source partition in outbox order, as shipped between sites.
public struct DeltaBatch: Hashable, Sendable {
    /// The site that accepted the writes.
    public var originSite: SiteID
    /// The site sending the batch; differs from `originSite` when a hub forwards it.
    public var senderSite: SiteID
    public var partition: UInt32
    /// Sequence number of `deltas[0]`; the others follow contiguously.
    public var firstSequence: UInt64
    public var deltas: [Delta]

    public init(originSite: SiteID, senderSite: SiteID, partition: UInt32, firstSequence: UInt64, deltas: [Delta]) {
        self.originSite = originSite
        self.senderSite = senderSite
        self.partition = partition
        self.firstSequence = firstSequence
        self.deltas = deltas
    }
}

/// The receiver applied every delta of `originSite`'s `partition` up to `sequence`.
public struct DeltaBatchAck: Hashable, Sendable {
    public var originSite: SiteID
    public var partition: UInt32
    public var sequence: UInt64

    public init(originSite: SiteID, partition: UInt32, sequence: UInt64) {
        self.originSite = originSite
        self.partition = partition
        self.sequence = sequence
    }
}

/// A key's full state, for anti-entropy.
public struct KeyStateRecord: Hashable, Sendable {
    public var key: [UInt8]
    public var state: KeyState

    public init(key: [UInt8], state: KeyState) {
        self.key = key
        self.state = state
    }
}

/// The Merkle leaves of one partition.
public struct PartitionLeaves: Hashable, Sendable {
    public var partition: UInt32
    public var leaves: [StateDigest]

    public init(partition: UInt32, leaves: [StateDigest]) {
        self.partition = partition
        self.leaves = leaves
    }
}

/// One differing Merkle leaf and the sender's (key, digest) pairs in it.
public struct Bucket: Hashable, Sendable {
    public var partition: UInt32
    public var leaf: UInt32
    public var keys: [KeyDigest]

    public init(partition: UInt32, leaf: UInt32, keys: [KeyDigest]) {
        self.partition = partition
        self.leaf = leaf
        self.keys = keys
    }
}

public struct KeyDigest: Hashable, Sendable {
    public var key: [UInt8]
    public var digest: StateDigest

    public init(key: [UInt8], digest: StateDigest) {
        self.key = key
        self.digest = digest
    }
}

/// The listener's answer to one chunk of bucket digests.
public struct BucketRepair: Hashable, Sendable {
    public var round: UInt64
    public var chunk: UInt32
    /// The last repair frame answering `chunk`.
    public var last: Bool
    public var states: [KeyStateRecord]
    /// Keys the dialer should send: the listener lacks them or holds a different state.
    public var wanted: [[UInt8]]

    public init(round: UInt64, chunk: UInt32, last: Bool, states: [KeyStateRecord], wanted: [[UInt8]]) {
        self.round = round
        self.chunk = chunk
        self.last = last
        self.states = states
        self.wanted = wanted
    }
}
