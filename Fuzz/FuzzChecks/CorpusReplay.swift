#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The `main` of a fuzz target built without `-sanitize=fuzzer`, where libFuzzer supplies none:
/// checks every file named on the command line (a directory stands for its files) against the
/// target's property, so a crash input replays in an ordinary build or under a debugger.
/// Exits 1 when a property is broken or a file cannot be read.
public func replayCorpus(arguments: [String], check: ([UInt8]) throws(PropertyViolation) -> Void) -> Never {
    guard !arguments.isEmpty else {
        print("usage: FuzzTarget FILE_OR_DIRECTORY... (built with -sanitize=fuzzer it is a libFuzzer binary)")
        exit(2)
    }
    var checked = 0, broken = 0
    for argument in arguments {
        do {
            for input in try FuzzCorpus.inputs(at: argument) {
                checked += 1
                do {
                    try check(input.bytes)
                } catch {
                    broken += 1
                    print("\(input.path): \(error)")
                }
            }
        } catch {
            broken += 1
            print("\(argument): \(error)")
        }
    }
    print("\(checked) inputs checked, \(broken) broke a property")
    exit(broken == 0 ? 0 : 1)
}
