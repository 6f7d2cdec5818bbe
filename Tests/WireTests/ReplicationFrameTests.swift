import Federation
import Foundation
import Replication
import SessionModel
import SwiftProtobuf
import Testing
@testable import Wire

@Suite struct ReplicationFrameTests {
    static let frames: [Frame] = [
        .forwardedCommand(ForwardedCommand(request: 7, arguments: [Array("SET".utf8), [0, 255], []], protocolVersion: 3)),
        .forwardedCommand(ForwardedCommand(request: 8, arguments: [Array("SCAN".utf8), Array("0".utf8)], protocolVersion: 2, database: 15)),
        .forwardedReply(ForwardedReply(request: 7, reply: Array("+OK\r\n".utf8), notPrimary: false)),
        .forwardedReply(ForwardedReply(request: UInt64.max, reply: [], notPrimary: true)),
        .partitionWrites(
            PartitionWrites(
                partition: 63, epoch: 9, firstSequence: 100,
                writes: [ReplicatedWrite(deltas: Samples.deltas(), expiredKeys: [[1], []]), ReplicatedWrite()]
            )
        ),
        .transferChunk(
            TransferChunk(
                partition: 2, epoch: 3, attempt: 4, chunk: 5, baseSequence: 6,
                keys: [TransferredKey(key: [9], state: Samples.state())], last: true
            )
        ),
        .backupReport(BackupReport(partition: 1, epoch: 2, message: .acknowledge(sequence: 3))),
        .backupReport(BackupReport(partition: 1, epoch: 2, message: .requestTransfer(attempt: 4))),
        .backupReport(BackupReport(partition: 1, epoch: 2, message: .acknowledgeChunk(attempt: 4, chunk: 5))),
        .siteMessages(
            published: [PublishedMessage(channel: Array("spring:session:event:0:created:1".utf8), message: [0, 1])],
            events: [SiteKeyspaceEvent(name: "expired", key: Array("k".utf8), eventClass: "x"), SiteKeyspaceEvent(name: "hset", key: [], eventClass: "h"), SiteKeyspaceEvent(name: "zadd", key: [1], eventClass: "z")]
        ),
        .siteMessages(published: [], events: []),
        .subscriberInterest(listening: true),
        .subscriberInterest(listening: false),
        .lockRequest(LockRequest(transaction: 3, partitions: [1, 15], keys: [Array("a".utf8), []])),
        .lockReply(LockReply(transaction: 3, granted: true, epochs: [1: 4, 15: 2], keys: [TransferredKey(key: [1], state: Samples.state())])),
        .lockReply(LockReply(transaction: 3, granted: false)),
        .transactionWrites(transaction: 3, [PartitionWrites(partition: 1, epoch: 4, firstSequence: 0, writes: [ReplicatedWrite(deltas: Samples.deltas())])]),
        .transactionWrites(transaction: 3, []),
        .transactionDone(transaction: 3, applied: true),
        .partitionQuery(PartitionQuery(request: 9, partitions: [0, 3], kind: .count, database: 0)),
        .partitionQuery(PartitionQuery(request: 9, partitions: [], kind: .keysMatching(Array("sess:*".utf8)), database: 15)),
        .partitionQuery(PartitionQuery(request: 9, partitions: [5], kind: .flush, database: 1)),
        .partitionQuery(PartitionQuery(request: 9, partitions: [5], kind: .flush, database: nil)),
        .partitionQueryReply(PartitionQueryReply(request: 9, notPrimary: false, count: 12, keys: [[1], []])),
        .partitionQueryReply(PartitionQueryReply(request: 9, notPrimary: true)),
        .remoteDeltas(RemoteDeltas(request: 11, partition: 15, fromSite: SiteID(2), deltas: Samples.deltas())),
        .remoteDeltasApplied(RemoteDeltasApplied(request: 11, notPrimary: false)),
        .remoteDeltasApplied(RemoteDeltasApplied(request: 11, notPrimary: true)),
        .remoteDeltas(RemoteDeltas(request: 12, partition: 3, fromSite: SiteID(2), deltas: [], states: [TransferredKey(key: [4], state: Samples.state())])),
        .remoteDeltas(RemoteDeltas(request: 14, partition: 3, fromSite: SiteID(1), deltas: [], collect: [KeyDigest(key: [4], digest: StateDigest(high: 3, low: 4))])),
        .partitionWrites(PartitionWrites(partition: 3, epoch: 2, firstSequence: 2, writes: [ReplicatedWrite(collectedKeys: [[4], [5, 6]])])),
        .remoteRoundRequest(
            RemoteRoundRequest(request: 15, partition: 3, fromSite: SiteID(3), message: .collectionCheck(round: 4, [KeyDigest(key: [4], digest: StateDigest(high: 3, low: 4))]))
        ),
        .remoteRoundAnswer(RemoteRoundAnswer(request: 15, notPrimary: false, messages: [.collectionVote(round: 4, agreed: [[4]], partitions: [3])])),
        .partitionWrites(
            PartitionWrites(partition: 3, epoch: 2, firstSequence: 1, writes: [ReplicatedWrite(states: [TransferredKey(key: [], state: Samples.state())])])
        ),
        .remoteRoundRequest(RemoteRoundRequest(request: 13, partition: 5, fromSite: SiteID(3), message: .merkleLeavesRequest(round: 2, partitions: [5]))),
        .remoteRoundRequest(
            RemoteRoundRequest(
                request: 13, partition: 5, fromSite: SiteID(3),
                message: .bucketDigests(round: 2, chunk: 7, [Bucket(partition: 5, leaf: 1, keys: [KeyDigest(key: [1], digest: StateDigest(high: 1, low: 2))])])
            )
        ),
        .remoteRoundAnswer(RemoteRoundAnswer(request: 13, notPrimary: true, messages: [])),
        .remoteRoundAnswer(
            RemoteRoundAnswer(
                request: 13, notPrimary: false,
                messages: [.bucketRepair(BucketRepair(round: 2, chunk: 7, last: true, states: [KeyStateRecord(key: [1], state: Samples.state())], wanted: [[2]]))]
            )
        ),
    ]

    @Test(arguments: frames) func replicationFrame_roundTrips_evenByteByByte(frame: Frame) throws {
        let bytes = FrameCodec.encode(frame)
        var decoder = FrameDecoder()
        for byte in bytes.dropLast() {
            decoder.append([byte])
            #expect(try decoder.next() == nil)
        }
        decoder.append([bytes.last!])
        #expect(try decoder.next() == frame)
        #expect(decoder.bufferedBytes == 0)
    }

    static func decode(_ body: Sessionfed_V1_Frame.OneOf_Body) throws(WireError) -> Frame {
        var frame = Sessionfed_V1_Frame()
        frame.body = body
        return try Frame(wire: frame)
    }

    @Test func forwardedCommand_withoutArguments_isRefused() {
        var wire = Sessionfed_V1_ForwardedCommand()
        wire.protocol = 2
        #expect(throws: WireError.missingField(message: "ForwardedCommand", field: "arguments")) { try Self.decode(.forwardedCommand(wire)) }
    }

    @Test func remoteDeltas_withoutDeltas_isRefused() {
        var wire = Sessionfed_V1_RemoteDeltas()
        wire.request = 1
        #expect(throws: WireError.missingField(message: "RemoteDeltas", field: "deltas")) { try Self.decode(.remoteDeltas(wire)) }
    }

    @Test func remoteRoundRequest_carryingAnythingButARoundRequest_isRefused() {
        var wire = Sessionfed_V1_RemoteRoundRequest()
        #expect(throws: WireError.missingField(message: "RemoteRoundRequest", field: "frame")) { try Self.decode(.remoteRoundRequest(wire)) }
        // A request that nests another request (or any other frame) would let a peer recurse.
        let nested = Frame.remoteRoundRequest(RemoteRoundRequest(request: 1, partition: 0, fromSite: SiteID(2), message: .merkleLeavesRequest(round: 1, partitions: [0])))
        wire.frame = Data(WireMessage.encode(nested.wire))
        #expect(throws: WireError.self) { try Self.decode(.remoteRoundRequest(wire)) }
        wire.frame = Data([0xff, 0xff])
        #expect(throws: WireError.self) { try Self.decode(.remoteRoundRequest(wire)) }
        var answer = Sessionfed_V1_RemoteRoundAnswer()
        answer.frames = [Data(WireMessage.encode(Frame.heartbeat(sentAtMilliseconds: 1, roles: nil).wire))]
        #expect(throws: WireError.self) { try Self.decode(.remoteRoundAnswer(answer)) }
    }

    @Test func forwardedCommand_unknownProtocol_isRefused() {
        var wire = Sessionfed_V1_ForwardedCommand()
        wire.arguments = [Data("PING".utf8)]
        wire.protocol = 4
        #expect(throws: WireError.self) { try Self.decode(.forwardedCommand(wire)) }
    }

    /// A database a client could not SELECT, from a peer, is refused before anything runs.
    @Test func forwardedCommandAndPartitionQuery_databaseOutsideZeroToFifteen_isRefused() {
        var command = Sessionfed_V1_ForwardedCommand()
        command.arguments = [Data("SCAN".utf8), Data("0".utf8)]
        command.protocol = 2
        command.database = 15
        #expect(throws: Never.self) { try Self.decode(.forwardedCommand(command)) }
        command.database = 16
        #expect(throws: WireError.self) { try Self.decode(.forwardedCommand(command)) }
        var query = Sessionfed_V1_PartitionQuery()
        query.count = true
        query.database = 15
        #expect(throws: Never.self) { try Self.decode(.partitionQuery(query)) }
        query.database = 16
        #expect(throws: WireError.self) { try Self.decode(.partitionQuery(query)) }
    }

    @Test func partitionWrites_sequenceZeroOrOverflowing_isRefused() {
        var wire = Sessionfed_V1_PartitionWrites()
        wire.writes = [Sessionfed_V1_ReplicatedWrite()]
        #expect(throws: WireError.self) { try Self.decode(.partitionWrites(wire)) }
        wire.firstSequence = UInt64.max
        #expect(throws: WireError.self) { try Self.decode(.partitionWrites(wire)) }
        wire.firstSequence = UInt64.max - 1
        #expect(throws: Never.self) { try Self.decode(.partitionWrites(wire)) }
    }

    @Test func siteKeyspaceEvent_unknownClass_isRefused() {
        var event = Sessionfed_V1_SiteKeyspaceEvent()
        event.name = "del"
        event.eventClass = "gx"
        var wire = Sessionfed_V1_SiteMessages()
        wire.events = [event]
        #expect(throws: WireError.self) { try Self.decode(.siteMessages(wire)) }
        wire.events[0].eventClass = "q"
        #expect(throws: WireError.self) { try Self.decode(.siteMessages(wire)) }
    }

    @Test func backupReport_withoutKind_isRefused() {
        #expect(throws: WireError.missingField(message: "BackupReport", field: "kind")) { try Self.decode(.backupReport(Sessionfed_V1_BackupReport())) }
    }
}
