import ControlPlane
import Federation
import Foundation
import SessionModel
import SwiftProtobuf
import Testing
@testable import Wire

@Suite struct WireRoundTripTests {
    @Test func delta_everyOperationKind_roundTrips() throws {
        let deltas = Samples.deltas()
        let kinds = Set(deltas.flatMap(\.operations).map { "\($0)".prefix { $0 != "(" } })
        #expect(kinds == ["setString", "setField", "removeField", "addMember", "removeMember", "setScore", "removeScoredMember", "expire", "persist", "deleteKey"])
        for delta in deltas {
            let bytes = WireMessage.encode(delta)
            #expect(try WireMessage.decodeDelta(bytes) == delta)
            #expect(WireMessage.encode(try WireMessage.decodeDelta(bytes)) == bytes, "encoding is canonical")
        }
    }

    @Test func keyState_withConflictsDeletesAndCloud_roundTrips() throws {
        let state = Samples.state()
        #expect(state.elements.values.contains { $0.count > 1 }, "sample has concurrent entries")
        #expect(!state.deletes.isEmpty)
        let bytes = WireMessage.encode(key: Array("k".utf8), state: state)
        let decoded = try WireMessage.decodeKeyState(bytes)
        #expect(decoded.key == Array("k".utf8))
        #expect(decoded.state == state)
        #expect(decoded.state.digest == state.digest)
    }

    @Test func restart_inDeltaAndKeyState_roundTrips() throws {
        var state = KeyState()
        _ = state.write(.setFields([HashField(field: [1], value: [2])]), key: [], site: SiteID(4), timestamp: HLCTimestamp(physicalMilliseconds: 1_000, logical: 0), now: 1_000)
        _ = state.write(.expire(atMilliseconds: 2_000), key: [], site: SiteID(4), timestamp: HLCTimestamp(physicalMilliseconds: 1_000, logical: 1), now: 1_000)
        let written = state.write(.addMembers([[3]]), key: [9], site: SiteID(4), timestamp: HLCTimestamp(physicalMilliseconds: 3_000, logical: 0), now: 3_000)
        let restart = try #require(written)
        #expect(restart.startsNewKey)
        #expect(try WireMessage.decodeDelta(WireMessage.encode(restart)) == restart)
        #expect(state.restarts == [KeyRestart(timestamp: restart.timestamp, dot: restart.dot)])
        let decoded = try WireMessage.decodeKeyState(WireMessage.encode(key: [9], state: state)).state
        #expect(decoded == state)
        #expect(decoded.digest == state.digest)
        var wire = Sessionfed_V1_KeyState(key: [9], state: state)
        let restartEntry = try #require(wire.entries.firstIndex { $0.element.restart })
        wire.entries[restartEntry].payload = .value(Data([1]))
        #expect(throws: WireError.invalidValue(message: "ElementEntry", field: "payload", reason: "does not fit element restart")) { try wire.model() }
    }

    @Test func keyState_everyPayloadKind_roundTrips() throws {
        var state = KeyState()
        let now: UInt64 = 1_000
        let ts = HLCTimestamp(physicalMilliseconds: now, logical: 3)
        _ = state.write(.setString([1, 2], keepExpiry: false), key: [], site: SiteID(4), timestamp: ts, now: now)
        _ = state.write(.expire(atMilliseconds: 9_000), key: [], site: SiteID(4), timestamp: ts, now: now)
        var other = KeyState()
        _ = other.write(.addMembers([[7]]), key: [], site: SiteID(5), timestamp: ts, now: now)
        _ = other.write(.persist, key: [], site: SiteID(5), timestamp: ts, now: now)  // no expiry: no delta
        _ = other.write(.expire(atMilliseconds: 90_000), key: [], site: SiteID(5), timestamp: ts, now: now)
        _ = other.write(.persist, key: [], site: SiteID(5), timestamp: ts, now: now)
        state.merge(other, policy: MergePolicy(delete: .updateWins))
        let payloads = Set(state.elements.values.flatMap { $0 }.map { "\($0.payload)".prefix { $0 != "(" } })
        #expect(payloads == ["bytes", "present", "expireAt", "persist"])
        #expect(try WireMessage.decodeKeyState(WireMessage.encode(key: [], state: state)).state == state)
    }

    @Test func keyState_sortedSetScores_roundTripBitForBit() throws {
        let now: UInt64 = 1_000
        let scores: [Double] = [0.1, -0.0, .infinity, -.infinity, 1e-310, -1.7976931348623157e308]
        var state = KeyState()
        for (site, score) in scores.enumerated() {
            var other = KeyState()
            // Each score at its own site, concurrent with the others: one member, many entries.
            _ = other.write(
                .addScoredMembers([ScoredMember(member: [7], score: score), ScoredMember(member: [UInt8(site)], score: score)]),
                key: [], site: SiteID(UInt32(site + 1)), timestamp: HLCTimestamp(physicalMilliseconds: now, logical: 0), now: now)
            state.merge(other, policy: .default)
        }
        #expect(state.elements[.sortedMember([7])]?.count == scores.count)
        let bytes = WireMessage.encode(key: [1], state: state)
        let decoded = try WireMessage.decodeKeyState(bytes).state
        #expect(decoded == state)
        #expect(decoded.digest == state.digest, "-0 stays -0: the digest hashes the bits")
        #expect(decoded.sortedIndex == state.sortedIndex)
        #expect(WireMessage.encode(key: [1], state: decoded) == bytes)
    }

    @Test func score_nan_isRefused() throws {
        var wire = Sessionfed_V1_KeyState(key: [1], state: Samples.state())
        wire.entries[0].element.kind = .sortedSetMember(Data([1]))
        wire.entries[0].payload = .score(.nan)
        #expect(throws: WireError.invalidValue(message: "ElementEntry", field: "score", reason: "is NaN")) { try wire.model() }
        var operation = Sessionfed_V1_Operation()
        var scored = Sessionfed_V1_ScoredMember()
        scored.member = Data([1])
        scored.score = .nan
        operation.kind = .setScore(scored)
        var delta = Sessionfed_V1_Delta(Samples.deltas()[0])
        delta.operations = [operation]
        #expect(throws: WireError.invalidValue(message: "Operation", field: "set_score.score", reason: "is NaN")) { try delta.model() }
    }

    @Test func frames_everyBody_roundTrip() throws {
        let batch = DeltaBatch(originSite: SiteID(1), senderSite: SiteID(2), partition: 17, firstSequence: 40, deltas: Samples.deltas())
        let frames: [Frame] = [
            .federation(.deltaBatch(batch)),
            .federation(.deltaBatch(DeltaBatch(originSite: SiteID(1), senderSite: SiteID(1), partition: 0, firstSequence: 0, deltas: []))),
            .federation(.deltaBatchAck(DeltaBatchAck(originSite: SiteID(3), partition: 63, sequence: UInt64.max))),
            .federation(.keyStates(partition: 5, [KeyStateRecord(key: [1], state: Samples.state()), KeyStateRecord(key: [], state: KeyState())])),
            .federation(.collectionCheck(round: 7, [KeyDigest(key: [1], digest: StateDigest(high: 5, low: 6)), KeyDigest(key: [], digest: .zero)])),
            .federation(.collectionVote(round: 7, agreed: [[1], []], partitions: [])),
            .federation(.collectionVote(round: 7, agreed: [], partitions: [0, 63])),
            .federation(.collectionCommit([KeyDigest(key: [1], digest: StateDigest(high: 5, low: 6))])),
        ]
        for frame in frames {
            var decoder = FrameDecoder()
            decoder.append(FrameCodec.encode(frame))
            #expect(try decoder.next() == frame)
            #expect(try decoder.next() == nil)
            #expect(decoder.bufferedBytes == 0)
        }
    }

    /// A topology rolling out: heartbeats say which version a member runs, the map gains and
    /// loses non-voters by command, and a peer's hello names its site's voters.
    @Test func topologyMembership_roundTrips() throws {
        let heartbeat = RaftEnvelope(
            from: MemberID(name: "d", incarnation: 7), to: "a",
            message: .heartbeat(term: 3, fresh: false, inSync: [], draining: false, topologyVersion: 2, sentAt: 5, mapIndex: 9), cluster: 11
        )
        var map = ClusterMap(voters: ["a", "b", "c"], partitionCount: 2, backupCount: 1)
        map.apply(.memberAdded(name: "d"), index: 1)
        let append = RaftEnvelope(
            from: MemberID(name: "a", incarnation: 1), to: "d",
            message: .appendRequest(
                term: 3, previousIndex: 0, previousTerm: 0,
                entries: [LogEntry(index: 1, term: 3, command: .memberAdded(name: "d")), LogEntry(index: 2, term: 3, command: .memberRemoved(name: "e"))],
                leaderCommit: 1, sentAt: 4
            ), cluster: 11
        )
        let snapshot = RaftEnvelope(from: MemberID(name: "a", incarnation: 1), to: "d", message: .snapshot(term: 3, lastIndex: 1, lastTerm: 3, map: map), cluster: 11)
        let hello = Hello(
            federation: "f", protocolVersion: 3, site: SiteID(1), siteName: "seoul", nodeName: "d", topologyVersion: 2, roles: nil, incarnation: 7,
            targetSite: SiteID(1), voters: ["a", "b", "c"]
        )
        for frame in [Frame.raft(heartbeat), .raft(append), .raft(snapshot), .hello(hello)] {
            var decoder = FrameDecoder()
            decoder.append(FrameCodec.encode(frame))
            #expect(try decoder.next() == frame)
        }
    }

    /// Role assignments travel in a site's map (a fence included), its commands, and the
    /// federation's Hello and heartbeats.
    @Test func roles_roundTrip_inMapsCommandsHellosAndHeartbeats() throws {
        let initial = RoleAssignment(epoch: 4, issuer: SiteID(2), active: [SiteID(1)])
        var roles = SiteRoles(site: SiteID(1), assignment: initial)
        let handover = try roles.fence(handingOverTo: SiteID(3))
        var map = ClusterMap(voters: ["a"], partitionCount: 1, backupCount: 0, roles: roles)
        map.appliedIndex = 2
        map.offlineSites = [SiteID(2)]
        let snapshot = RaftEnvelope(from: MemberID(name: "a", incarnation: 1), to: "b", message: .snapshot(term: 3, lastIndex: 2, lastTerm: 3, map: map), cluster: 11)
        let append = RaftEnvelope(
            from: MemberID(name: "a", incarnation: 1), to: "b",
            message: .appendRequest(
                term: 3, previousIndex: 0, previousTerm: 0,
                entries: [
                    LogEntry(index: 1, term: 3, command: .roles(handover)), LogEntry(index: 2, term: 3, command: .fence(target: SiteID(3), epoch: 4)),
                    LogEntry(index: 3, term: 3, command: .unfence(epoch: 4)), LogEntry(index: 4, term: 3, command: .siteOffline(SiteID(2), offline: true)),
                ],
                leaderCommit: 1, sentAt: 4
            ), cluster: 11
        )
        let hello = Hello(
            federation: "f", protocolVersion: 3, site: SiteID(1), siteName: "seoul", nodeName: "d", topologyVersion: 2, roles: handover, incarnation: 7,
            targetSite: SiteID(2)
        )
        for frame in [Frame.raft(snapshot), .raft(append), .hello(hello), .heartbeat(sentAtMilliseconds: 9, roles: initial)] {
            var decoder = FrameDecoder()
            decoder.append(FrameCodec.encode(frame))
            #expect(try decoder.next() == frame)
        }
    }

    @Test func generatedMessages_defaultAndPopulated_roundTrip() throws {
        let messages: [any SwiftProtobuf.Message] = [
            Sessionfed_V1_Dot(), Sessionfed_V1_VersionVector(), Sessionfed_V1_VersionVectorEntry(),
            Sessionfed_V1_HlcTimestamp(), Sessionfed_V1_CausalContext(), Sessionfed_V1_Element(),
            Sessionfed_V1_ElementEntry(), Sessionfed_V1_KeyState(), Sessionfed_V1_HashFieldValue(),
            Sessionfed_V1_Operation(), Sessionfed_V1_Delta(), Sessionfed_V1_DeltaBatch(),
            Sessionfed_V1_DeltaBatchAck(), Sessionfed_V1_KeyStateBatch(), Sessionfed_V1_Frame(),
            Sessionfed_V1_KeyState(key: [9], state: Samples.state()),
            Sessionfed_V1_Delta(Samples.deltas()[0]),
        ]
        for message in messages {
            let bytes: [UInt8] = try message.serializedBytes()
            let decoded = try type(of: message).init(serializedBytes: bytes)
            #expect(decoded.isEqualTo(message: message), "\(type(of: message))")
        }
    }

    @Test func unknownFields_ignored_forwardCompatible() throws {
        let delta = Samples.deltas()[0]
        var bytes = WireMessage.encode(delta)
        // Field 99, varint 1: a field a newer peer might send.
        bytes += [0x98, 0x06, 0x01]
        #expect(try WireMessage.decodeDelta(bytes) == delta)
    }
}

@Suite struct WireValidationTests {
    func deltaWire() -> Sessionfed_V1_Delta { Sessionfed_V1_Delta(Samples.deltas()[0]) }

    @Test func delta_missingDot_missingField() {
        var wire = deltaWire()
        wire.clearDot()
        #expect(throws: WireError.missingField(message: "Delta", field: "dot")) { try wire.model() }
    }

    @Test func delta_zeroCounter_invalid() {
        var wire = deltaWire()
        wire.dot.counter = 0
        #expect(throws: WireError.invalidValue(message: "Delta", field: "dot.counter", reason: "must be at least 1")) { try wire.model() }
    }

    @Test func delta_counterOverflowingItsDots_invalid() {
        var wire = deltaWire()
        wire.dot.counter = UInt64.max - 1
        #expect(throws: WireError.self) { try wire.model() }
    }

    @Test func delta_noOperations_missingField() {
        var wire = deltaWire()
        wire.operations = []
        #expect(throws: WireError.missingField(message: "Delta", field: "operations")) { try wire.model() }
    }

    @Test func operation_withoutKind_missingField() {
        var wire = deltaWire()
        wire.operations.append(Sessionfed_V1_Operation())
        #expect(throws: WireError.missingField(message: "Operation", field: "kind")) { try wire.model() }
    }

    @Test func versionVector_duplicateSite_invalid() {
        var wire = deltaWire()
        var entry = Sessionfed_V1_VersionVectorEntry()
        entry.site = 1
        entry.counter = 2
        wire.deletes.entries = [entry, entry]
        #expect(throws: WireError.self) { try wire.model() }
    }

    @Test func entry_payloadNotFittingElement_invalid() {
        var wire = Sessionfed_V1_KeyState(key: [1], state: Samples.state())
        wire.entries[0].payload = .present(true)
        wire.entries[0].element.kind = .expiry(true)
        #expect(throws: WireError.invalidValue(message: "ElementEntry", field: "payload", reason: "does not fit element expiry")) {
            try wire.model()
        }
        wire.entries[0].payload = nil
        #expect(throws: WireError.missingField(message: "ElementEntry", field: "payload")) { try wire.model() }
        wire.entries[0].clearElement()
        #expect(throws: WireError.missingField(message: "ElementEntry", field: "element")) { try wire.model() }
    }

    @Test func frame_withoutBody_missingField() {
        #expect(throws: WireError.missingField(message: "Frame", field: "body")) {
            try Frame(wire: Sessionfed_V1_Frame())
        }
    }

    @Test func deltaBatch_sequenceOverflow_invalid() {
        var wire = Sessionfed_V1_DeltaBatch()
        wire.firstSequence = UInt64.max
        wire.deltas = [deltaWire(), deltaWire()]
        var frame = Sessionfed_V1_Frame()
        frame.body = .deltaBatch(wire)
        #expect(throws: WireError.self) { try Frame(wire: frame) }
    }
}

@Suite struct FrameDecoderTests {
    let frame = Frame.federation(.deltaBatch(DeltaBatch(originSite: SiteID(1), senderSite: SiteID(1), partition: 3, firstSequence: 1, deltas: Samples.deltas())))

    @Test func oneByteAtATime_reassembles() throws {
        let bytes = FrameCodec.encode(frame) + FrameCodec.encode(.federation(.deltaBatchAck(DeltaBatchAck(originSite: SiteID(1), partition: 3, sequence: 9))))
        var decoder = FrameDecoder()
        var frames: [Frame] = []
        for byte in bytes {
            decoder.append([byte])
            while let next = try decoder.next() { frames.append(next) }
        }
        #expect(frames == [frame, .federation(.deltaBatchAck(DeltaBatchAck(originSite: SiteID(1), partition: 3, sequence: 9)))])
        #expect(decoder.bufferedBytes == 0)
    }

    @Test func lengthAtLimit_accepted_oneAbove_refused() throws {
        let payload = WireMessage.encode(frame.wire)
        let limit = UInt32(payload.count)
        var atLimit = FrameDecoder(maximumFrameBytes: limit)
        atLimit.append(FrameCodec.encode(frame))
        #expect(try atLimit.next() == frame)

        var belowLimit = FrameDecoder(maximumFrameBytes: limit - 1)
        belowLimit.append(FrameCodec.encode(frame).prefix(4))
        #expect(throws: WireError.frameTooLarge(length: limit, limit: limit - 1)) { try belowLimit.next() }
    }

    @Test func hugeAnnouncedLength_refusedBeforeBuffering() {
        var decoder = FrameDecoder()
        decoder.append([0xff, 0xff, 0xff, 0xff])
        #expect(throws: WireError.frameTooLarge(length: UInt32.max, limit: FrameCodec.maximumFrameBytes)) { try decoder.next() }
    }

    @Test func maximumFrameBytes_is16MiB() {
        #expect(FrameCodec.maximumFrameBytes == 16 * 1024 * 1024)
    }

    @Test func partialFrame_waitsForMore() throws {
        let bytes = FrameCodec.encode(frame)
        var decoder = FrameDecoder()
        decoder.append(bytes.dropLast())
        #expect(try decoder.next() == nil)
        decoder.append(bytes.suffix(1))
        #expect(try decoder.next() == frame)
    }
}

@Suite struct WireCounterLimitTests {
    @Test func contextCounterBeyondLimit_refused() {
        var wire = Sessionfed_V1_Delta(Samples.deltas()[0])
        var entry = Sessionfed_V1_VersionVectorEntry()
        entry.site = 3
        entry.counter = Dot.maximumCounter + 1
        wire.context.vector.entries = [entry]
        #expect(throws: WireError.self) { try wire.model() }
        wire.context.vector.entries[0].counter = Dot.maximumCounter
        #expect(throws: Never.self) { try wire.model() }
    }

    @Test func dotRanges_roundTrip_andBadRangesAreRefused() throws {
        var state = KeyState()
        _ = state.write(.setFields([HashField(field: [1], value: [2])]), key: [], site: SiteID(4), timestamp: HLCTimestamp(physicalMilliseconds: 1_000, logical: 0), now: 1_000)
        var other = KeyState()
        _ = other.write(.setFields([HashField(field: [1], value: [3]), HashField(field: [2], value: [3])]), key: [], site: SiteID(4), timestamp: HLCTimestamp(physicalMilliseconds: 1_000, logical: 0), now: 1_000, lifeStart: 1_000)
        state.merge(other, policy: .default)
        #expect(!state.context.cloud.isEmpty, "a jumped lineage is a run")
        #expect(try WireMessage.decodeKeyState(WireMessage.encode(key: [], state: state)).state == state)
        for (first, last) in [(0, 3), (5, 4), (1, Dot.maximumCounter + 1)] as [(UInt64, UInt64)] {
            var wire = Sessionfed_V1_KeyState(key: [], state: state)
            wire.context.ranges[0].first = first
            wire.context.ranges[0].last = last
            #expect(throws: WireError.self, "range \(first)...\(last)") { try wire.model() }
        }
    }

    @Test func cloudDotBeyondLimit_refused() {
        var wire = Sessionfed_V1_Delta(Samples.deltas()[0])
        var dot = Sessionfed_V1_Dot()
        dot.site = 1
        dot.counter = UInt64.max
        wire.context.cloud = [dot]
        #expect(throws: WireError.invalidValue(message: "Delta.context", field: "dot.counter", reason: "exceeds \(Dot.maximumCounter)")) {
            try wire.model()
        }
    }
}
