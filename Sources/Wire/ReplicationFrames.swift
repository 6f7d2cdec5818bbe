#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Federation
import Replication
import SessionModel

/// A client's command forwarded to the primary of its keys' partition.
public struct ForwardedCommand: Hashable, Sendable {
    /// The sender's number for the request; the reply echoes it.
    public var request: UInt64
    public var arguments: [[UInt8]]
    /// The client's RESP version (2 or 3): the reply is encoded for it.
    public var protocolVersion: UInt32
    /// The client's database (SELECT), which SCAN lists; keys arrive as stored names.
    public var database: UInt32

    public init(request: UInt64, arguments: [[UInt8]], protocolVersion: UInt32, database: UInt32 = 0) {
        self.request = request
        self.arguments = arguments
        self.protocolVersion = protocolVersion
        self.database = database
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

/// A message published at one node of a site, for subscribers on the others.
public struct PublishedMessage: Hashable, Sendable {
    public var channel: [UInt8]
    public var message: [UInt8]

    public init(channel: [UInt8], message: [UInt8]) {
        self.channel = channel
        self.message = message
    }
}

/// A keyspace event raised at one node of a site (where the key's primary ran the command).
public struct SiteKeyspaceEvent: Hashable, Sendable {
    public var name: String
    public var key: [UInt8]
    /// Its `notify-keyspace-events` letter (g $ h s x e n).
    public var eventClass: Character

    public init(name: String, key: [UInt8], eventClass: Character) {
        self.name = name
        self.key = key
        self.eventClass = eventClass
    }
}

/// Coordinator → primary: lock these partitions and send the states of these keys.
public struct LockRequest: Hashable, Sendable {
    public var transaction: UInt64
    public var partitions: [UInt32]
    public var keys: [[UInt8]]

    public init(transaction: UInt64, partitions: [UInt32], keys: [[UInt8]]) {
        self.transaction = transaction
        self.partitions = partitions
        self.keys = keys
    }
}

/// Primary → coordinator: the lock (with the partitions' epochs and the keys' states), or a
/// refusal (not primary of them all now, or one is locked by another transaction).
public struct LockReply: Hashable, Sendable {
    public var transaction: UInt64
    public var granted: Bool
    public var epochs: [UInt32: UInt64]
    public var keys: [TransferredKey]

    public init(transaction: UInt64, granted: Bool, epochs: [UInt32: UInt64] = [:], keys: [TransferredKey] = []) {
        self.transaction = transaction
        self.granted = granted
        self.epochs = epochs
        self.keys = keys
    }
}

/// Coordinator → primary: a question about partitions it leads (a keyless command over a
/// site of several nodes).
public struct PartitionQuery: Hashable, Sendable {
    public enum Kind: Hashable, Sendable {
        case count
        case keysMatching([UInt8])
        case flush
    }

    public var request: UInt64
    public var partitions: [UInt32]
    public var kind: Kind
    /// The client's database (SELECT); nil: every database (FLUSHALL).
    public var database: UInt32?

    public init(request: UInt64, partitions: [UInt32], kind: Kind, database: UInt32?) {
        self.request = request
        self.partitions = partitions
        self.kind = kind
        self.database = database
    }
}

public struct PartitionQueryReply: Hashable, Sendable {
    public var request: UInt64
    public var notPrimary: Bool
    public var count: UInt64
    public var keys: [[UInt8]]

    public init(request: UInt64, notPrimary: Bool, count: UInt64 = 0, keys: [[UInt8]] = []) {
        self.request = request
        self.notPrimary = notPrimary
        self.count = count
        self.keys = keys
    }
}

/// Another site's deltas, or key states an anti-entropy round brought, for the primary of
/// `partition` to merge and replicate.
public struct RemoteDeltas: Hashable, Sendable {
    public var request: UInt64
    public var partition: UInt32
    public var fromSite: SiteID
    public var deltas: [Delta]
    public var states: [TransferredKey]
    /// Keys every site agreed to collect, each in the state they agreed on.
    public var collect: [KeyDigest]

    public init(request: UInt64, partition: UInt32, fromSite: SiteID, deltas: [Delta], states: [TransferredKey] = [], collect: [KeyDigest] = []) {
        self.request = request
        self.partition = partition
        self.fromSite = fromSite
        self.deltas = deltas
        self.states = states
        self.collect = collect
    }
}

/// Another site's anti-entropy request about one partition (`merkleLeavesRequest` or
/// `bucketDigests`), for the partition's primary to answer from its copy.
public struct RemoteRoundRequest: Hashable, Sendable {
    public var request: UInt64
    public var partition: UInt32
    public var fromSite: SiteID
    public var message: FederationMessage

    public init(request: UInt64, partition: UInt32, fromSite: SiteID, message: FederationMessage) {
        self.request = request
        self.partition = partition
        self.fromSite = fromSite
        self.message = message
    }
}

/// The primary's answers (`merkleLeaves` or `bucketRepair` messages) for the requesting site.
public struct RemoteRoundAnswer: Hashable, Sendable {
    public var request: UInt64
    public var notPrimary: Bool
    public var messages: [FederationMessage]

    public init(request: UInt64, notPrimary: Bool, messages: [FederationMessage]) {
        self.request = request
        self.notPrimary = notPrimary
        self.messages = messages
    }
}

public struct RemoteDeltasApplied: Hashable, Sendable {
    public var request: UInt64
    public var notPrimary: Bool

    public init(request: UInt64, notPrimary: Bool) {
        self.request = request
        self.notPrimary = notPrimary
    }
}

extension TransferredKey {
    init(wire: Sessionfed_V1_KeyState) throws(WireError) {
        let (key, state) = try wire.model()
        self.init(key: key, state: state)
    }
}

extension Sessionfed_V1_ReplicatedWrite {
    init(_ write: ReplicatedWrite) {
        self.init()
        deltas = write.deltas.map(Sessionfed_V1_Delta.init)
        expiredKeys = write.expiredKeys.map { Data($0) }
        states = write.states.map { Sessionfed_V1_KeyState(key: $0.key, state: $0.state) }
        collectedKeys = write.collectedKeys.map { Data($0) }
    }

    func model() throws(WireError) -> ReplicatedWrite {
        var result = ReplicatedWrite()
        result.deltas.reserveCapacity(deltas.count)
        for delta in deltas { result.deltas.append(try delta.model()) }
        result.expiredKeys = expiredKeys.map { Array($0) }
        result.states = try states.map(TransferredKey.init(wire:))
        result.collectedKeys = collectedKeys.map { Array($0) }
        return result
    }
}

extension Frame {
    /// The databases a client may SELECT (0–15), as the keyspace numbers them; a peer naming
    /// another is refused here, before anything runs.
    static let databaseCount: UInt32 = 16

    /// The wire body of the data-plane frames (nil for the others).
    var replicationBody: Sessionfed_V1_Frame.OneOf_Body? {
        switch self {
        case .forwardedCommand(let command):
            var wire = Sessionfed_V1_ForwardedCommand()
            wire.request = command.request
            wire.arguments = command.arguments.map { Data($0) }
            wire.protocol = command.protocolVersion
            wire.database = command.database
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
        case .siteMessages(let published, let events):
            var wire = Sessionfed_V1_SiteMessages()
            wire.published = published.map { message in
                var entry = Sessionfed_V1_PublishedMessage()
                entry.channel = Data(message.channel)
                entry.message = Data(message.message)
                return entry
            }
            wire.events = events.map { event in
                var entry = Sessionfed_V1_SiteKeyspaceEvent()
                entry.name = event.name
                entry.key = Data(event.key)
                entry.eventClass = String(event.eventClass)
                return entry
            }
            return .siteMessages(wire)
        case .subscriberInterest(let listening):
            var wire = Sessionfed_V1_SubscriberInterest()
            wire.listening = listening
            return .subscriberInterest(wire)
        case .lockRequest(let request):
            var wire = Sessionfed_V1_LockRequest()
            wire.transaction = request.transaction
            wire.partitions = request.partitions
            wire.keys = request.keys.map { Data($0) }
            return .lockRequest(wire)
        case .lockReply(let reply):
            var wire = Sessionfed_V1_LockReply()
            wire.transaction = reply.transaction
            wire.granted = reply.granted
            wire.epochs = reply.epochs.keys.sorted().map { partition in
                var entry = Sessionfed_V1_PartitionEpoch()
                entry.partition = partition
                entry.epoch = reply.epochs[partition]!
                return entry
            }
            wire.states = reply.keys.map { Sessionfed_V1_KeyState(key: $0.key, state: $0.state) }
            return .lockReply(wire)
        case .transactionWrites(let transaction, let writes):
            var wire = Sessionfed_V1_TransactionWrites()
            wire.transaction = transaction
            wire.writes = writes.map { batch in
                var entry = Sessionfed_V1_PartitionWrites()
                entry.partition = batch.partition
                entry.epoch = batch.epoch
                entry.firstSequence = batch.firstSequence
                entry.writes = batch.writes.map(Sessionfed_V1_ReplicatedWrite.init)
                return entry
            }
            return .transactionWrites(wire)
        case .transactionDone(let transaction, let applied):
            var wire = Sessionfed_V1_TransactionDone()
            wire.transaction = transaction
            wire.applied = applied
            return .transactionDone(wire)
        case .partitionQuery(let query):
            var wire = Sessionfed_V1_PartitionQuery()
            wire.request = query.request
            wire.partitions = query.partitions
            switch query.kind {
            case .count: wire.kind = .count(true)
            case .keysMatching(let pattern): wire.kind = .keysMatching(Data(pattern))
            case .flush: wire.kind = .flush(true)
            }
            if let database = query.database { wire.database = database } else { wire.everyDatabase = true }
            return .partitionQuery(wire)
        case .partitionQueryReply(let reply):
            var wire = Sessionfed_V1_PartitionQueryReply()
            wire.request = reply.request
            wire.notPrimary = reply.notPrimary
            wire.count = reply.count
            wire.keys = reply.keys.map { Data($0) }
            return .partitionQueryReply(wire)
        case .remoteDeltas(let batch):
            var wire = Sessionfed_V1_RemoteDeltas()
            wire.request = batch.request
            wire.partition = batch.partition
            wire.fromSite = batch.fromSite.rawValue
            wire.deltas = batch.deltas.map(Sessionfed_V1_Delta.init)
            wire.states = batch.states.map { Sessionfed_V1_KeyState(key: $0.key, state: $0.state) }
            wire.collect = batch.collect.map(\.wire)
            return .remoteDeltas(wire)
        case .remoteDeltasApplied(let reply):
            var wire = Sessionfed_V1_RemoteDeltasApplied()
            wire.request = reply.request
            wire.notPrimary = reply.notPrimary
            return .remoteDeltasApplied(wire)
        case .remoteRoundRequest(let request):
            var wire = Sessionfed_V1_RemoteRoundRequest()
            wire.request = request.request
            wire.partition = request.partition
            wire.fromSite = request.fromSite.rawValue
            // The contract nests a whole `sessionfed.v1.Frame`.
            wire.frame = Data(WireMessage.encode(Frame.federation(request.message).wire))
            return .remoteRoundRequest(wire)
        case .remoteRoundAnswer(let answer):
            var wire = Sessionfed_V1_RemoteRoundAnswer()
            wire.request = answer.request
            wire.notPrimary = answer.notPrimary
            wire.frames = answer.messages.map { Data(WireMessage.encode(Frame.federation($0).wire)) }
            return .remoteRoundAnswer(wire)
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
            guard wire.database < Self.databaseCount else {
                throw .invalidValue(message: "ForwardedCommand", field: "database", reason: "\(wire.database) is not a database (0–\(Self.databaseCount - 1))")
            }
            return .forwardedCommand(
                ForwardedCommand(request: wire.request, arguments: wire.arguments.map { Array($0) }, protocolVersion: wire.protocol, database: wire.database)
            )
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
            let keys = try wire.states.map(TransferredKey.init(wire:))
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
        case .siteMessages(let wire):
            var events: [SiteKeyspaceEvent] = []
            for event in wire.events {
                guard event.eventClass.count == 1, let letter = event.eventClass.first, "g$hszxen".contains(letter) else {
                    throw .invalidValue(message: "SiteKeyspaceEvent", field: "event_class", reason: "'\(event.eventClass.prefix(8))' is not a keyspace event class")
                }
                events.append(SiteKeyspaceEvent(name: event.name, key: Array(event.key), eventClass: letter))
            }
            return .siteMessages(
                published: wire.published.map { PublishedMessage(channel: Array($0.channel), message: Array($0.message)) }, events: events
            )
        case .subscriberInterest(let wire):
            return .subscriberInterest(listening: wire.listening)
        case .lockRequest(let wire):
            return .lockRequest(LockRequest(transaction: wire.transaction, partitions: wire.partitions, keys: wire.keys.map { Array($0) }))
        case .lockReply(let wire):
            var epochs: [UInt32: UInt64] = [:]
            for entry in wire.epochs { epochs[entry.partition] = entry.epoch }
            let keys = try wire.states.map(TransferredKey.init(wire:))
            return .lockReply(LockReply(transaction: wire.transaction, granted: wire.granted, epochs: epochs, keys: keys))
        case .transactionWrites(let wire):
            var batches: [PartitionWrites] = []
            for entry in wire.writes {
                var writes: [ReplicatedWrite] = []
                for write in entry.writes { writes.append(try write.model()) }
                batches.append(PartitionWrites(partition: entry.partition, epoch: entry.epoch, firstSequence: entry.firstSequence, writes: writes))
            }
            return .transactionWrites(transaction: wire.transaction, batches)
        case .transactionDone(let wire):
            return .transactionDone(transaction: wire.transaction, applied: wire.applied)
        case .partitionQuery(let wire):
            let kind: PartitionQuery.Kind
            switch wire.kind {
            case .count: kind = .count
            case .keysMatching(let pattern): kind = .keysMatching(Array(pattern))
            case .flush: kind = .flush
            case nil: throw .missingField(message: "PartitionQuery", field: "kind")
            }
            guard wire.database < Self.databaseCount else {
                throw .invalidValue(message: "PartitionQuery", field: "database", reason: "\(wire.database) is not a database (0–\(Self.databaseCount - 1))")
            }
            return .partitionQuery(PartitionQuery(request: wire.request, partitions: wire.partitions, kind: kind, database: wire.everyDatabase ? nil : wire.database))
        case .partitionQueryReply(let wire):
            return .partitionQueryReply(PartitionQueryReply(request: wire.request, notPrimary: wire.notPrimary, count: wire.count, keys: wire.keys.map { Array($0) }))
        case .remoteDeltas(let wire):
            guard !wire.deltas.isEmpty || !wire.states.isEmpty || !wire.collect.isEmpty else { throw .missingField(message: "RemoteDeltas", field: "deltas") }
            var deltas: [Delta] = []
            deltas.reserveCapacity(wire.deltas.count)
            for delta in wire.deltas { deltas.append(try delta.model()) }
            let states = try wire.states.map(TransferredKey.init(wire:))
            let collect = try wire.collect.map(KeyDigest.init(wire:))
            return .remoteDeltas(
                RemoteDeltas(request: wire.request, partition: wire.partition, fromSite: SiteID(wire.fromSite), deltas: deltas, states: states, collect: collect)
            )
        case .remoteDeltasApplied(let wire):
            return .remoteDeltasApplied(RemoteDeltasApplied(request: wire.request, notPrimary: wire.notPrimary))
        case .remoteRoundRequest(let wire):
            guard !wire.frame.isEmpty else { throw .missingField(message: "RemoteRoundRequest", field: "frame") }
            let inner = try WireMessage.decode(Sessionfed_V1_Frame.self, from: Array(wire.frame))
            // The kind is checked before the inner frame is converted: a frame nesting frames
            // nesting frames must be refused at the first level, not recursed into.
            switch inner.body {
            case .merkleLeavesRequest, .bucketDigests, .collectionCheck: break
            default:
                throw .invalidValue(message: "RemoteRoundRequest", field: "frame", reason: "not an anti-entropy or collection request about one partition")
            }
            let message = try nestedMessage(inner, in: "RemoteRoundRequest", field: "frame")
            return .remoteRoundRequest(RemoteRoundRequest(request: wire.request, partition: wire.partition, fromSite: SiteID(wire.fromSite), message: message))
        case .remoteRoundAnswer(let wire):
            var messages: [FederationMessage] = []
            for entry in wire.frames {
                let inner = try WireMessage.decode(Sessionfed_V1_Frame.self, from: Array(entry))
                switch inner.body {
                case .merkleLeaves, .bucketRepair, .collectionVote: messages.append(try nestedMessage(inner, in: "RemoteRoundAnswer", field: "frames"))
                default:
                    throw .invalidValue(message: "RemoteRoundAnswer", field: "frames", reason: "not an answer to an anti-entropy or collection request")
                }
            }
            return .remoteRoundAnswer(RemoteRoundAnswer(request: wire.request, notPrimary: wire.notPrimary, messages: messages))
        default:
            return nil
        }
    }

    /// The federation message of a frame nested in a remote round's request or answer; a
    /// frame of any other kind (the caller checked which it expects) is refused.
    static func nestedMessage(_ inner: Sessionfed_V1_Frame, in message: String, field: String) throws(WireError) -> FederationMessage {
        guard case .federation(let nested) = try Frame(wire: inner) else {
            throw .invalidValue(message: message, field: field, reason: "the nested frame is not a federation message")
        }
        return nested
    }
}
