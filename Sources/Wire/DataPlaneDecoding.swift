import Replication
import SessionModel

/// Reads the data plane's hot frames straight from protobuf's wire format, the counterpart of
/// `DataPlaneEncoding` (decoding through the generated code was about a tenth of a site's CPU
/// under writes).
///
/// It takes only the form the encoders write: fields in ascending order, each singular field
/// at most once, a oneof with exactly one member, no unknown fields, every value valid for the
/// model. Anything else (another kind of frame, an older or newer peer's extra field, a
/// malformed or invalid message) gives nil, and the generated code decodes the frame instead:
/// it accepts what protobuf accepts and throws the `WireError` that names what is wrong. So a
/// frame this reader returns is the frame the generated code returns for the same bytes
/// (`DataPlaneDecodingTests` checks both on valid, random and corrupted frames).
public enum DataPlaneDecoding {
    /// The frame in `payload` (a frame's message, without its length prefix), or nil: decode
    /// it through the generated code.
    public static func decode(_ payload: UnsafeBufferPointer<UInt8>) -> Frame? {
        var reader = ProtobufReader(payload)
        guard let (number, wireType) = reader.tag(), wireType == 2, let body = reader.lengthDelimited(), reader.isAtEnd else { return nil }
        var message = ProtobufReader(payload, body)
        switch number {
        case 14: return message.forwardedCommand().map { .forwardedCommand($0) }
        case 15: return message.forwardedReply().map { .forwardedReply($0) }
        case 16: return message.partitionWrites().map { .partitionWrites($0) }
        case 18: return message.backupReport().map { .backupReport($0) }
        default: return nil
        }
    }
}

/// A cursor over one protobuf message, `nil` from every read that finds something other
/// than what the encoders write.
struct ProtobufReader {
    let buffer: UnsafeBufferPointer<UInt8>
    var offset: Int
    let end: Int
    /// The last field number read: fields must come in ascending order.
    private var lastField: UInt32 = 0

    init(_ buffer: UnsafeBufferPointer<UInt8>, _ range: Range<Int>? = nil) {
        self.buffer = buffer
        offset = range?.lowerBound ?? 0
        end = range?.upperBound ?? buffer.count
    }

    var isAtEnd: Bool { offset == end }

    mutating func varint() -> UInt64? {
        var value: UInt64 = 0
        for shift in stride(from: UInt64(0), to: 70, by: 7) {
            guard offset < end else { return nil }
            let byte = buffer[offset]
            offset += 1
            // The tenth byte may carry only the top bit of 64.
            guard shift < 63 || byte <= 1 else { return nil }
            value |= UInt64(byte & 0x7f) << shift
            if byte < 0x80 { return value }
        }
        return nil
    }

    mutating func tag() -> (number: UInt32, wireType: UInt8)? {
        guard let tag = varint(), tag <= UInt64(UInt32.max), tag >> 3 > 0 else { return nil }
        return (UInt32(tag >> 3), UInt8(tag & 7))
    }

    /// The next field's number and wire type, or the end. A field whose number is not above the
    /// previous one's (unless it is a repeated field, read again) is `.invalid`.
    enum Next {
        case field(UInt32, wireType: UInt8)
        case end
        case invalid
    }

    /// `repeated`: the numbers of the message's repeated fields, one bit each (`1 << number`).
    mutating func next(repeated: UInt64 = 0) -> Next {
        guard !isAtEnd else { return .end }
        guard let (number, wireType) = tag() else { return .invalid }
        guard number > lastField || (number == lastField && number < 64 && repeated & 1 << UInt64(number) != 0) else { return .invalid }
        lastField = number
        return .field(number, wireType: wireType)
    }

    mutating func lengthDelimited() -> Range<Int>? {
        guard let length = varint(), length <= UInt64(end - offset) else { return nil }
        let range = offset..<offset + Int(length)
        offset = range.upperBound
        return range
    }

    mutating func bytes() -> [UInt8]? {
        lengthDelimited().map { Array(UnsafeBufferPointer(rebasing: buffer[$0])) }
    }

    mutating func uint32() -> UInt32? {
        varint().flatMap { $0 <= UInt64(UInt32.max) ? UInt32($0) : nil }
    }

    mutating func bool() -> Bool? {
        varint().flatMap { $0 <= 1 ? $0 == 1 : nil }
    }

    mutating func fixed64() -> UInt64? {
        guard end - offset >= 8 else { return nil }
        var value: UInt64 = 0
        for index in 0..<8 { value |= UInt64(buffer[offset + index]) << UInt64(8 * index) }
        offset += 8
        return value
    }

    /// A nested message, read by `body` to its end (nil when it stops early or fails).
    mutating func message<T>(_ body: (inout ProtobufReader) -> T?) -> T? {
        guard let range = lengthDelimited() else { return nil }
        var nested = ProtobufReader(buffer, range)
        guard let value = body(&nested), nested.isAtEnd else { return nil }
        return value
    }

    // MARK: frames.proto

    mutating func forwardedCommand() -> ForwardedCommand? {
        var request: UInt64 = 0, arguments: [[UInt8]] = [], protocolVersion: UInt32 = 0, database: UInt32 = 0
        while true {
            switch next(repeated: 1 << 2) {
            case .end:
                guard !arguments.isEmpty, protocolVersion == 2 || protocolVersion == 3, database < Frame.databaseCount else { return nil }
                return ForwardedCommand(request: request, arguments: arguments, protocolVersion: protocolVersion, database: database)
            case .field(1, 0): guard let value = varint() else { return nil }; request = value
            case .field(2, 2): guard let value = bytes() else { return nil }; arguments.append(value)
            case .field(3, 0): guard let value = uint32() else { return nil }; protocolVersion = value
            case .field(4, 0): guard let value = uint32() else { return nil }; database = value
            default: return nil
            }
        }
    }

    mutating func forwardedReply() -> ForwardedReply? {
        var request: UInt64 = 0, reply: [UInt8] = [], notPrimary = false
        while true {
            switch next() {
            case .end:
                guard notPrimary || !reply.isEmpty else { return nil }
                return ForwardedReply(request: request, reply: reply, notPrimary: notPrimary)
            case .field(1, 0): guard let value = varint() else { return nil }; request = value
            case .field(2, 2): guard let value = bytes() else { return nil }; reply = value
            case .field(3, 0): guard let value = bool() else { return nil }; notPrimary = value
            default: return nil
            }
        }
    }

    mutating func partitionWrites() -> PartitionWrites? {
        var partition: UInt32 = 0, epoch: UInt64 = 0, firstSequence: UInt64 = 0, writes: [ReplicatedWrite] = []
        while true {
            switch next(repeated: 1 << 4) {
            case .end:
                guard firstSequence > 0, firstSequence <= UInt64.max - UInt64(writes.count) else { return nil }
                return PartitionWrites(partition: partition, epoch: epoch, firstSequence: firstSequence, writes: writes)
            case .field(1, 0): guard let value = uint32() else { return nil }; partition = value
            case .field(2, 0): guard let value = varint() else { return nil }; epoch = value
            case .field(3, 0): guard let value = varint() else { return nil }; firstSequence = value
            case .field(4, 2): guard let value = message({ $0.replicatedWrite() }) else { return nil }; writes.append(value)
            default: return nil
            }
        }
    }

    /// Whole key states (field 3) are left to the generated code.
    mutating func replicatedWrite() -> ReplicatedWrite? {
        var write = ReplicatedWrite()
        while true {
            switch next(repeated: 1 << 1 | 1 << 2 | 1 << 4) {
            case .end: return write
            case .field(1, 2): guard let delta = message({ $0.delta() }) else { return nil }; write.deltas.append(delta)
            case .field(2, 2): guard let key = bytes() else { return nil }; write.expiredKeys.append(key)
            case .field(4, 2): guard let key = bytes() else { return nil }; write.collectedKeys.append(key)
            default: return nil
            }
        }
    }

    mutating func backupReport() -> BackupReport? {
        var partition: UInt32 = 0, epoch: UInt64 = 0, message: BackupMessage?
        while true {
            switch next() {
            case .end: return message.map { BackupReport(partition: partition, epoch: epoch, message: $0) }
            case .field(1, 0): guard let value = uint32() else { return nil }; partition = value
            case .field(2, 0): guard let value = varint() else { return nil }; epoch = value
            // A oneof: a second member (a higher number) is refused by the ascending order only
            // if it comes first, so check that none was read.
            case .field(3, 0): guard message == nil, let value = varint() else { return nil }; message = .acknowledge(sequence: value)
            case .field(4, 0): guard message == nil, let value = varint() else { return nil }; message = .requestTransfer(attempt: value)
            case .field(5, 2):
                guard message == nil, let ack = self.message({ $0.chunkAck() }) else { return nil }
                message = .acknowledgeChunk(attempt: ack.attempt, chunk: ack.chunk)
            default: return nil
            }
        }
    }

    mutating func chunkAck() -> (attempt: UInt64, chunk: UInt32)? {
        var attempt: UInt64 = 0, chunk: UInt32 = 0
        while true {
            switch next() {
            case .end: return (attempt, chunk)
            case .field(1, 0): guard let value = varint() else { return nil }; attempt = value
            case .field(2, 0): guard let value = uint32() else { return nil }; chunk = value
            default: return nil
            }
        }
    }

    // MARK: model.proto

    /// Valid as `Sessionfed_V1_Delta.model()` requires, or nil.
    mutating func delta() -> Delta? {
        var key: [UInt8] = [], dot: Dot?, timestamp = HLCTimestamp(physicalMilliseconds: 0, logical: 0)
        // Absent, they are what the generated code's empty messages convert to.
        var context = CausalContext(vector: VersionVector([:]), cloud: []), deletes = VersionVector([:])
        var operations: [SessionModel.Operation] = []
        while true {
            switch next(repeated: 1 << 6) {
            case .end:
                guard let dot, !operations.isEmpty, dot.counter <= Dot.maximumCounter - UInt64(operations.count) else { return nil }
                return Delta(key: key, dot: dot, timestamp: timestamp, context: context, deletes: deletes, operations: operations)
            case .field(1, 2): guard let value = bytes() else { return nil }; key = value
            case .field(2, 2): guard let value = message({ $0.dot() }) else { return nil }; dot = value
            case .field(3, 2): guard let value = message({ $0.timestamp() }) else { return nil }; timestamp = value
            case .field(4, 2): guard let value = message({ $0.causalContext() }) else { return nil }; context = value
            case .field(5, 2): guard let value = message({ $0.versionVector() }) else { return nil }; deletes = value
            case .field(6, 2): guard let value = message({ $0.operation() }) else { return nil }; operations.append(value)
            default: return nil
            }
        }
    }

    mutating func dot() -> Dot? {
        var site: UInt32 = 0, counter: UInt64 = 0
        while true {
            switch next() {
            case .end:
                guard counter >= 1, counter <= Dot.maximumCounter else { return nil }
                return Dot(site: SiteID(site), counter: counter)
            case .field(1, 0): guard let value = uint32() else { return nil }; site = value
            case .field(2, 0): guard let value = varint() else { return nil }; counter = value
            default: return nil
            }
        }
    }

    mutating func timestamp() -> HLCTimestamp? {
        var physical: UInt64 = 0, logical: UInt32 = 0
        while true {
            switch next() {
            case .end: return HLCTimestamp(physicalMilliseconds: physical, logical: logical)
            case .field(1, 0): guard let value = varint() else { return nil }; physical = value
            case .field(2, 0): guard let value = uint32() else { return nil }; logical = value
            default: return nil
            }
        }
    }

    /// Runs only (field 3): single dots (field 2), which the encoders no longer write, are left
    /// to the generated code.
    mutating func causalContext() -> CausalContext? {
        var vector = VersionVector([:]), runs: [DotRange] = []
        while true {
            switch next(repeated: 1 << 3) {
            case .end: return CausalContext(vector: vector, cloud: runs)
            case .field(1, 2): guard let value = message({ $0.versionVector() }) else { return nil }; vector = value
            case .field(3, 2): guard let value = message({ $0.dotRange() }) else { return nil }; runs.append(value)
            default: return nil
            }
        }
    }

    mutating func dotRange() -> DotRange? {
        var site: UInt32 = 0, first: UInt64 = 0, last: UInt64 = 0
        while true {
            switch next() {
            case .end:
                guard first >= 1, first <= last, last <= Dot.maximumCounter else { return nil }
                return DotRange(site: SiteID(site), first: first, last: last)
            case .field(1, 0): guard let value = uint32() else { return nil }; site = value
            case .field(2, 0): guard let value = varint() else { return nil }; first = value
            case .field(3, 0): guard let value = varint() else { return nil }; last = value
            default: return nil
            }
        }
    }

    mutating func versionVector() -> VersionVector? {
        var counters: [SiteID: UInt64] = [:]
        while true {
            switch next(repeated: 1 << 1) {
            case .end: return VersionVector(counters)
            case .field(1, 2):
                guard let (site, counter) = message({ $0.versionVectorEntry() }), counters[site] == nil, counter <= Dot.maximumCounter else { return nil }
                counters[site] = counter
            default: return nil
            }
        }
    }

    mutating func versionVectorEntry() -> (SiteID, UInt64)? {
        var site: UInt32 = 0, counter: UInt64 = 0
        while true {
            switch next() {
            case .end: return (SiteID(site), counter)
            case .field(1, 0): guard let value = uint32() else { return nil }; site = value
            case .field(2, 0): guard let value = varint() else { return nil }; counter = value
            default: return nil
            }
        }
    }

    /// A oneof: exactly one member.
    mutating func operation() -> SessionModel.Operation? {
        let operation: SessionModel.Operation?
        switch next() {
        case .field(1, 2): operation = bytes().map { .setString($0) }
        case .field(2, 2): operation = message { $0.pair() }.map { .setField($0.0, value: $0.1) }
        case .field(3, 2): operation = bytes().map { .removeField($0) }
        case .field(4, 2): operation = bytes().map { .addMember($0) }
        case .field(5, 2): operation = bytes().map { .removeMember($0) }
        case .field(6, 0): operation = varint().map { .expire(atMilliseconds: $0) }
        case .field(7, 0): operation = bool().map { _ in .persist }
        case .field(8, 0): operation = bool().map { _ in .deleteKey }
        case .field(9, 0): operation = bool().map { _ in .restartKey }
        case .field(10, 2): operation = message { $0.scoredMember() }.map { .setScore($0.0, score: $0.1) }
        case .field(11, 2): operation = bytes().map { .removeScoredMember($0) }
        default: return nil
        }
        guard isAtEnd else { return nil }
        return operation
    }

    mutating func pair() -> ([UInt8], [UInt8])? {
        var field: [UInt8] = [], value: [UInt8] = []
        while true {
            switch next() {
            case .end: return (field, value)
            case .field(1, 2): guard let bytes = bytes() else { return nil }; field = bytes
            case .field(2, 2): guard let bytes = bytes() else { return nil }; value = bytes
            default: return nil
            }
        }
    }

    mutating func scoredMember() -> ([UInt8], Double)? {
        var member: [UInt8] = [], score = 0.0
        while true {
            switch next() {
            case .end:
                guard !score.isNaN else { return nil }
                return (member, score)
            case .field(1, 2): guard let bytes = bytes() else { return nil }; member = bytes
            case .field(2, 1): guard let pattern = fixed64() else { return nil }; score = Double(bitPattern: pattern)
            default: return nil
            }
        }
    }
}
