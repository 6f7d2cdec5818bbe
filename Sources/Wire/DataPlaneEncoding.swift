import Replication
import SessionModel

/// The data plane's hot frames (a forwarded command and its reply, a primary's writes to its
/// backup, the backup's acknowledgement) written straight into protobuf's wire format, byte for
/// byte what the generated code writes (`DataPlaneEncodingTests` compares the two).
///
/// Why: every replicated write sends three or four of these frames, and encoding each through
/// the generated messages built a tree of them first (a `Data` per bytes field) and walked it
/// twice, once to size it and once to write it: about a seventh of a site's CPU under a write
/// load (Benchmarks/README.md, "The replicated path"). Decoding still goes through the
/// generated code, which validates what a peer sends.
enum DataPlaneEncoding {
    /// The frame's message, or nil for a frame this encoder leaves to the generated code (every
    /// other kind, and writes carrying whole key states).
    static func encode(_ frame: Frame) -> [UInt8]? {
        var writer = ProtobufWriter()
        switch frame {
        case .forwardedCommand(let command):
            writer.message(14) { writer in
                writer.uint(1, command.request)
                for argument in command.arguments { writer.bytesField(2, argument, always: true) }
                writer.uint(3, UInt64(command.protocolVersion))
                writer.uint(4, UInt64(command.database))
            }
        case .forwardedReply(let reply):
            writer.message(15) { writer in
                writer.uint(1, reply.request)
                writer.bytesField(2, reply.reply)
                writer.bool(3, reply.notPrimary)
            }
        case .partitionWrites(let batch):
            guard batch.writes.allSatisfy({ $0.states.isEmpty }) else { return nil }
            writer.message(16) { writer in
                writer.uint(1, UInt64(batch.partition))
                writer.uint(2, batch.epoch)
                writer.uint(3, batch.firstSequence)
                for write in batch.writes {
                    writer.message(4) { writer in
                        for delta in write.deltas { writer.message(1) { $0.delta(delta) } }
                        for key in write.expiredKeys { writer.bytesField(2, key, always: true) }
                        for key in write.collectedKeys { writer.bytesField(4, key, always: true) }
                    }
                }
            }
        case .backupReport(let report):
            writer.message(18) { writer in
                writer.uint(1, UInt64(report.partition))
                writer.uint(2, report.epoch)
                switch report.message {
                case .acknowledge(let sequence): writer.uint(3, sequence, always: true)
                case .requestTransfer(let attempt): writer.uint(4, attempt, always: true)
                case .acknowledgeChunk(let attempt, let chunk):
                    writer.message(5) { writer in
                        writer.uint(1, attempt)
                        writer.uint(2, UInt64(chunk))
                    }
                }
            }
        default:
            return nil
        }
        return writer.encoded
    }
}

/// Protobuf's wire format, written in one pass: a nested message's length is written after
/// its body, which moves by the length's extra bytes when it is 128 bytes or more.
/// Fields follow the generated code's rules: proto3 scalars at their default are left out,
/// except a oneof's member and each element of a repeated field.
struct ProtobufWriter {
    private(set) var encoded: [UInt8] = []

    init() {
        encoded.reserveCapacity(128)
    }

    mutating func varint(_ value: UInt64) {
        var rest = value
        while rest >= 0x80 {
            encoded.append(UInt8(truncatingIfNeeded: rest) | 0x80)
            rest >>= 7
        }
        encoded.append(UInt8(rest))
    }

    mutating func tag(_ field: UInt32, wireType: UInt32) {
        varint(UInt64(field << 3 | wireType))
    }

    mutating func uint(_ field: UInt32, _ value: UInt64, always: Bool = false) {
        guard value != 0 || always else { return }
        tag(field, wireType: 0)
        varint(value)
    }

    mutating func bool(_ field: UInt32, _ value: Bool, always: Bool = false) {
        uint(field, value ? 1 : 0, always: always)
    }

    mutating func bytesField(_ field: UInt32, _ value: [UInt8], always: Bool = false) {
        guard !value.isEmpty || always else { return }
        tag(field, wireType: 2)
        varint(UInt64(value.count))
        encoded.append(contentsOf: value)
    }

    mutating func double(_ field: UInt32, _ value: Double) {
        // The generated code leaves out +0 only (it compares the bit pattern).
        guard value.bitPattern != 0 else { return }
        tag(field, wireType: 1)
        let pattern = value.bitPattern
        for shift in stride(from: 0, to: 64, by: 8) { encoded.append(UInt8(truncatingIfNeeded: pattern >> UInt64(shift))) }
    }

    /// A nested message (written even when empty, as a set message field is).
    mutating func message(_ field: UInt32, _ body: (inout ProtobufWriter) -> Void) {
        tag(field, wireType: 2)
        let lengthAt = encoded.count
        encoded.append(0)
        body(&self)
        let length = encoded.count - lengthAt - 1
        if length < 0x80 {
            encoded[lengthAt] = UInt8(length)
            return
        }
        let size = (64 - UInt64(length).leadingZeroBitCount + 6) / 7
        encoded.replaceSubrange(lengthAt..<lengthAt + 1, with: repeatElement(0, count: size))
        var rest = UInt64(length)
        for index in lengthAt..<lengthAt + size {
            encoded[index] = UInt8(truncatingIfNeeded: rest) | (index < lengthAt + size - 1 ? 0x80 : 0)
            rest >>= 7
        }
    }

    // MARK: The model's messages (model.proto)

    mutating func delta(_ delta: Delta) {
        bytesField(1, delta.key)
        message(2) { $0.dot(delta.dot) }
        message(3) { writer in
            writer.uint(1, delta.timestamp.physicalMilliseconds)
            writer.uint(2, UInt64(delta.timestamp.logical))
        }
        if !delta.context.isEmpty {
            message(4) { writer in
                writer.message(1) { $0.versionVector(delta.context.vector) }
                for run in delta.context.cloud {
                    writer.message(3) { writer in
                        writer.uint(1, UInt64(run.site.rawValue))
                        writer.uint(2, run.first)
                        writer.uint(3, run.last)
                    }
                }
            }
        }
        if !delta.deletes.isEmpty {
            message(5) { $0.versionVector(delta.deletes) }
        }
        for operation in delta.operations {
            message(6) { $0.operation(operation) }
        }
    }

    mutating func dot(_ dot: Dot) {
        uint(1, UInt64(dot.site.rawValue))
        uint(2, dot.counter)
    }

    mutating func versionVector(_ vector: VersionVector) {
        for entry in vector.entries {
            message(1) { writer in
                writer.uint(1, UInt64(entry.site.rawValue))
                writer.uint(2, entry.counter)
            }
        }
    }

    /// A oneof: its member is written even at its default value.
    mutating func operation(_ operation: SessionModel.Operation) {
        switch operation {
        case .setString(let value): bytesField(1, value, always: true)
        case .setField(let field, let value):
            message(2) { writer in
                writer.bytesField(1, field)
                writer.bytesField(2, value)
            }
        case .removeField(let field): bytesField(3, field, always: true)
        case .addMember(let member): bytesField(4, member, always: true)
        case .removeMember(let member): bytesField(5, member, always: true)
        case .expire(let at): uint(6, at, always: true)
        case .persist: bool(7, true, always: true)
        case .deleteKey: bool(8, true, always: true)
        case .restartKey: bool(9, true, always: true)
        case .setScore(let member, let score):
            message(10) { writer in
                writer.bytesField(1, member)
                writer.double(2, score)
            }
        case .removeScoredMember(let member): bytesField(11, member, always: true)
        }
    }
}
