#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The inputs of a fuzz corpus, for replaying them outside libFuzzer (the tests, and a fuzz
/// target built without `-sanitize=fuzzer`).
public enum FuzzCorpus {
    public struct Input: Sendable {
        public var path: String
        public var bytes: [UInt8]
    }

    /// Nothing exists at the path given.
    public struct Missing: Error, CustomStringConvertible {
        public var path: String
        public var description: String { "no corpus at \(path)" }
    }

    /// The file at `path`, or every file directly in the directory at `path` sorted by name
    /// (libFuzzer keeps a corpus flat). A path that does not exist throws: a corpus that moved
    /// must not replay as empty.
    public static func inputs(at path: String) throws -> [Input] {
        let files = FileManager.default
        var isDirectory = false
        guard files.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw Missing(path: path)
        }
        let paths = isDirectory ? try files.contentsOfDirectory(atPath: path).sorted().map { "\(path)/\($0)" } : [path]
        return try paths.map { file in
            Input(path: file, bytes: Array(try Data(contentsOf: URL(fileURLWithPath: file))))
        }
    }
}
