import NIOCore
import Testing
@testable import RESP

@Suite struct RESPRequestParserTests {
    func parseAll(_ bytes: [UInt8], limits: RESPLimits = .default, chunk: Int? = nil) -> [RESPRequest] {
        var parser = RESPRequestParser(limits: limits)
        var buffer = ByteBufferAllocator().buffer(capacity: 0)
        var results: [RESPRequest] = []
        let size = chunk ?? max(1, bytes.count)
        var offset = 0
        repeat {
            buffer.writeBytes(bytes[offset..<min(bytes.count, offset + size)])
            offset += size
            loop: while true {
                let request = parser.next(from: &buffer)
                switch request {
                case .incomplete: break loop
                case .protocolError:
                    results.append(request)
                    return results
                case .command: results.append(request)
                }
            }
        } while offset < bytes.count
        return results
    }

    func commands(_ parts: [String]...) -> [RESPRequest] {
        parts.map { .command($0.map { Array($0.utf8) }) }
    }

    @Test func multibulk_pipelined_parsesEach() {
        let input = Array("*1\r\n$4\r\nPING\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n".utf8)
        #expect(parseAll(input) == commands(["PING"], ["SET", "k", ""]))
    }

    /// A command name equal to the one before shares its storage (one allocation fewer per
    /// command); a different name, or a first argument too long to be a name, does not; every
    /// command still reads as sent.
    @Test func multibulk_repeatedName_sharedButEqual() {
        let long = String(repeating: "x", count: RESPRequestParser.longestSharedName + 1)
        let sent = [["SET", "a", "1"], ["SET", "b", "2"], ["set", "c", "3"], ["GET", "a"], ["GET", "b"], [long, "k"], [long, "k"], ["GET", "c"]]
        let input = sent.map { parts in "*\(parts.count)\r\n" + parts.map { "$\($0.utf8.count)\r\n\($0)\r\n" }.joined() }.joined()
        let parsed = parseAll(Array(input.utf8))
        #expect(parsed == commands(sent[0], sent[1], sent[2], sent[3], sent[4], sent[5], sent[6], sent[7]))
        let names: [[UInt8]] = parsed.compactMap { if case .command(let arguments) = $0 { arguments[0] } else { nil } }
        func storage(_ index: Int) -> UnsafeRawPointer? { names[index].withUnsafeBytes { $0.baseAddress } }
        #expect(storage(0) == storage(1), "SET after SET")
        #expect(storage(1) != storage(2), "set after SET: another name")
        #expect(storage(3) == storage(4), "GET after GET")
        #expect(storage(5) != storage(6), "too long to be kept")
    }

    @Test func multibulk_oneByteAtATime_sameResult() {
        let input = Array("*2\r\n$3\r\nGET\r\n$5\r\nab\r\nc\r\n*1\r\n$4\r\nPING\r\n".utf8)
        #expect(parseAll(input, chunk: 1) == [.command([Array("GET".utf8), Array("ab\r\nc".utf8)]), .command([Array("PING".utf8)])])
    }

    @Test func binarySafe_valuesKeepEveryByte() {
        let value: [UInt8] = [0, 255, 13, 10, 36, 42]
        let input = Array("*2\r\n$4\r\nECHO\r\n$6\r\n".utf8) + value + Array("\r\n".utf8)
        #expect(parseAll(input) == [.command([Array("ECHO".utf8), value])])
    }

    @Test func inline_withQuotesAndEscapes() {
        let input = Array("SET key \"hello world\" 'it\\'s'\r\nPING\n\r\n".utf8)
        #expect(parseAll(input) == commands(["SET", "key", "hello world", "it's"], ["PING"]))
        #expect(RESPRequestParser.splitInlineArguments(Array("a \"\\x41\\n\"".utf8)) == [Array("a".utf8), [0x41, 10]])
    }

    @Test func inline_unbalancedQuotes_protocolError() {
        #expect(parseAll(Array("SET k \"oops\r\n".utf8)) == [.protocolError("Protocol error: unbalanced quotes in request")])
        #expect(parseAll(Array("SET k \"a\"b\r\n".utf8)) == [.protocolError("Protocol error: unbalanced quotes in request")])
    }

    @Test func emptyCommands_skipped() {
        #expect(parseAll(Array("*0\r\n*-1\r\n\r\n   \r\n*1\r\n$4\r\nPING\r\n".utf8)) == commands(["PING"]))
    }

    @Test func expectedDollar_protocolError() {
        #expect(parseAll(Array("*1\r\n:4\r\n".utf8)) == [.protocolError("Protocol error: expected '$', got ':'")])
    }

    @Test func negativeOrGarbageBulkLength_protocolError() {
        #expect(parseAll(Array("*1\r\n$-5\r\n".utf8)) == [.protocolError("Protocol error: invalid bulk length")])
        #expect(parseAll(Array("*1\r\n$x\r\n".utf8)) == [.protocolError("Protocol error: invalid bulk length")])
        #expect(parseAll(Array("*1\r\n$99999999999999999999999\r\n".utf8)) == [.protocolError("Protocol error: invalid bulk length")])
    }

    @Test func multibulkLength_garbageOrOverLimit_protocolError() {
        #expect(parseAll(Array("*x\r\n".utf8)) == [.protocolError("Protocol error: invalid multibulk length")])
        let limits = RESPLimits(maximumArguments: 3)
        #expect(parseAll(Array("*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n".utf8), limits: limits).count == 1, "at the limit")
        #expect(parseAll(Array("*4\r\n".utf8), limits: limits) == [.protocolError("Protocol error: invalid multibulk length")])
    }

    @Test func bulkLength_atLimitAccepted_aboveRefused() {
        let limits = RESPLimits(maximumBulkBytes: 4)
        #expect(parseAll(Array("*1\r\n$4\r\nabcd\r\n".utf8), limits: limits) == commands(["abcd"]))
        #expect(parseAll(Array("*1\r\n$5\r\nabcde\r\n".utf8), limits: limits) == [.protocolError("Protocol error: invalid bulk length")])
    }

    @Test func inlineLength_atLimitAccepted_aboveRefused() {
        let limits = RESPLimits(maximumInlineBytes: 8)
        #expect(parseAll(Array("PING abc\n".utf8), limits: limits) == commands(["PING", "abc"]))
        #expect(parseAll(Array("PING abcde\n".utf8), limits: limits) == [.protocolError("Protocol error: too big inline request")])
        #expect(parseAll(Array("PING abcdefgh".utf8), limits: limits) == [.protocolError("Protocol error: too big inline request")])
    }

    @Test func countLine_tooLongWithoutCRLF_protocolError() {
        let limits = RESPLimits(maximumInlineBytes: 8)
        #expect(parseAll(Array("*1111111111111".utf8), limits: limits) == [.protocolError("Protocol error: too big mbulk count string")])
        #expect(parseAll(Array("*1\r\n$1111111111111".utf8), limits: limits) == [.protocolError("Protocol error: too big bulk count string")])
    }

    @Test func defaults_matchRedis() {
        #expect(RESPLimits.defaultMaximumBulkBytes == 512 * 1024 * 1024)
        #expect(RESPLimits.defaultMaximumArguments == 1_048_576)
        #expect(RESPLimits.defaultMaximumInlineBytes == 65_536)
        #expect(RESPLimits.defaultMaximumQueryBufferBytes == 1_073_741_824)
    }

    @Test func randomBytes_neverCrash_andErrorsStop() {
        var state: UInt64 = 0xC0FFEE
        func next() -> UInt64 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return state >> 33
        }
        let alphabet = Array("*$\r\n0123456789-abc \"'\\".utf8) + [0, 255]
        for _ in 0..<3_000 {
            let bytes = (0..<Int(next() % 40)).map { _ in alphabet[Int(next() % UInt64(alphabet.count))] }
            _ = parseAll(bytes, limits: RESPLimits(maximumBulkBytes: 64, maximumArguments: 16, maximumInlineBytes: 32), chunk: 1 + Int(next() % 5))
        }
    }
}

@Suite struct RESPEncoderTests {
    func text(_ value: RESPValue, _ version: RESPVersion) -> String {
        String(decoding: RESPEncoder.encode(value, version: version), as: UTF8.self)
    }

    @Test func scalars_bothVersions() {
        #expect(text(.ok, .v2) == "+OK\r\n")
        #expect(text(.error("ERR x"), .v3) == "-ERR x\r\n")
        #expect(text(.integer(-12), .v2) == ":-12\r\n")
        #expect(text(.integer(Int64.min), .v2) == ":-9223372036854775808\r\n")
        #expect(text(.bulk("hi"), .v2) == "$2\r\nhi\r\n")
        #expect(text(.bulkString([]), .v2) == "$0\r\n\r\n")
        #expect(text(.null, .v2) == "$-1\r\n")
        #expect(text(.null, .v3) == "_\r\n")
        #expect(text(.nullArray, .v2) == "*-1\r\n")
        #expect(text(.boolean(true), .v3) == "#t\r\n")
        #expect(text(.boolean(true), .v2) == ":1\r\n")
        #expect(text(.double(1.5), .v3) == ",1.5\r\n")
    }

    @Test func aggregates_downgradeInRESP2() {
        let map = RESPValue.map([RESPPair(.bulk("a"), .integer(1))])
        #expect(text(map, .v3) == "%1\r\n$1\r\na\r\n:1\r\n")
        #expect(text(map, .v2) == "*2\r\n$1\r\na\r\n:1\r\n")
        #expect(text(.set([.bulk("x")]), .v3) == "~1\r\n$1\r\nx\r\n")
        #expect(text(.set([.bulk("x")]), .v2) == "*1\r\n$1\r\nx\r\n")
        #expect(text(.push([.bulk("message")]), .v3) == ">1\r\n$7\r\nmessage\r\n")
        #expect(text(.push([.bulk("message")]), .v2) == "*1\r\n$7\r\nmessage\r\n")
        #expect(text(.verbatim(format: "txt", text: Array("ab".utf8)), .v3) == "=6\r\ntxt:ab\r\n")
        #expect(text(.verbatim(format: "txt", text: Array("ab".utf8)), .v2) == "$2\r\nab\r\n")
    }
}

@Suite struct GlobPatternTests {
    func matches(_ pattern: String, _ string: String) -> Bool {
        GlobPattern(Array(pattern.utf8)).matches(Array(string.utf8))
    }

    @Test func redisGlobRules() {
        #expect(matches("*", ""))
        #expect(matches("sess:*", "sess:abc"))
        #expect(!matches("sess:*", "session"))
        #expect(matches("h?llo", "hello"))
        #expect(matches("h[ae]llo", "hallo"))
        #expect(!matches("h[^e]llo", "hello"))
        #expect(matches("h[a-b]llo", "hbllo"))
        #expect(matches("h\\*llo", "h*llo"))
        #expect(!matches("h\\*llo", "hello"))
        #expect(matches("__keyevent@0__:*", "__keyevent@0__:expired"))
        #expect(matches("a*b*c", "aXXbYYc"))
        #expect(!matches("a*b*c", "aXXbYY"))
    }

    @Test func pathologicalPattern_terminates() {
        let pattern = String(repeating: "a*", count: 40) + "b"
        #expect(!matches(pattern, String(repeating: "a", count: 60)))
    }

    @Test func strictIntegers_likeRedis() {
        #expect(parseRedisInteger(Array("0".utf8)) == 0)
        #expect(parseRedisInteger(Array("-9223372036854775808".utf8)) == Int64.min)
        #expect(parseRedisInteger(Array("9223372036854775808".utf8)) == nil)
        #expect(parseRedisInteger(Array("01".utf8)) == nil)
        #expect(parseRedisInteger(Array("+1".utf8)) == nil)
        #expect(parseRedisInteger(Array(" 1".utf8)) == nil)
        #expect(parseRedisInteger(Array("-0".utf8)) == nil)
        #expect(parseRedisInteger([]) == nil)
    }
}

/// Scores as redis-server 7.0 reads and prints them (outputs taken from redis-server 7.0.15).
@Suite struct RedisDoubleTests {
    func text(_ value: RESPValue, _ version: RESPVersion) -> String {
        String(decoding: RESPEncoder.encode(value, version: version), as: UTF8.self)
    }

    @Test(arguments: [
        (1.5, "1.5"), (0.1, "0.10000000000000001"), (1e20, "1e+20"), (3, "3"), (1e-5, "1.0000000000000001e-05"),
        (123456789012345678, "1.2345678901234568e+17"), (2.5e-310, "2.5000000000000171e-310"), (-0.0, "-0"),
        (Double.infinity, "inf"), (-Double.infinity, "-inf"),
    ])
    func format_matchesRedis(number: Double, expected: String) {
        #expect(RedisDouble.format(number) == expected)
        #expect(text(.double(number), .v2) == "$\(expected.utf8.count)\r\n\(expected)\r\n")
        #expect(text(.double(number), .v3) == ",\(expected)\r\n")
    }

    @Test func parse_acceptsWhatStrtodReadsWhole_refusesTheRest() {
        func parse(_ text: String) -> Double? { RedisDouble.parse(Array(text.utf8)) }
        #expect(parse("1.5") == 1.5)
        #expect(parse("inf") == .infinity)
        #expect(parse("+inf") == .infinity)
        #expect(parse("-inf") == -.infinity)
        #expect(parse("-Infinity") == -.infinity)
        #expect(parse("0x10") == 16)
        #expect(parse("1e-320") == 1e-320, "a denormal is out of range for strtod but not zero: Redis keeps it")
        for refused in ["", " 1", "1 ", "abc", "nan", "1e400", "1e-400", "1.5x", "1\u{0}"] {
            #expect(parse(refused) == nil, "\(refused)")
        }
    }

    @Test func rangeBound_readsExclusiveAndLooserNumbers() {
        func bound(_ text: String) -> (Double, Bool)? { RedisDouble.parseRangeBound(Array(text.utf8)).map { ($0.value, $0.exclusive) } }
        #expect(bound("(1.5")! == (1.5, true))
        #expect(bound("-inf")! == (-.infinity, false))
        #expect(bound("(+inf")! == (.infinity, true))
        #expect(bound("")! == (0, false), "strtod reads nothing and stops at the end: Redis takes 0")
        #expect(bound(" 2")! == (2, false))
        #expect(bound("1e400")! == (.infinity, false))
        #expect(bound("nan") == nil)
        #expect(bound("((1") == nil)
        #expect(bound("1x") == nil)
    }

    @Test func pairArray_nestedInRESP3_flatInRESP2() {
        let pairs = RESPValue.pairArray([RESPPair(.bulk("a"), .double(0.5)), RESPPair(.bulk("b"), .double(-.infinity))])
        #expect(text(pairs, .v3) == "*2\r\n*2\r\n$1\r\na\r\n,0.5\r\n*2\r\n$1\r\nb\r\n,-inf\r\n")
        #expect(text(pairs, .v2) == "*4\r\n$1\r\na\r\n$3\r\n0.5\r\n$1\r\nb\r\n$4\r\n-inf\r\n")
        #expect(text(.pairArray([]), .v3) == "*0\r\n")
    }
}
