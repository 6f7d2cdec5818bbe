import NIOCore

/// What the parser found at the front of a client's input.
public enum RESPRequest: Hashable, Sendable {
    /// A complete command: name and arguments, binary-safe.
    case command([[UInt8]])
    /// The input ends inside a command; call again when more bytes arrive.
    case incomplete
    /// The input is not RESP. The text is Redis's (`Protocol error: …`); the connection must
    /// be answered with `-ERR <text>` and closed.
    case protocolError(String)
}

/// Parses client requests: multibulk arrays of bulk strings and inline commands, exactly as
/// Redis's `processMultibulkBuffer`/`processInlineBuffer` accept them, with Redis's limits and
/// error texts. Incremental: an incomplete command consumes nothing and the parser remembers
/// how many bytes it needs, so a large value arriving in pieces is not rescanned each time.
public struct RESPRequestParser: Sendable {
    public let limits: RESPLimits
    private var bytesNeeded = 0
    /// The name of the last command parsed. A client sends the same few commands again and
    /// again, so a name equal to it is shared rather than allocated again: one allocation
    /// fewer per command (arrays are values, so sharing is invisible to whoever keeps one).
    private var recentName: [UInt8] = []
    /// Longer first arguments are not kept (no command name is this long): a client cannot make
    /// the parser hold a large one.
    static let longestSharedName = 32

    public init(limits: RESPLimits = .default) {
        self.limits = limits
    }

    /// Parses one request from the front of `buffer`, consuming it when complete. Empty
    /// commands (`*0`, `*-1`, blank inline lines) are consumed and skipped, as Redis does.
    public mutating func next(from buffer: inout ByteBuffer) -> RESPRequest {
        while true {
            guard buffer.readableBytes > 0, buffer.readableBytes >= bytesNeeded else { return .incomplete }
            let (outcome, consumed) = buffer.withUnsafeReadableBytes { bytes in
                bytes[0] == UInt8(ascii: "*") ? parseMultibulk(bytes) : parseInline(bytes)
            }
            switch outcome {
            case .incomplete(let needed):
                bytesNeeded = needed
                return .incomplete
            case .error(let message):
                return .protocolError(message)
            case .empty:
                buffer.moveReaderIndex(forwardBy: consumed)
                bytesNeeded = 0
            case .command(let arguments):
                buffer.moveReaderIndex(forwardBy: consumed)
                bytesNeeded = 0
                return .command(arguments)
            }
        }
    }

    private enum Outcome {
        case command([[UInt8]])
        case empty
        /// At least this many bytes must be buffered before parsing can progress.
        case incomplete(Int)
        case error(String)
    }

    private func findCRLF(_ bytes: UnsafeRawBufferPointer, from start: Int) -> Int? {
        var index = start
        while index + 1 < bytes.count {
            if bytes[index] == 13 && bytes[index + 1] == 10 { return index }
            index += 1
        }
        return nil
    }

    /// Parses an integer as Redis's `string2ll` does for lengths: optional minus sign, digits,
    /// nothing else.
    private func parseInteger(_ bytes: UnsafeRawBufferPointer, _ start: Int, _ end: Int) -> Int? {
        guard start < end else { return nil }
        var index = start
        var negative = false
        if bytes[index] == UInt8(ascii: "-") {
            negative = true
            index += 1
            guard index < end else { return nil }
        }
        var value = 0
        while index < end {
            let digit = Int(bytes[index]) - 48
            guard digit >= 0 && digit <= 9 else { return nil }
            let (multiplied, overflow1) = value.multipliedReportingOverflow(by: 10)
            let (added, overflow2) = multiplied.addingReportingOverflow(digit)
            guard !overflow1 && !overflow2 else { return nil }
            value = added
            index += 1
        }
        return negative ? -value : value
    }

    private mutating func parseMultibulk(_ bytes: UnsafeRawBufferPointer) -> (Outcome, Int) {
        guard let countEnd = findCRLF(bytes, from: 1) else {
            if bytes.count > limits.maximumInlineBytes { return (.error("Protocol error: too big mbulk count string"), 0) }
            return (.incomplete(bytes.count + 1), 0)
        }
        guard let count = parseInteger(bytes, 1, countEnd), count <= limits.maximumArguments else {
            return (.error("Protocol error: invalid multibulk length"), 0)
        }
        var position = countEnd + 2
        if count <= 0 { return (.empty, position) }

        var arguments: [[UInt8]] = []
        arguments.reserveCapacity(min(count, 64))
        for _ in 0..<count {
            guard position < bytes.count else { return (.incomplete(position + 1), 0) }
            guard bytes[position] == UInt8(ascii: "$") else {
                let got = Character(Unicode.Scalar(bytes[position]))
                return (.error("Protocol error: expected '$', got '\(got)'"), 0)
            }
            guard let lengthEnd = findCRLF(bytes, from: position + 1) else {
                if bytes.count - position > limits.maximumInlineBytes {
                    return (.error("Protocol error: too big bulk count string"), 0)
                }
                return (.incomplete(bytes.count + 1), 0)
            }
            guard let length = parseInteger(bytes, position + 1, lengthEnd), length >= 0, length <= limits.maximumBulkBytes else {
                return (.error("Protocol error: invalid bulk length"), 0)
            }
            let start = lengthEnd + 2
            let (end, overflow) = start.addingReportingOverflow(length)
            guard !overflow else { return (.error("Protocol error: invalid bulk length"), 0) }
            guard end + 2 <= bytes.count else { return (.incomplete(end + 2), 0) }
            let argument = UnsafeRawBufferPointer(rebasing: bytes[start..<end])
            if arguments.isEmpty, argument.count <= Self.longestSharedName {
                if recentName.count != argument.count || !recentName.elementsEqual(argument) { recentName = Array(argument) }
                arguments.append(recentName)
            } else {
                arguments.append(Array(argument))
            }
            // Redis skips the two bytes after the payload without checking them.
            position = end + 2
        }
        return (.command(arguments), position)
    }

    private func parseInline(_ bytes: UnsafeRawBufferPointer) -> (Outcome, Int) {
        var newline: Int?
        for index in 0..<bytes.count where bytes[index] == 10 {
            newline = index
            break
        }
        guard let newline else {
            if bytes.count > limits.maximumInlineBytes { return (.error("Protocol error: too big inline request"), 0) }
            return (.incomplete(bytes.count + 1), 0)
        }
        guard newline <= limits.maximumInlineBytes else { return (.error("Protocol error: too big inline request"), 0) }
        var end = newline
        if end > 0 && bytes[end - 1] == 13 { end -= 1 }
        guard let arguments = Self.splitInlineArguments(Array(UnsafeRawBufferPointer(rebasing: bytes[0..<end]))) else {
            return (.error("Protocol error: unbalanced quotes in request"), 0)
        }
        if arguments.isEmpty { return (.empty, newline + 1) }
        guard arguments.count <= limits.maximumArguments else { return (.error("Protocol error: invalid multibulk length"), 0) }
        return (.command(arguments), newline + 1)
    }

    /// Splits an inline command line like Redis's `sdssplitargs`: whitespace separates
    /// arguments; "double quotes" understand \n \r \t \b \a \\ \" and \xHH; 'single quotes'
    /// understand \'; a closing quote must be followed by a space or the end. nil: unbalanced.
    public static func splitInlineArguments(_ line: [UInt8]) -> [[UInt8]]? {
        var arguments: [[UInt8]] = []
        var index = 0
        func isSpace(_ byte: UInt8) -> Bool { byte == 32 || byte == 9 || byte == 10 || byte == 13 || byte == 11 || byte == 12 }
        func hexValue(_ byte: UInt8) -> UInt8? {
            switch byte {
            case 48...57: return byte - 48
            case 97...102: return byte - 87
            case 65...70: return byte - 55
            default: return nil
            }
        }
        while true {
            while index < line.count && isSpace(line[index]) { index += 1 }
            guard index < line.count else { return arguments }
            var current: [UInt8] = []
            var inDouble = false, inSingle = false
            argument: while true {
                if inDouble {
                    guard index < line.count else { return nil }
                    let byte = line[index]
                    if byte == 92, index + 3 < line.count, line[index + 1] == UInt8(ascii: "x"),
                        let high = hexValue(line[index + 2]), let low = hexValue(line[index + 3])
                    {
                        current.append(high << 4 | low)
                        index += 3
                    } else if byte == 92, index + 1 < line.count {
                        index += 1
                        switch line[index] {
                        case UInt8(ascii: "n"): current.append(10)
                        case UInt8(ascii: "r"): current.append(13)
                        case UInt8(ascii: "t"): current.append(9)
                        case UInt8(ascii: "b"): current.append(8)
                        case UInt8(ascii: "a"): current.append(7)
                        default: current.append(line[index])
                        }
                    } else if byte == 34 {
                        if index + 1 < line.count && !isSpace(line[index + 1]) { return nil }
                        index += 1
                        break argument
                    } else {
                        current.append(byte)
                    }
                    index += 1
                } else if inSingle {
                    guard index < line.count else { return nil }
                    let byte = line[index]
                    if byte == 92, index + 1 < line.count, line[index + 1] == 39 {
                        current.append(39)
                        index += 1
                    } else if byte == 39 {
                        if index + 1 < line.count && !isSpace(line[index + 1]) { return nil }
                        index += 1
                        break argument
                    } else {
                        current.append(byte)
                    }
                    index += 1
                } else {
                    guard index < line.count else { break argument }
                    let byte = line[index]
                    if isSpace(byte) { break argument }
                    if byte == 34 { inDouble = true } else if byte == 39 { inSingle = true } else { current.append(byte) }
                    index += 1
                }
            }
            arguments.append(current)
        }
    }
}
