import ControlPlane
import Federation
import Foundation
import SessionModel
import Testing
@testable import FuzzChecks
@testable import Wire

/// Replays the committed fuzz corpus (`Fuzz/Corpus/FuzzFrameDecoder`, README "Fuzzing") through
/// the property the libFuzzer target checks, so every `swift test` guards what fuzzing found.
@Suite struct FrameDecoderCorpusTests {
    static let corpus = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fuzz/Corpus/FuzzFrameDecoder").path

    /// Real frames of every kind, encoded by the project's own encoder: the fuzzer's seeds.
    static let seedFrames: [Frame] = ReplicationFrameTests.frames + [
        .federation(.deltaBatch(DeltaBatch(originSite: SiteID(1), senderSite: SiteID(2), partition: 17, firstSequence: 40, deltas: Samples.deltas()))),
        .federation(.deltaBatchAck(DeltaBatchAck(originSite: SiteID(3), partition: 63, sequence: 9))),
        .federation(.keyStates(partition: 5, [KeyStateRecord(key: [1], state: Samples.state()), KeyStateRecord(key: [], state: KeyState())])),
        .hello(
            Hello(
                federation: "f", protocolVersion: 3, site: SiteID(1), siteName: "seoul", nodeName: "d", topologyVersion: 2,
                roles: RoleAssignment(epoch: 4, issuer: SiteID(2), active: [SiteID(1)]), incarnation: 7, targetSite: SiteID(2), voters: ["a", "b"]
            )
        ),
        .helloReply(accepted: false, reason: "another federation", responder: nil),
        .heartbeat(sentAtMilliseconds: 9, roles: RoleAssignment(epoch: 4, issuer: SiteID(2), active: [SiteID(1)])),
        .federation(.merkleRootsRequest(round: 3)),
        .federation(.merkleRoots(round: 3, roots: [StateDigest(high: 1, low: 2), .zero])),
        .federation(.merkleLeavesRequest(round: 3, partitions: [0, 7])),
        .federation(.merkleLeaves(round: 3, [PartitionLeaves(partition: 7, leaves: [StateDigest(high: 3, low: 4)])])),
        .federation(.bucketDigests(round: 3, chunk: 1, [Bucket(partition: 7, leaf: 2, keys: [KeyDigest(key: [1], digest: StateDigest(high: 5, low: 6))])])),
        .federation(.bucketRepair(BucketRepair(round: 3, chunk: 0, last: true, states: [KeyStateRecord(key: [1], state: Samples.state())], wanted: [[2]]))),
        .federation(.collectionCheck(round: 7, [KeyDigest(key: [1], digest: StateDigest(high: 5, low: 6))])),
        .federation(.collectionVote(round: 7, agreed: [[1], []], partitions: [0, 63])),
        .federation(.collectionCommit([KeyDigest(key: [1], digest: StateDigest(high: 5, low: 6))])),
        .raft(
            RaftEnvelope(
                from: MemberID(name: "a", incarnation: 1), to: "b",
                message: .appendRequest(
                    term: 3, previousIndex: 0, previousTerm: 0,
                    entries: [LogEntry(index: 1, term: 3, command: .memberAdded(name: "d"))], leaderCommit: 1, sentAt: 4
                ), cluster: 11
            )
        ),
    ]

    /// A seed's file: the length-prefixed frame as a link carries it, or the bare payload (which
    /// the check also decodes, so mutations need not keep the length right).
    static func seedFiles() -> [(name: String, bytes: [UInt8])] {
        seedFrames.enumerated().flatMap { index, frame in
            let framed = FrameCodec.encode(frame)
            return [("seed-\(index)-\(frame.kind).frame", framed), ("seed-\(index)-\(frame.kind).payload", Array(framed.dropFirst(4)))]
        }
    }

    @Test func everyCorpusInput_keepsTheDecodersProperties() throws {
        let inputs = try FuzzCorpus.inputs(at: Self.corpus)
        #expect(inputs.count >= Self.seedFiles().count)
        for input in inputs {
            do {
                try FrameDecoderProperty.check(input.bytes)
            } catch {
                Issue.record("\(input.path): \(error)")
            }
        }
    }

    /// The seeds follow the encoder: a changed wire format fails here until they are rewritten
    /// (`SESSIONFED_WRITE_FUZZ_SEEDS=1 swift test --filter FrameDecoderCorpusTests`).
    @Test func everySeedFrame_isInTheCorpus() throws {
        let write = ProcessInfo.processInfo.environment["SESSIONFED_WRITE_FUZZ_SEEDS"] == "1"
        for seed in Self.seedFiles() {
            let url = URL(fileURLWithPath: "\(Self.corpus)/\(seed.name)")
            if write { try Data(seed.bytes).write(to: url) }
            let committed = try? Data(contentsOf: url)
            #expect(committed.map(Array.init) == seed.bytes, "\(seed.name) is missing or stale")
        }
    }

    /// The comparison must catch a cut that loses a frame or changes the error.
    @Test func cutLosingAFrameOrChangingTheError_isAViolation() {
        typealias Session = FrameDecoderProperty.Session
        let whole = Session(frames: [.federation(.merkleRootsRequest(round: 1))], error: nil, bufferedBytes: 0)
        #expect(throws: Never.self) { try FrameDecoderProperty.compare(whole: whole, split: whole, cut: 2) }
        #expect(throws: PropertyViolation.self) {
            try FrameDecoderProperty.compare(whole: whole, split: Session(frames: [], error: nil, bufferedBytes: 6), cut: 2)
        }
        #expect(throws: PropertyViolation.self) {
            try FrameDecoderProperty.compare(whole: whole, split: Session(frames: [.federation(.merkleRootsRequest(round: 1))], error: .frameTooLarge(length: 1, limit: 0)), cut: 2)
        }
    }
}
