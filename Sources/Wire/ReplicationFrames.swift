#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Replication
import SessionModel

/// A client's command forwarded to the primary of its keys' partition.
public struct ForwardedCommand: Hashable, Sendable {
    /// The sender's number for the request; the reply echoes it.
    public var request: UInt64
    public var arguments: [[UInt8]]
    /// The client's RESP version (2 or 3): the reply is encoded for it.
    public var protocolVersion: UInt32

    public init(request: UInt64, arguments: [[UInt8]], protocolVersion: UInt32) {
        self.request = request
        self.arguments = arguments
        self.protocolVersion = protocolVersion
    }
}

/// The primary's answer to a forwarded command.
public struct ForwardedReply: Hashable, Sendable {
    public var request: UInt64
    /// RESP bytes, ready for the client.
    public var reply: [UInt8]
    /// Not run: the receiver is not the primary now; the sender routes again.
    public var notPrimary: Bool

    public init(request: UInt64, reply: [UInt8], notPrimary: Bool) {
        self.request = request
        self.reply = reply
        self.notPrimary = notPrimary
    }
}

/// Primary → backup: writes of one partition at one epoch, numbered contiguously.
public struct PartitionWrites: Hashable, Sendable {
    public var partition: UInt32
    public var epoch: UInt64
    public var firstSequence: UInt64
    public var writes: [ReplicatedWrite]

    public init(partition: UInt32, epoch: UInt64, firstSequence: UInt64, writes: [ReplicatedWrite]) {
        self.partition = partition
        self.epoch = epoch
        self.firstSequence = firstSequence
        self.writes = writes
    }
}

/// Primary → backup: one chunk of a state transfer.
public struct TransferChunk: Hashable, Sendable {
    public var partition: UInt32
    public var epoch: UInt64
    public var attempt: UInt64
    public var chunk: UInt32
    public var baseSequence: UInt64
    public var keys: [TransferredKey]
    public var last: Bool

    public init(partition: UInt32, epoch: UInt64, attempt: UInt64, chunk: UInt32, baseSequence: UInt64, keys: [TransferredKey], last: Bool) {
        self.partition = partition
        self.epoch = epoch
        self.attempt = attempt
        self.chunk = chunk
        self.baseSequence = baseSequence
        self.keys = keys
        self.last = last
    }
}

/// Backup → primary, about one partition at one epoch.
public struct BackupReport: Hashable, Sendable {
    public var partition: UInt32
    public var epoch: UInt64
    public var message: BackupMessage

    public init(partition: UInt32, epoch: UInt64, message: BackupMessage) {
        self.partition = partition
        self.epoch = epoch
        self.message = message
    }
}

extension Sessionfed_V1_ReplicatedWrite {
    init(_ write: ReplicatedWrite) {
        self.init()
        deltas = write.deltas.map(Sessionfed_V1_Delta.init)
        expiredKeys = write.expiredKeys.map { Data($0) }
    }

    func model() throws(WireError) -> ReplicatedWrite {
        var result = ReplicatedWrite()
        result.deltas.reserveCapacity(deltas.count)
        for delta in deltas { result.deltas.append(try delta.model()) }
        result.expiredKeys = expiredKeys.map { Array($0) }
        return result
    }
}

extension Frame {
    /// The wire body of the data-plane frames (nil for the others).
    var replicationBody: Sessionfed_V1_Frame.OneOf_Body? {
        switch self {
        case .forwardedCommand(let command):
            var wire = Sessionfed_V1_ForwardedCommand()
            wire.request = command.request
            wire.arguments = command.arguments.map { Data($0) }
            wire.protocol = command.protocolVersion
            return .forwardedCommand(wire)
        case .forwardedReply(let reply):
            var wire = Sessionfed_V1_ForwardedReply()
            wire.request = reply.request
            wire.reply = Data(reply.reply)
            wire.notPrimary = reply.notPrimary
            return .forwardedReply(wire)
        case .partitionWrites(let batch):
            var wire = Sessionfed_V1_PartitionWrites()
            wire.partition = batch.partition
            wire.epoch = batch.epoch
            wire.firstSequence = batch.firstSequence
            wire.writes = batch.writes.map(Sessionfed_V1_ReplicatedWrite.init)
            return .partitionWrites(wire)
        case .transferChunk(let chunk):
            var wire = Sessionfed_V1_TransferChunk()
            wire.partition = chunk.partition
            wire.epoch = chunk.epoch
            wire.attempt = chunk.attempt
            wire.chunk = chunk.chunk
            wire.baseSequence = chunk.baseSequence
            wire.states = chunk.keys.map { Sessionfed_V1_KeyState(key: $0.key, state: $0.state) }
            wire.last = chunk.last
            return .transferChunk(wire)
        case .backupReport(let report):
            var wire = Sessionfed_V1_BackupReport()
            wire.partition = report.partition
            wire.epoch = report.epoch
            switch report.message {
            case .acknowledge(let sequence): wire.kind = .acknowledge(sequence)
            case .requestTransfer(let attempt): wire.kind = .requestTransfer(attempt)
            case .acknowledgeChunk(let attempt, let chunk):
                var ack = Sessionfed_V1_ChunkAck()
                ack.attempt = attempt
                ack.chunk = chunk
                wire.kind = .acknowledgeChunk(ack)
            }
            return .backupReport(wire)
        default:
            return nil
        }
    }

    /// The model of a data-plane frame body (nil for the others).
    static func replication(from body: Sessionfed_V1_Frame.OneOf_Body) throws(WireError) -> Frame? {
        switch body {
        case .forwardedCommand(let wire):
            guard !wire.arguments.isEmpty else { throw .missingField(message: "ForwardedCommand", field: "arguments") }
            guard wire.protocol == 2 || wire.protocol == 3 else {
                throw .invalidValue(message: "ForwardedCommand", field: "protocol", reason: "\(wire.protocol) is not a RESP version (2 or 3)")
            }
            return .forwardedCommand(ForwardedCommand(request: wire.request, arguments: wire.arguments.map { Array($0) }, protocolVersion: wire.protocol))
        case .forwardedReply(let wire):
            guard wire.notPrimary || !wire.reply.isEmpty else { throw .missingField(message: "ForwardedReply", field: "reply") }
            return .forwardedReply(ForwardedReply(request: wire.request, reply: Array(wire.reply), notPrimary: wire.notPrimary))
        case .partitionWrites(let wire):
            guard wire.firstSequence > 0 else {
                throw .invalidValue(message: "PartitionWrites", field: "first_sequence", reason: "must be at least 1")
            }
            guard wire.firstSequence <= UInt64.max - UInt64(wire.writes.count) else {
                throw .invalidValue(message: "PartitionWrites", field: "first_sequence", reason: "sequence numbers overflow")
            }
            var writes: [ReplicatedWrite] = []
            writes.reserveCapacity(wire.writes.count)
            for write in wire.writes { writes.append(try write.model()) }
            return .partitionWrites(PartitionWrites(partition: wire.partition, epoch: wire.epoch, firstSequence: wire.firstSequence, writes: writes))
        case .transferChunk(let wire):
            var keys: [TransferredKey] = []
            keys.reserveCapacity(wire.states.count)
            for state in wire.states {
                let (key, model) = try state.model()
                keys.append(TransferredKey(key: key, state: model))
            }
            return .transferChunk(
                TransferChunk(
                    partition: wire.partition, epoch: wire.epoch, attempt: wire.attempt, chunk: wire.chunk,
                    baseSequence: wire.baseSequence, keys: keys, last: wire.last
                )
            )
        case .backupReport(let wire):
            let message: BackupMessage
            switch wire.kind {
            case .acknowledge(let sequence): message = .acknowledge(sequence: sequence)
            case .requestTransfer(let attempt): message = .requestTransfer(attempt: attempt)
            case .acknowledgeChunk(let ack): message = .acknowledgeChunk(attempt: ack.attempt, chunk: ack.chunk)
            case nil: throw .missingField(message: "BackupReport", field: "kind")
            }
            return .backupReport(BackupReport(partition: wire.partition, epoch: wire.epoch, message: message))
        default:
            return nil
        }
    }
}
