import SessionModel
import Wire

/// What the frame decoder guarantees for any bytes a peer sends (federation and peer links):
///
/// - It ends, with frames, a need for more bytes, or a `WireError`; never a trap.
/// - The frames do not depend on how the bytes arrive: the input in one read and cut in two
///   give the same frames, the same error and the same number of buffered bytes.
/// - Every frame it returns encodes within the limit and decodes back to itself, and that
///   encoding is canonical (encoding the decoded copy gives the same bytes).
///
/// The input is also decoded as a bare frame payload (where the data plane's in-place reader,
/// when it takes the payload, must return what the generated code returns), a `Delta` and a
/// `KeyState`, so mutations reach the message decoders without having to keep a length prefix
/// right; a decoded delta or state must round-trip too, and merging it must not trap (a
/// peer's bytes end up there).
public enum FrameDecoderProperty {
    /// What one link's decoder made of its reads.
    struct Session: Equatable {
        var frames: [Frame] = []
        /// The error that closes the link; nil: the decoder wants more bytes.
        var error: WireError?
        var bufferedBytes = 0
    }

    public static func check(_ input: [UInt8]) throws(PropertyViolation) {
        let cut = cutPoint(input)
        let whole = decode(reads: [input[...]])
        let split = decode(reads: [input[..<cut], input[cut...]])
        try compare(whole: whole, split: split, cut: cut)
        for frame in whole.frames { try checkRoundTrip(frame) }

        let generated = (try? WireMessage.decode(Sessionfed_V1_Frame.self, from: input)).flatMap { try? Frame(wire: $0) }
        if let frame = generated {
            try checkRoundTrip(frame)
        }
        if let readInPlace = input.withUnsafeBufferPointer({ DataPlaneDecoding.decode($0) }), readInPlace != generated {
            throw PropertyViolation("the in-place reader returns what the generated code decodes", "\(readInPlace) against \(generated.map { "\($0)" } ?? "an error")")
        }
        if let delta = try? WireMessage.decodeDelta(input) {
            try checkDecoded(delta)
        }
        if let record = try? WireMessage.decodeKeyState(input) {
            try checkDecoded(record)
        }
    }

    /// Feeds the reads to one decoder as a link would, stopping at the first error (the link is
    /// closed then).
    static func decode(reads: [ArraySlice<UInt8>]) -> Session {
        var decoder = FrameDecoder()
        var session = Session()
        for read in reads {
            decoder.append(read)
            do {
                while let frame = try decoder.next() { session.frames.append(frame) }
            } catch {
                session.error = error
                return session
            }
        }
        session.bufferedBytes = decoder.bufferedBytes
        return session
    }

    static func compare(whole: Session, split: Session, cut: Int) throws(PropertyViolation) {
        guard whole == split else {
            throw PropertyViolation("the same bytes cut at \(cut) give other frames", "one read: \(describe(whole)); two reads: \(describe(split))")
        }
    }

    static func checkRoundTrip(_ frame: Frame) throws(PropertyViolation) {
        guard let bytes = FrameCodec.encodeIfFits(frame) else {
            throw PropertyViolation("a decoded frame fits the frame limit again", "a \(frame.kind) frame does not")
        }
        let decoded = decode(reads: [bytes[...]])
        guard decoded == Session(frames: [frame]) else {
            throw PropertyViolation("a decoded frame re-encoded decodes to itself", "\(frame) gave \(describe(decoded))")
        }
        guard FrameCodec.encode(decoded.frames[0]) == bytes else {
            throw PropertyViolation("a frame's encoding is canonical", "a \(frame.kind) frame encodes differently after a round trip")
        }
    }

    static func checkDecoded(_ delta: Delta) throws(PropertyViolation) {
        let bytes = WireMessage.encode(delta)
        guard let decoded = try? WireMessage.decodeDelta(bytes), decoded == delta else {
            throw PropertyViolation("a decoded delta re-encoded decodes to itself", "\(delta)")
        }
        var state = KeyState()
        state.merge(delta, policy: .default)
        let merged = state
        state.merge(delta, policy: .default)
        guard state == merged else {
            throw PropertyViolation("a duplicate delta changes nothing", "\(delta) merged twice differs from once")
        }
        _ = state.value(now: 0, policy: .lastWriterWins)
    }

    static func checkDecoded(_ record: (key: [UInt8], state: KeyState)) throws(PropertyViolation) {
        let bytes = WireMessage.encode(key: record.key, state: record.state)
        guard let decoded = try? WireMessage.decodeKeyState(bytes), decoded.key == record.key, decoded.state == record.state else {
            throw PropertyViolation("a decoded key state re-encoded decodes to itself", "\(record)")
        }
        var state = KeyState()
        state.merge(record.state, policy: .default)
        _ = state.value(now: 0, policy: .lastWriterWins)
    }

    static func describe(_ session: Session) -> String {
        let error = session.error.map { "\($0)" } ?? "incomplete with \(session.bufferedBytes) bytes"
        return "\(session.frames.map(\.kind)) then \(error)"
    }
}
