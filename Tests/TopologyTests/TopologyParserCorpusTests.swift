import Foundation
import Testing
@testable import FuzzChecks
@testable import Topology

/// Replays the committed fuzz corpus (`Fuzz/Corpus/FuzzTopologyParser`, README "Fuzzing")
/// through the property the libFuzzer target checks, so every `swift test` guards what fuzzing
/// found.
@Suite struct TopologyParserCorpusTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let corpus = root.appendingPathComponent("Fuzz/Corpus/FuzzTopologyParser").path

    @Test func everyCorpusInput_keepsTheParsersProperties() throws {
        let inputs = try FuzzCorpus.inputs(at: Self.corpus)
        #expect(inputs.count >= 12, "the hand-written seeds are missing")
        var accepted = 0
        for input in inputs {
            do {
                try TopologyParserProperty.check(input.bytes)
            } catch {
                Issue.record("\(input.path): \(error)")
            }
            if case .success = TopologyParser.parse(String(decoding: input.bytes, as: UTF8.self), file: "t.yaml") { accepted += 1 }
        }
        // The accepted topologies' checks ran, not only the refusals'.
        #expect(accepted >= 10)
    }

    /// Every example topology is a seed, so the fuzzer starts from what operators write.
    @Test func everyExampleTopology_isASeed() throws {
        let examples = try FileManager.default.contentsOfDirectory(atPath: Self.root.appendingPathComponent("topologies").path).filter { $0.hasSuffix(".yaml") }
        #expect(!examples.isEmpty)
        for example in examples {
            let original = try Data(contentsOf: Self.root.appendingPathComponent("topologies/\(example)"))
            let seed = try? Data(contentsOf: URL(fileURLWithPath: "\(Self.corpus)/seed-\(example)"))
            #expect(seed == original, "copy topologies/\(example) to \(Self.corpus)/seed-\(example)")
        }
    }

    @Test func refusalWithoutErrors_isAViolation() {
        #expect(throws: PropertyViolation.self) { try TopologyParserProperty.checkRefusal(TopologyErrors(errors: [])) }
        let unlocated = TopologyError(file: TopologyParserProperty.file, line: 0, key: "sites", message: "is required")
        #expect(throws: PropertyViolation.self) { try TopologyParserProperty.checkRefusal(TopologyErrors(errors: [unlocated])) }
    }
}
