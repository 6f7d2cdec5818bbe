import Federation
import Foundation
import SessionModel
import Testing
@testable import Wire

/// The .proto is meant for non-Swift peers: a C program built with protobuf-c decodes a delta
/// batch Swift encoded and encodes it again; Swift must decode that back to the same batch.
///
/// The C program is built by `scripts/crosslang-c/build.sh` (Debian's protobuf-c-compiler and
/// libprotobuf-c-dev); `.ci/run` builds it and sets SESSIONFED_CROSSLANG_C. Without it the
/// test is skipped locally, but under CI=true it must run.
@Suite struct CrossLanguageTests {
    static var binary: String? {
        ProcessInfo.processInfo.environment["SESSIONFED_CROSSLANG_C"]
    }

    static var required: Bool {
        ProcessInfo.processInfo.environment["CI"] == "true"
    }

    @Test(.enabled(if: binary != nil || required, "set SESSIONFED_CROSSLANG_C to scripts/crosslang-c/build.sh's output"))
    func protobufC_decodesAndReencodesDeltaBatch_swiftDecodesEqual() throws {
        let binary = try #require(Self.binary, "CI=true but SESSIONFED_CROSSLANG_C is not set")
        let deltas = Samples.deltas()
        let batch = DeltaBatch(originSite: SiteID(1), senderSite: SiteID(2), partition: 42, firstSequence: 1_000, deltas: deltas)
        guard case .deltaBatch(let wire) = Frame.federation(.deltaBatch(batch)).wire.body else {
            Issue.record("frame body is not a delta batch")
            return
        }
        let encoded = WireMessage.encode(wire)

        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sessionfed-crosslang-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let input = directory.appendingPathComponent("batch.in")
        let output = directory.appendingPathComponent("batch.out")
        try Data(encoded).write(to: input)

        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = [input.path, output.path]
        let stdout = Pipe()
        process.standardOutput = stdout
        try process.run()
        let summary = String(decoding: stdout.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)

        let operations = deltas.reduce(0) { $0 + $1.operations.count }
        #expect(summary.contains("origin=1 sender=2 partition=42 first_sequence=1000 deltas=\(deltas.count) operations=\(operations)"), "C saw: \(summary)")

        let reencoded = [UInt8](try Data(contentsOf: output))
        let decoded = try Frame(wire: {
            var frame = Sessionfed_V1_Frame()
            frame.body = .deltaBatch(try WireMessage.decode(Sessionfed_V1_DeltaBatch.self, from: reencoded))
            return frame
        }())
        #expect(decoded == .federation(.deltaBatch(batch)))
        #expect(reencoded == encoded, "protobuf-c and swift-protobuf both write fields in number order")
    }
}
