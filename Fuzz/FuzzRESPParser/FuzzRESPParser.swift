import CLibFuzzer
import FuzzChecks

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// libFuzzer's entry point: one input through the request parser's properties. A broken property traps,
/// so libFuzzer keeps the input as a crash.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRESPParser(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size))
    do {
        try RESPRequestParserProperty.check(input)
    } catch {
        fatalError("\(error)")
    }
    return 0
}

/// Built with `-sanitize=fuzzer -DFUZZING` (scripts/fuzz/run.sh): libFuzzer, with its usual
/// options. Otherwise (plain `swift build`, no libFuzzer): replays the files or directories
/// named on the command line.
@main enum FuzzRESPParserMain {
    static func main() {
        #if FUZZING
        var argc = CommandLine.argc
        var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv, fuzzRESPParser))
        #else
        replayCorpus(arguments: Array(CommandLine.arguments.dropFirst()), check: RESPRequestParserProperty.check)
        #endif
    }
}
