import Replication
import SessionModel
import Testing
@testable import Wire

/// The in-place reader of the data plane's hot frames against the generated code: whatever it
/// returns, the generated code returns for the same bytes; what it declines, the generated
/// code decodes (or refuses) as before.
@Suite struct DataPlaneDecodingTests {
    static func readInPlace(_ payload: [UInt8]) -> Frame? {
        payload.withUnsafeBufferPointer { DataPlaneDecoding.decode($0) }
    }

    static func generated(_ payload: [UInt8]) -> Frame? {
        (try? WireMessage.decode(Sessionfed_V1_Frame.self, from: payload)).flatMap { try? Frame(wire: $0) }
    }

    @Test func theHotFrames_areReadInPlace_asTheGeneratedCodeReadsThem() {
        var read = 0
        var frames = ReplicationFrameTests.frames
        for seed in UInt64(1)...300 {
            var random = SeededGenerator(seed: seed)
            frames += DataPlaneEncodingTests.frames(&random)
        }
        for frame in frames {
            let payload = WireMessage.encode(frame.wire)
            guard let inPlace = Self.readInPlace(payload) else {
                // Declined: not a hot frame, or one the generated code refuses too (a random
                // frame may carry a RESP version other than 2 and 3, a sequence of 0, ...).
                let hot = DataPlaneEncoding.encode(frame) != nil
                #expect(!hot || Self.generated(payload) == nil, "a valid hot frame the reader declined: \(frame.kind)")
                continue
            }
            read += 1
            #expect(inPlace == Self.generated(payload), "\(frame.kind)")
        }
        #expect(read >= 500, "read in place: \(read)")
    }

    /// Bytes flipped, cut, inserted: the reader declines or agrees, never disagrees.
    @Test func corruptedFrames_areDeclinedOrReadAsTheGeneratedCodeReadsThem() {
        var agreed = 0, declined = 0
        for seed in UInt64(1)...300 {
            var random = SeededGenerator(seed: seed)
            for frame in DataPlaneEncodingTests.frames(&random) {
                let payload = WireMessage.encode(frame.wire)
                for _ in 0..<8 {
                    var corrupted = payload
                    switch random.next() % 4 {
                    case 0 where !corrupted.isEmpty: corrupted[Int(random.next() % UInt64(corrupted.count))] ^= UInt8(truncatingIfNeeded: random.next() | 1)
                    case 1: corrupted.removeLast(Int(random.next() % UInt64(min(corrupted.count, 6) + 1)))
                    case 2: corrupted.insert(UInt8(truncatingIfNeeded: random.next()), at: Int(random.next() % UInt64(corrupted.count + 1)))
                    default: corrupted += [0x08, UInt8(truncatingIfNeeded: random.next() & 0x7f)]
                    }
                    guard let inPlace = Self.readInPlace(corrupted) else {
                        declined += 1
                        continue
                    }
                    agreed += 1
                    #expect(inPlace == Self.generated(corrupted), "seed \(seed), \(frame.kind): \(corrupted)")
                }
            }
        }
        #expect(agreed > 100 && declined > 100, "agreed \(agreed), declined \(declined)")
    }

    @Test func whatItDeclines_theGeneratedCodeStillReads() {
        // A field in descending order, an unknown field, a second oneof member: valid protobuf
        // the reader does not take.
        let reply = WireMessage.encode(Frame.forwardedReply(ForwardedReply(request: 7, reply: [1], notPrimary: false)).wire)
        let unknownField = reply + [0xF8, 0x01, 0x01]  // field 31, a varint, after the body
        #expect(Self.readInPlace(unknownField) == nil)
        #expect(Self.generated(unknownField) == .forwardedReply(ForwardedReply(request: 7, reply: [1], notPrimary: false)))

        var report = Sessionfed_V1_BackupReport()
        report.partition = 1
        report.kind = .acknowledge(3)
        var frame = Sessionfed_V1_Frame()
        frame.body = .backupReport(report)
        let twoMembers = WireMessage.encode(frame) + [0x92, 0x01, 0x02, 0x20, 0x04]  // body again: request_transfer 4
        #expect(Self.readInPlace(twoMembers) == nil)
        #expect(Self.generated(twoMembers) == .backupReport(BackupReport(partition: 1, epoch: 0, message: .requestTransfer(attempt: 4))))
    }
}
