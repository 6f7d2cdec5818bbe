#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import ControlPlane
import SessionModel

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

/// One message between nodes or sites (DESIGN.md §6).
public enum Frame: Hashable, Sendable {
    case deltaBatch(DeltaBatch)
    case deltaBatchAck(DeltaBatchAck)
    case keyStates(partition: UInt32, [KeyStateRecord])
    case hello(Hello)
    /// `responder` is the listener's identity; `reason` says why `accepted` is false.
    case helloReply(accepted: Bool, reason: String, responder: Hello?)
    /// `roles`: the sender's role assignment (federation links; nil inside a site).
    case heartbeat(sentAtMilliseconds: UInt64, roles: RoleAssignment?)
    case merkleRootsRequest(round: UInt64)
    /// One root per partition, index = partition.
    case merkleRoots(round: UInt64, roots: [StateDigest])
    case merkleLeavesRequest(round: UInt64, partitions: [UInt32])
    case merkleLeaves(round: UInt64, [PartitionLeaves])
    case bucketDigests(round: UInt64, chunk: UInt32, [Bucket])
    case bucketRepair(BucketRepair)
    /// A control-plane message between nodes of one site.
    case raft(RaftEnvelope)
    /// The data plane between nodes of one site (`ReplicationFrames.swift`).
    case forwardedCommand(ForwardedCommand)
    case forwardedReply(ForwardedReply)
    case partitionWrites(PartitionWrites)
    case transferChunk(TransferChunk)
    case backupReport(BackupReport)
    /// Pub/sub between nodes of one site.
    case siteMessages(published: [PublishedMessage], events: [SiteKeyspaceEvent])
    case subscriberInterest(listening: Bool)
    /// Multi-key commands over the primaries of several nodes.
    case lockRequest(LockRequest)
    case lockReply(LockReply)
    case transactionWrites(transaction: UInt64, [PartitionWrites])
    case transactionDone(transaction: UInt64, applied: Bool)
    /// Keyless commands over a site of several nodes.
    case partitionQuery(PartitionQuery)
    case partitionQueryReply(PartitionQueryReply)
    case remoteDeltas(RemoteDeltas)
    case remoteDeltasApplied(RemoteDeltasApplied)
    /// Another site's anti-entropy request, answered by the partition's primary.
    indirect case remoteRoundRequest(RemoteRoundRequest)
    indirect case remoteRoundAnswer(RemoteRoundAnswer)
    // Federation-wide collection of tombstones and expired keys (DESIGN.md §2.5).
    case collectionCheck(round: UInt64, [KeyDigest])
    /// `partitions`: those whose proposed keys the vote answers (empty: every key proposed).
    case collectionVote(round: UInt64, agreed: [[UInt8]], partitions: [UInt32])
    case collectionCommit([KeyDigest])
}

extension Frame {
    public var wire: Sessionfed_V1_Frame {
        var frame = Sessionfed_V1_Frame()
        switch self {
        case .deltaBatch(let batch):
            var wire = Sessionfed_V1_DeltaBatch()
            wire.originSite = batch.originSite.rawValue
            wire.senderSite = batch.senderSite.rawValue
            wire.partition = batch.partition
            wire.firstSequence = batch.firstSequence
            wire.deltas = batch.deltas.map(Sessionfed_V1_Delta.init)
            frame.body = .deltaBatch(wire)
        case .deltaBatchAck(let ack):
            var wire = Sessionfed_V1_DeltaBatchAck()
            wire.originSite = ack.originSite.rawValue
            wire.partition = ack.partition
            wire.sequence = ack.sequence
            frame.body = .deltaBatchAck(wire)
        case .keyStates(let partition, let records):
            var wire = Sessionfed_V1_KeyStateBatch()
            wire.partition = partition
            wire.states = records.map(\.wire)
            frame.body = .keyStateBatch(wire)
        case .hello(let hello):
            frame.body = .hello(hello.wire)
        case .helloReply(let accepted, let reason, let responder):
            var wire = Sessionfed_V1_HelloReply()
            wire.accepted = accepted
            wire.reason = reason
            if let responder { wire.responder = responder.wire }
            frame.body = .helloReply(wire)
        case .heartbeat(let sentAt, let roles):
            var wire = Sessionfed_V1_Heartbeat()
            wire.sentAtMs = sentAt
            if let roles { wire.roles = Sessionfed_V1_RoleAssignment(roles) }
            frame.body = .heartbeat(wire)
        case .merkleRootsRequest(let round):
            var wire = Sessionfed_V1_MerkleRootsRequest()
            wire.round = round
            frame.body = .merkleRootsRequest(wire)
        case .merkleRoots(let round, let roots):
            var wire = Sessionfed_V1_MerkleRoots()
            wire.round = round
            wire.roots = roots.map { Data($0.bytes) }
            frame.body = .merkleRoots(wire)
        case .merkleLeavesRequest(let round, let partitions):
            var wire = Sessionfed_V1_MerkleLeavesRequest()
            wire.round = round
            wire.partitions = partitions
            frame.body = .merkleLeavesRequest(wire)
        case .merkleLeaves(let round, let partitions):
            var wire = Sessionfed_V1_MerkleLeaves()
            wire.round = round
            wire.partitions = partitions.map { leaves in
                var entry = Sessionfed_V1_PartitionLeaves()
                entry.partition = leaves.partition
                entry.leaves = leaves.leaves.map { Data($0.bytes) }
                return entry
            }
            frame.body = .merkleLeaves(wire)
        case .bucketDigests(let round, let chunk, let buckets):
            var wire = Sessionfed_V1_BucketDigests()
            wire.round = round
            wire.chunk = chunk
            wire.buckets = buckets.map { bucket in
                var entry = Sessionfed_V1_Bucket()
                entry.partition = bucket.partition
                entry.leaf = bucket.leaf
                entry.keys = bucket.keys.map(\.wire)
                return entry
            }
            frame.body = .bucketDigests(wire)
        case .collectionCheck(let round, let keys):
            var wire = Sessionfed_V1_CollectionCheck()
            wire.round = round
            wire.keys = keys.map(\.wire)
            frame.body = .collectionCheck(wire)
        case .collectionVote(let round, let agreed, let partitions):
            var wire = Sessionfed_V1_CollectionVote()
            wire.round = round
            wire.agreed = agreed.map { Data($0) }
            wire.partitions = partitions
            frame.body = .collectionVote(wire)
        case .collectionCommit(let keys):
            var wire = Sessionfed_V1_CollectionCommit()
            wire.keys = keys.map(\.wire)
            frame.body = .collectionCommit(wire)
        case .bucketRepair(let repair):
            var wire = Sessionfed_V1_BucketRepair()
            wire.round = repair.round
            wire.chunk = repair.chunk
            wire.last = repair.last
            wire.states = repair.states.map(\.wire)
            wire.wanted = repair.wanted.map { Data($0) }
            frame.body = .bucketRepair(wire)
        case .raft(let envelope):
            frame.body = .raft(envelope.wire)
        case .forwardedCommand, .forwardedReply, .partitionWrites, .transferChunk, .backupReport, .siteMessages, .subscriberInterest,
            .lockRequest, .lockReply, .transactionWrites, .transactionDone, .partitionQuery, .partitionQueryReply, .remoteDeltas, .remoteDeltasApplied,
            .remoteRoundRequest, .remoteRoundAnswer:
            frame.body = replicationBody
        }
        return frame
    }

    public init(wire: Sessionfed_V1_Frame) throws(WireError) {
        switch wire.body {
        case .deltaBatch(let batch):
            var deltas: [Delta] = []
            deltas.reserveCapacity(batch.deltas.count)
            for delta in batch.deltas { deltas.append(try delta.model()) }
            guard batch.firstSequence > 0 || deltas.isEmpty else {
                throw .invalidValue(message: "DeltaBatch", field: "first_sequence", reason: "must be at least 1")
            }
            guard batch.firstSequence <= UInt64.max - UInt64(deltas.count) else {
                throw .invalidValue(message: "DeltaBatch", field: "first_sequence", reason: "sequence numbers overflow")
            }
            self = .deltaBatch(
                DeltaBatch(
                    originSite: SiteID(batch.originSite),
                    senderSite: SiteID(batch.senderSite),
                    partition: batch.partition,
                    firstSequence: batch.firstSequence,
                    deltas: deltas
                )
            )
        case .deltaBatchAck(let ack):
            self = .deltaBatchAck(
                DeltaBatchAck(originSite: SiteID(ack.originSite), partition: ack.partition, sequence: ack.sequence)
            )
        case .keyStateBatch(let batch):
            var records: [KeyStateRecord] = []
            for state in batch.states { records.append(try KeyStateRecord(wire: state)) }
            self = .keyStates(partition: batch.partition, records)
        case .hello(let hello):
            self = .hello(Hello(wire: hello))
        case .helloReply(let reply):
            self = .helloReply(accepted: reply.accepted, reason: reply.reason, responder: reply.hasResponder ? Hello(wire: reply.responder) : nil)
        case .heartbeat(let heartbeat):
            self = .heartbeat(sentAtMilliseconds: heartbeat.sentAtMs, roles: heartbeat.hasRoles ? heartbeat.roles.model : nil)
        case .merkleRootsRequest(let request):
            self = .merkleRootsRequest(round: request.round)
        case .merkleRoots(let roots):
            var digests: [StateDigest] = []
            for root in roots.roots { digests.append(try StateDigest(wire: root, in: "MerkleRoots")) }
            self = .merkleRoots(round: roots.round, roots: digests)
        case .merkleLeavesRequest(let request):
            self = .merkleLeavesRequest(round: request.round, partitions: request.partitions)
        case .merkleLeaves(let wire):
            var partitions: [PartitionLeaves] = []
            for entry in wire.partitions {
                var leaves: [StateDigest] = []
                for leaf in entry.leaves { leaves.append(try StateDigest(wire: leaf, in: "PartitionLeaves")) }
                partitions.append(PartitionLeaves(partition: entry.partition, leaves: leaves))
            }
            self = .merkleLeaves(round: wire.round, partitions)
        case .bucketDigests(let wire):
            var buckets: [Bucket] = []
            for entry in wire.buckets {
                buckets.append(Bucket(partition: entry.partition, leaf: entry.leaf, keys: try entry.keys.map(KeyDigest.init(wire:))))
            }
            self = .bucketDigests(round: wire.round, chunk: wire.chunk, buckets)
        case .collectionCheck(let wire):
            self = .collectionCheck(round: wire.round, try wire.keys.map(KeyDigest.init(wire:)))
        case .collectionVote(let wire):
            self = .collectionVote(round: wire.round, agreed: wire.agreed.map { Array($0) }, partitions: wire.partitions)
        case .collectionCommit(let wire):
            self = .collectionCommit(try wire.keys.map(KeyDigest.init(wire:)))
        case .bucketRepair(let wire):
            var records: [KeyStateRecord] = []
            for state in wire.states { records.append(try KeyStateRecord(wire: state)) }
            self = .bucketRepair(
                BucketRepair(round: wire.round, chunk: wire.chunk, last: wire.last, states: records, wanted: wire.wanted.map { Array($0) })
            )
        case .raft(let envelope):
            self = .raft(try RaftEnvelope(wire: envelope))
        case .forwardedCommand, .forwardedReply, .partitionWrites, .transferChunk, .backupReport, .siteMessages, .subscriberInterest,
            .lockRequest, .lockReply, .transactionWrites, .transactionDone, .partitionQuery, .partitionQueryReply, .remoteDeltas, .remoteDeltasApplied,
            .remoteRoundRequest, .remoteRoundAnswer:
            self = try Frame.replication(from: wire.body!)!
        case nil:
            throw .missingField(message: "Frame", field: "body")
        }
    }
}

/// Length-prefixed framing: a 4-byte big-endian length, then one `Frame` message.
public enum FrameCodec {
    /// 16 MiB: a batch is capped far below this by the outbox's byte cap; anything larger is a
    /// broken or hostile peer, and buffering it would let one link exhaust a node's memory.
    public static let maximumFrameBytes: UInt32 = 16 << 20

    /// The encoded frame, or nil when it would exceed `maximumFrameBytes` (a caller that
    /// cannot bound its frames in advance — a command's reply, a key's state — checks here).
    public static func encodeIfFits(_ frame: Frame) -> [UInt8]? {
        let payload = WireMessage.encode(frame.wire)
        guard payload.count <= maximumFrameBytes else { return nil }
        let length = UInt32(payload.count)
        return [UInt8(length >> 24), UInt8((length >> 16) & 0xff), UInt8((length >> 8) & 0xff), UInt8(length & 0xff)] + payload
    }

    /// The encoded frame; the caller guarantees it fits (a batch bounded in advance).
    public static func encode(_ frame: Frame) -> [UInt8] {
        guard let bytes = encodeIfFits(frame) else { preconditionFailure("Invalid state: a \(frame.kind) frame over \(maximumFrameBytes) bytes was built") }
        return bytes
    }
}

/// Reassembles frames from a byte stream that arrives in arbitrary pieces.
public struct FrameDecoder: Sendable {
    private var buffer: [UInt8] = []
    private var start = 0
    public let maximumFrameBytes: UInt32

    public init(maximumFrameBytes: UInt32 = FrameCodec.maximumFrameBytes) {
        self.maximumFrameBytes = maximumFrameBytes
    }

    /// Bytes received but not yet returned as frames.
    public var bufferedBytes: Int { buffer.count - start }

    /// A buffer this large is given back once every frame in it was read: a burst of large
    /// frames (a catch-up, an anti-entropy repair) must not hold its memory for the life of
    /// the connection.
    static let keptCapacity = 64 * 1024

    public mutating func append(_ bytes: some Sequence<UInt8>) {
        if start > 0, start >= buffer.count / 2 {
            buffer.removeFirst(start)
            start = 0
        }
        buffer.append(contentsOf: bytes)
    }

    /// The next complete frame, nil when more bytes are needed. After a throw the stream is
    /// unusable: the caller closes the connection.
    public mutating func next() throws(WireError) -> Frame? {
        guard bufferedBytes >= 4 else { return nil }
        let length = buffer[start..<start + 4].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        guard length <= maximumFrameBytes else {
            throw .frameTooLarge(length: length, limit: maximumFrameBytes)
        }
        guard bufferedBytes >= 4 + Int(length) else { return nil }
        let payload = Array(buffer[start + 4..<start + 4 + Int(length)])
        start += 4 + Int(length)
        if start == buffer.count && buffer.capacity > Self.keptCapacity {
            buffer = []
            start = 0
        }
        return try Frame(wire: WireMessage.decode(Sessionfed_V1_Frame.self, from: payload))
    }
}

extension Frame {
    /// The frame's kind, for logs.
    public var kind: String {
        switch self {
        case .deltaBatch: return "DeltaBatch"
        case .deltaBatchAck: return "DeltaBatchAck"
        case .keyStates: return "KeyStateBatch"
        case .hello: return "Hello"
        case .helloReply: return "HelloReply"
        case .heartbeat: return "Heartbeat"
        case .merkleRootsRequest: return "MerkleRootsRequest"
        case .merkleRoots: return "MerkleRoots"
        case .merkleLeavesRequest: return "MerkleLeavesRequest"
        case .merkleLeaves: return "MerkleLeaves"
        case .bucketDigests: return "BucketDigests"
        case .collectionCheck: return "CollectionCheck"
        case .collectionVote: return "CollectionVote"
        case .collectionCommit: return "CollectionCommit"
        case .bucketRepair: return "BucketRepair"
        case .raft: return "RaftEnvelope"
        case .forwardedCommand: return "ForwardedCommand"
        case .forwardedReply: return "ForwardedReply"
        case .partitionWrites: return "PartitionWrites"
        case .transferChunk: return "TransferChunk"
        case .backupReport: return "BackupReport"
        case .siteMessages: return "SiteMessages"
        case .subscriberInterest: return "SubscriberInterest"
        case .lockRequest: return "LockRequest"
        case .lockReply: return "LockReply"
        case .transactionWrites: return "TransactionWrites"
        case .transactionDone: return "TransactionDone"
        case .partitionQuery: return "PartitionQuery"
        case .partitionQueryReply: return "PartitionQueryReply"
        case .remoteDeltas: return "RemoteDeltas"
        case .remoteDeltasApplied: return "RemoteDeltasApplied"
        case .remoteRoundRequest: return "RemoteRoundRequest"
        case .remoteRoundAnswer: return "RemoteRoundAnswer"
        }
    }
}
