import Federation
import SessionModel
import Testing
@testable import Wire

/// Random, truncated and bit-flipped bytes must give a value or a `WireError`, never a crash.
/// Each test is seeded; a crash names no seed, so the seed is in the test name's loop bounds.
@Suite struct WireFuzzTests {
    static let iterations = 5_000

    /// Decodes bytes as every message a peer can send; any outcome but a crash is fine.
    static func decodeEverything(_ bytes: [UInt8]) {
        _ = try? WireMessage.decodeDelta(bytes)
        _ = try? WireMessage.decodeKeyState(bytes)
        var decoder = FrameDecoder(maximumFrameBytes: 1 << 20)
        decoder.append(bytes)
        while true {
            do {
                guard try decoder.next() != nil else { break }
            } catch {
                break
            }
        }
    }

    @Test func randomBytes_neverCrash() {
        var random = SeededGenerator(seed: 0xF022)
        var decodedSomething = 0
        for _ in 0..<Self.iterations {
            let bytes = random.bytes(maximumCount: 64)
            Self.decodeEverything(bytes)
            if (try? WireMessage.decodeKeyState(bytes)) != nil { decodedSomething += 1 }
        }
        // Sanity: the loop really ran the decoders (empty input is a valid empty KeyState).
        #expect(decodedSomething > 0)
    }

    @Test func everyTruncationOfValidFrames_neverCrashes() throws {
        let frames: [Frame] = [
            .federation(.deltaBatch(DeltaBatch(originSite: SiteID(1), senderSite: SiteID(2), partition: 1, firstSequence: 1, deltas: Samples.deltas()))),
            .federation(.keyStates(partition: 2, [KeyStateRecord(key: [1, 2], state: Samples.state())])),
        ]
        var refused = 0
        for frame in frames {
            let bytes = FrameCodec.encode(frame)
            let payload = Array(bytes.dropFirst(4))
            for length in 0..<payload.count {
                let truncated = Array(payload.prefix(length))
                Self.decodeEverything(truncated)
                if (try? Frame(wire: WireMessage.decode(Sessionfed_V1_Frame.self, from: truncated))) == nil { refused += 1 }
                // A frame whose length prefix promises more than arrives stays pending.
                var decoder = FrameDecoder()
                decoder.append(bytes.prefix(4 + length))
                #expect(try decoder.next() == nil)
            }
        }
        #expect(refused > 0)
    }

    @Test func bitFlipsOfValidMessages_neverCrash() {
        var random = SeededGenerator(seed: 0xB17F)
        let valid = Samples.deltas().map(WireMessage.encode) + [WireMessage.encode(key: [3], state: Samples.state())]
        for _ in 0..<Self.iterations {
            var bytes = valid[Int(random.next() % UInt64(valid.count))]
            for _ in 0..<(1 + random.next() % 4) {
                let index = Int(random.next() % UInt64(bytes.count))
                bytes[index] ^= UInt8(truncatingIfNeeded: 1 << (random.next() % 8))
            }
            Self.decodeEverything(bytes)
            if let delta = try? WireMessage.decodeDelta(bytes) {
                // Whatever decodes must merge without trapping.
                var state = Samples.state()
                state.merge(delta, policy: .default)
                _ = state.value(now: 0, policy: .lastWriterWins)
            }
        }
    }

    @Test func randomFrameStreams_splitAnywhere_neverCrash() {
        var random = SeededGenerator(seed: 0x57AE)
        let good = FrameCodec.encode(.federation(.deltaBatchAck(DeltaBatchAck(originSite: SiteID(1), partition: 1, sequence: 1))))
        for _ in 0..<Self.iterations {
            var stream = good + random.bytes(maximumCount: 40)
            if random.next() % 2 == 0 { stream = random.bytes(maximumCount: 8) + stream }
            var decoder = FrameDecoder(maximumFrameBytes: 1 << 16)
            var offset = 0
            streaming: while offset < stream.count {
                let chunk = 1 + Int(random.next() % 7)
                decoder.append(stream[offset..<min(stream.count, offset + chunk)])
                offset += chunk
                while true {
                    do {
                        guard try decoder.next() != nil else { break }
                    } catch {
                        break streaming
                    }
                }
            }
        }
    }
}
