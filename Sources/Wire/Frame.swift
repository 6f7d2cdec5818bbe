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
            wire.states = records.map { Sessionfed_V1_KeyState(key: $0.key, state: $0.state) }
            frame.body = .keyStateBatch(wire)
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
            for state in batch.states {
                let (key, model) = try state.model()
                records.append(KeyStateRecord(key: key, state: model))
            }
            self = .keyStates(partition: batch.partition, records)
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

    public static func encode(_ frame: Frame) -> [UInt8] {
        let payload = WireMessage.encode(frame.wire)
        precondition(payload.count <= maximumFrameBytes, "Invalid state: a frame of \(payload.count) bytes was built")
        let length = UInt32(payload.count)
        return [UInt8(length >> 24), UInt8((length >> 16) & 0xff), UInt8((length >> 8) & 0xff), UInt8(length & 0xff)] + payload
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
        return try Frame(wire: WireMessage.decode(Sessionfed_V1_Frame.self, from: payload))
    }
}
