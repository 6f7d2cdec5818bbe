import CLibFuzzer

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What every fuzz target does with one input and with its command line; each target's own
/// file keeps only what must be its own, the `@_cdecl` entry point and the `@main`.
public enum FuzzTarget {
    /// One input through `check`. A broken property traps, so libFuzzer keeps the input as a
    /// crash.
    public static func run(_ data: UnsafePointer<UInt8>?, _ size: Int, check: ([UInt8]) throws(PropertyViolation) -> Void) -> CInt {
        let input = size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size))
        do {
            try check(input)
        } catch {
            fatalError("\(error)")
        }
        return 0
    }

    /// Built with `-sanitize=fuzzer -DFUZZING` (scripts/fuzz/run.sh): libFuzzer, with its usual
    /// options, calling `entry`. Otherwise (plain `swift build`, no libFuzzer): replays the
    /// files or directories named on the command line through `check`.
    public static func main(entry: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt, check: ([UInt8]) throws(PropertyViolation) -> Void) -> Never {
        #if FUZZING
        var argc = CommandLine.argc
        var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv, entry))
        #else
        replayCorpus(arguments: Array(CommandLine.arguments.dropFirst()), check: check)
        #endif
    }
}
