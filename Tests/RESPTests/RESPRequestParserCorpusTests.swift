import Foundation
import Testing
@testable import FuzzChecks

/// Replays the committed fuzz corpus (`Fuzz/Corpus/FuzzRESPParser`, README "Fuzzing") through
/// the property the libFuzzer target checks, so every `swift test` guards what fuzzing found.
@Suite struct RESPRequestParserCorpusTests {
    static let corpus = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fuzz/Corpus/FuzzRESPParser").path

    @Test func everyCorpusInput_keepsTheParsersProperties() throws {
        let inputs = try FuzzCorpus.inputs(at: Self.corpus)
        // The hand-written seeds alone are 22: fewer means the corpus went missing.
        #expect(inputs.count >= 22)
        for input in inputs {
            do {
                try RESPRequestParserProperty.check(input.bytes)
            } catch {
                Issue.record("\(input.path): \(error)")
            }
        }
    }

    /// The comparison must catch a cut that changes the requests, and allow only Redis's own
    /// difference (a line refused for its buffered length before its end arrived).
    @Test func cutChangingTheRequests_isAViolation_bufferedLengthRefusalIsNot() {
        typealias Session = RESPRequestParserProperty.Session
        let ping: [[UInt8]] = [Array("PING".utf8)]
        let whole = Session(commands: [ping, ping], error: nil, unconsumed: [])
        #expect(throws: PropertyViolation.self) {
            try RESPRequestParserProperty.compare(whole: whole, split: Session(commands: [ping], error: nil, unconsumed: []), cut: 1)
        }
        #expect(throws: PropertyViolation.self) {
            try RESPRequestParserProperty.compare(whole: whole, split: Session(commands: [ping], error: "Protocol error: invalid bulk length"), cut: 1)
        }
        #expect(throws: Never.self) {
            try RESPRequestParserProperty.compare(whole: whole, split: Session(commands: [ping], error: "Protocol error: too big mbulk count string"), cut: 1)
        }
    }

    @Test func leadingZeroCount_longerThanTheInlineLimit_parsesInOneRead_refusedWhenCut() {
        let limits = RESPRequestParserProperty.smallLimits
        let count = "*" + String(repeating: "0", count: limits.maximumInlineBytes) + "1\r\n"
        let input = Array((count + "$4\r\nPING\r\n").utf8)
        let whole = RESPRequestParserProperty.parse(reads: [input[...]], limits: limits)
        #expect(whole.commands == [[Array("PING".utf8)]])
        let split = RESPRequestParserProperty.parse(reads: [input[..<(count.utf8.count - 2)], input[(count.utf8.count - 2)...]], limits: limits)
        #expect(split.error == "Protocol error: too big mbulk count string")
    }
}
