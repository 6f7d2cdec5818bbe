import CLibFuzzer
import FuzzChecks

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// libFuzzer's entry point: one input through the topology parser's properties. A broken property traps,
/// so libFuzzer keeps the input as a crash.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTopologyParser(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size))
    do {
        try TopologyParserProperty.check(input)
    } catch {
        fatalError("\(error)")
    }
    return 0
}

/// Built with `-sanitize=fuzzer -DFUZZING` (scripts/fuzz/run.sh): libFuzzer, with its usual
/// options. Otherwise (plain `swift build`, no libFuzzer): replays the files or directories
/// named on the command line.
@main enum FuzzTopologyParserMain {
    static func main() {
        #if FUZZING
        var argc = CommandLine.argc
        var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv, fuzzTopologyParser))
        #else
        replayCorpus(arguments: Array(CommandLine.arguments.dropFirst()), check: TopologyParserProperty.check)
        #endif
    }
}
