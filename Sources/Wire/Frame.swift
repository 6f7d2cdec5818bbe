import ControlPlane
import Federation
import SessionModel

/// One message between nodes or sites (DESIGN.md §6).
public enum Frame: Hashable, Sendable {
    case hello(Hello)
    /// `responder` is the listener's identity; `reason` says why `accepted` is false.
    case helloReply(accepted: Bool, reason: String, responder: Hello?)
    /// `roles`: the sender's role assignment (federation links; nil inside a site).
    case heartbeat(sentAtMilliseconds: UInt64, roles: RoleAssignment?)
    /// A message between sites, past the handshake (`FederationFrames.swift`).
    case federation(FederationMessage)
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
    case remoteRoundRequest(RemoteRoundRequest)
    case remoteRoundAnswer(RemoteRoundAnswer)
}

extension Frame {
    public var wire: Sessionfed_V1_Frame {
        var frame = Sessionfed_V1_Frame()
        switch self {
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
        case .federation(let message):
            frame.body = message.wireBody
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
        case .hello(let hello):
            self = .hello(Hello(wire: hello))
        case .helloReply(let reply):
            self = .helloReply(accepted: reply.accepted, reason: reply.reason, responder: reply.hasResponder ? Hello(wire: reply.responder) : nil)
        case .heartbeat(let heartbeat):
            self = .heartbeat(sentAtMilliseconds: heartbeat.sentAtMs, roles: heartbeat.hasRoles ? heartbeat.roles.model : nil)
        case .deltaBatch, .deltaBatchAck, .keyStateBatch, .merkleRootsRequest, .merkleRoots, .merkleLeavesRequest, .merkleLeaves, .bucketDigests,
            .bucketRepair, .collectionCheck, .collectionVote, .collectionCommit:
            self = .federation(try FederationMessage.federation(from: wire.body!)!)
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
        guard let payload = payloadIfFits(frame) else { return nil }
        let length = UInt32(payload.count)
        return [UInt8(length >> 24), UInt8((length >> 16) & 0xff), UInt8((length >> 8) & 0xff), UInt8(length & 0xff)] + payload
    }

    /// The frame's message without its length prefix (nil over the limit), for a writer that
    /// puts the prefix into its own buffer: the data plane sends several frames per write,
    /// and joining prefix and message cost each an array and a copy.
    public static func payloadIfFits(_ frame: Frame) -> [UInt8]? {
        let payload = DataPlaneEncoding.encode(frame) ?? WireMessage.encode(frame.wire)
        return payload.count <= maximumFrameBytes ? payload : nil
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
        let range = start + 4..<start + 4 + Int(length)
        start = range.upperBound
        defer {
            if start == buffer.count && buffer.capacity > Self.keptCapacity {
                buffer = []
                start = 0
            }
        }
        // The data plane's hot frames are read in place; the rest, and anything not in the
        // form our encoders write, through the generated code (`DataPlaneDecoding`).
        if let frame = buffer.withUnsafeBufferPointer({ DataPlaneDecoding.decode(UnsafeBufferPointer(rebasing: $0[range])) }) {
            return frame
        }
        return try Frame(wire: WireMessage.decode(Sessionfed_V1_Frame.self, from: Array(buffer[range])))
    }
}

extension Frame {
    /// The frame's kind, for logs.
    public var kind: String {
        switch self {
        case .hello: return "Hello"
        case .helloReply: return "HelloReply"
        case .heartbeat: return "Heartbeat"
        case .federation(let message): return message.kind
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
