import NIOCore
import RESP

/// What the request parser guarantees for any bytes a client sends, checked under Redis's
/// default limits and under limits small enough that a few KiB of input crosses every one:
///
/// - It ends: every call consumes a command or reports that it needs more bytes or an error.
/// - The requests do not depend on how the bytes arrive: the input in one read and the input
///   cut in two give the same commands, the same error and the same unconsumed bytes. The one
///   allowed difference is Redis's own: an unterminated count or inline line longer than
///   `maximumInlineBytes` is refused as soon as that much is buffered, so the cut read can be
///   refused where the whole one finds the line's end further on.
/// - Every command respects the limits and re-encoded as a multibulk request parses back to
///   itself.
/// - `splitInlineArguments` quoting round-trips, and without quotes it splits on whitespace.
public enum RESPRequestParserProperty {
    /// Bulk above inline, so an argument of an inline command also fits a bulk string (the
    /// multibulk round trip needs that, and Redis's defaults have it too).
    static let smallLimits = RESPLimits(maximumBulkBytes: 64, maximumArguments: 8, maximumInlineBytes: 32, maximumQueryBufferBytes: 4096)

    /// Errors Redis raises from the length of what is buffered, not from the bytes themselves.
    static let bufferedLengthErrors: Set<String> = [
        "Protocol error: too big mbulk count string",
        "Protocol error: too big bulk count string",
        "Protocol error: too big inline request",
    ]

    /// What one connection's parser made of its reads.
    struct Session: Equatable {
        var commands: [[[UInt8]]] = []
        /// The protocol error that would close the connection; nil: the parser wants more bytes.
        var error: String?
        /// Bytes buffered and not yet a command (only when there is no error).
        var unconsumed: [UInt8] = []
    }

    public static func check(_ input: [UInt8]) throws(PropertyViolation) {
        let cut = cutPoint(input)
        for limits in [RESPLimits.default, smallLimits] {
            let whole = parse(reads: [input[...]], limits: limits)
            let split = parse(reads: [input[..<cut], input[cut...]], limits: limits)
            try compare(whole: whole, split: split, cut: cut)
            for command in whole.commands { try checkCommand(command, limits: limits) }
        }
        try checkInlineSplitting(input)
    }

    /// Feeds the reads to one parser as a connection would, stopping at the first error (the
    /// connection is closed then).
    static func parse(reads: [ArraySlice<UInt8>], limits: RESPLimits) -> Session {
        var parser = RESPRequestParser(limits: limits)
        var buffer = ByteBuffer()
        var session = Session()
        for read in reads {
            buffer.writeBytes(read)
            reading: while true {
                switch parser.next(from: &buffer) {
                case .command(let arguments):
                    session.commands.append(arguments)
                case .incomplete:
                    break reading
                case .protocolError(let message):
                    session.error = message
                    return session
                }
            }
        }
        session.unconsumed = Array(buffer.readableBytesView)
        return session
    }

    static func compare(whole: Session, split: Session, cut: Int) throws(PropertyViolation) {
        if whole == split { return }
        if let error = split.error, bufferedLengthErrors.contains(error), whole.commands.starts(with: split.commands) { return }
        throw PropertyViolation(
            "the same bytes cut at \(cut) give other requests",
            "one read: \(describe(whole)); two reads: \(describe(split))"
        )
    }

    static func checkCommand(_ arguments: [[UInt8]], limits: RESPLimits) throws(PropertyViolation) {
        guard !arguments.isEmpty else { throw PropertyViolation("a command has a name", "an empty command was returned") }
        guard arguments.count <= limits.maximumArguments else {
            throw PropertyViolation("a command has at most \(limits.maximumArguments) arguments", "it has \(arguments.count)")
        }
        let longest = max(limits.maximumBulkBytes, limits.maximumInlineBytes)
        if let long = arguments.first(where: { $0.count > longest }) {
            throw PropertyViolation("an argument has at most \(longest) bytes", "one has \(long.count)")
        }
        var encoded = Array("*\(arguments.count)\r\n".utf8)
        for argument in arguments {
            encoded += Array("$\(argument.count)\r\n".utf8) + argument + [13, 10]
        }
        let reparsed = parse(reads: [encoded[...]], limits: limits)
        guard reparsed == Session(commands: [arguments]) else {
            throw PropertyViolation("a command re-encoded as multibulk parses back to itself", "\(arguments) gave \(describe(reparsed))")
        }
    }

    static func checkInlineSplitting(_ line: [UInt8]) throws(PropertyViolation) {
        let quotes: [UInt8] = [34, 39]
        let spaces: [UInt8] = [32, 9, 10, 13, 11, 12]
        guard let arguments = RESPRequestParser.splitInlineArguments(line) else {
            guard line.contains(where: quotes.contains) else {
                throw PropertyViolation("only quotes make an inline line unbalanced", "\(line) was refused")
            }
            return
        }
        if !line.contains(where: quotes.contains) {
            let words = line.split(whereSeparator: spaces.contains).map(Array.init)
            guard arguments == words else {
                throw PropertyViolation("an inline line without quotes splits on whitespace", "\(line) gave \(arguments), not \(words)")
            }
        }
        // Every byte as \xHH inside double quotes: the most escaped spelling of the arguments.
        let hex = Array("0123456789abcdef".utf8)
        var quoted: [UInt8] = []
        for argument in arguments {
            if !quoted.isEmpty { quoted.append(32) }
            quoted.append(34)
            for byte in argument { quoted += [92, UInt8(ascii: "x"), hex[Int(byte >> 4)], hex[Int(byte & 15)]] }
            quoted.append(34)
        }
        let requoted = RESPRequestParser.splitInlineArguments(quoted)
        guard requoted == arguments else {
            throw PropertyViolation("quoted inline arguments split back to themselves", "\(arguments) quoted gave \(String(describing: requoted))")
        }
    }

    static func describe(_ session: Session) -> String {
        let commands = session.commands.map { command in command.map { String(decoding: $0, as: UTF8.self) } }
        return "\(commands) then \(session.error ?? "incomplete with \(session.unconsumed.count) bytes")"
    }
}
