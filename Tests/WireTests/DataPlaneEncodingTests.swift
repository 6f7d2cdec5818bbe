import Replication
import SessionModel
import Testing
@testable import Wire

/// The hand-written encoder of the data plane's hot frames against the generated code: the
/// same bytes for every frame, so a peer cannot tell which wrote it.
@Suite struct DataPlaneEncodingTests {
    static func generated(_ frame: Frame) -> [UInt8] {
        WireMessage.encode(frame.wire)
    }

    @Test func everyListedFrame_isEncodedAsTheGeneratedCodeEncodesIt() {
        var handled = 0
        for frame in ReplicationFrameTests.frames {
            guard let encoded = DataPlaneEncoding.encode(frame) else { continue }
            handled += 1
            #expect(encoded == Self.generated(frame), "\(frame.kind)")
        }
        #expect(handled >= 9, "the hot frames of the list go through the hand-written encoder")
    }

    @Test func framesItLeavesToTheGeneratedCode() {
        let withStates = Frame.partitionWrites(PartitionWrites(partition: 1, epoch: 1, firstSequence: 1, writes: [ReplicatedWrite(states: [TransferredKey(key: [1], state: Samples.state())])]))
        #expect(DataPlaneEncoding.encode(withStates) == nil)
        #expect(DataPlaneEncoding.encode(.subscriberInterest(listening: true)) == nil)
        // And the codec still writes them.
        #expect(FrameCodec.payloadIfFits(withStates) == Self.generated(withStates))
    }

    @Test func randomFrames_sameBytesAsTheGeneratedCode() {
        for seed in UInt64(1)...300 {
            var random = SeededGenerator(seed: seed)
            for frame in Self.frames(&random) {
                #expect(DataPlaneEncoding.encode(frame) == Self.generated(frame), "seed \(seed), \(frame.kind)")
            }
        }
    }

    /// One frame of each hot kind, with values at and around the encoding's edges: zeros (left
    /// out unless a oneof's), 64-bit maxima, empty and long byte strings (lengths of one and
    /// several varint bytes, nested messages past 127 bytes).
    static func frames(_ random: inout SeededGenerator) -> [Frame] {
        func number() -> UInt64 {
            switch random.next() % 4 {
            case 0: return 0
            case 1: return UInt64.max
            case 2: return random.next() % 200
            default: return random.next()
            }
        }
        func bytes() -> [UInt8] {
            random.bytes(maximumCount: random.next() % 5 == 0 ? 20_000 : 300)
        }
        let arguments = (0..<Int(random.next() % 6)).map { _ in bytes() }
        let report: BackupMessage
        switch random.next() % 3 {
        case 0: report = .acknowledge(sequence: number())
        case 1: report = .requestTransfer(attempt: number())
        default: report = .acknowledgeChunk(attempt: number(), chunk: UInt32(truncatingIfNeeded: number()))
        }
        let writes = (0..<Int(random.next() % 4)).map { _ in
            ReplicatedWrite(
                deltas: deltas(&random),
                expiredKeys: (0..<Int(random.next() % 3)).map { _ in random.bytes(maximumCount: 40) },
                collectedKeys: (0..<Int(random.next() % 2)).map { _ in random.bytes(maximumCount: 40) }
            )
        }
        return [
            .forwardedCommand(ForwardedCommand(request: number(), arguments: arguments, protocolVersion: UInt32(truncatingIfNeeded: number()), database: UInt32(random.next() % 16))),
            .forwardedReply(ForwardedReply(request: number(), reply: bytes(), notPrimary: random.next() % 2 == 0)),
            .backupReport(BackupReport(partition: UInt32(truncatingIfNeeded: number()), epoch: number(), message: report)),
            .partitionWrites(PartitionWrites(partition: UInt32(truncatingIfNeeded: number()), epoch: number(), firstSequence: number(), writes: writes)),
        ]
    }

    /// Deltas of random writes at three sites that see some of each other's writes, so they
    /// carry contexts with runs, delete vectors and every operation kind.
    static func deltas(_ random: inout SeededGenerator) -> [Delta] {
        var states = [KeyState(), KeyState(), KeyState()]
        var produced: [Delta] = []
        let key = random.bytes(maximumCount: 200)
        for step in 0..<Int(random.next() % 12) {
            let site = Int(random.next() % 3)
            let name = random.bytes(maximumCount: 8)
            let value = random.bytes(maximumCount: random.next() % 4 == 0 ? 400 : 20)
            let write: KeyWrite
            switch random.next() % 9 {
            case 0: write = .setString(value, keepExpiry: false)
            case 1: write = .setFields([HashField(field: name, value: value), HashField(field: [1], value: [])])
            case 2: write = .removeFields([name, [1]])
            case 3: write = .addMembers([name])
            case 4: write = .removeMembers([name])
            case 5: write = .expire(atMilliseconds: random.next() % 2 == 0 ? 0 : 1_700_000_000_000 + random.next() % 1000)
            case 6: write = .delete
            case 7: write = .addScoredMembers([ScoredMember(member: name, score: [0, -0.0, 1.5, -.infinity, Double(random.next() % 1000)][Int(random.next() % 5)])])
            default: write = .persist
            }
            let timestamp = HLCTimestamp(physicalMilliseconds: 1_700_000_000_000 + UInt64(step), logical: UInt32(random.next() % 3))
            guard let delta = states[site].write(write, key: key, site: SiteID(UInt32(site + 1)), timestamp: timestamp, now: 1_700_000_000_000) else { continue }
            produced.append(delta)
            let other = Int(random.next() % 3)
            if other != site { states[other].merge(delta, policy: .default) }
        }
        return produced
    }
}
