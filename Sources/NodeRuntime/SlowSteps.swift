import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Event-loop steps that held the loop for long. Every client of a node waits for whatever
/// its loop is doing, so a step that runs long is a pause every client sees (DESIGN.md §4:
/// no pause in proportion to the keyspace). The steps that can grow with the data (frames of
/// other sites, the federation and data-plane ticks, the node's timers, /status) are timed;
/// one over `thresholdNanoseconds` is logged with what it was and counted in /metrics, so an
/// operator sees which work held clients back, and how long.
struct SlowSteps {
    static let thresholdNanoseconds: UInt64 = 10_000_000
    static let logger = Logger(label: "sessionfed.node")

    var count: UInt64 = 0
    var longestNanoseconds: UInt64 = 0

    static func nowNanoseconds() -> UInt64 {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return UInt64(spec.tv_sec) * 1_000_000_000 + UInt64(spec.tv_nsec)
    }

    /// CPU time of the calling thread: a step whose wall time is far above it waited for a
    /// CPU (the machine was busy), not for its own work.
    static func threadCPUNanoseconds() -> UInt64 {
        var spec = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &spec)
        return UInt64(spec.tv_sec) * 1_000_000_000 + UInt64(spec.tv_nsec)
    }

    mutating func record(_ step: @autoclosure () -> String, nanoseconds: UInt64, cpuNanoseconds: UInt64? = nil) {
        longestNanoseconds = max(longestNanoseconds, nanoseconds)
        guard nanoseconds >= Self.thresholdNanoseconds else { return }
        count += 1
        var metadata: Logger.Metadata = ["step": "\(step())", "held_ms": "\(Double(nanoseconds / 10_000) / 100)"]
        if let cpuNanoseconds { metadata["cpu_ms"] = "\(Double(cpuNanoseconds / 10_000) / 100)" }
        Self.logger.warning("event loop held by one step: clients waited", metadata: metadata)
    }
}

extension NodeState {
    /// Runs `body` (one step on the event loop) and records how long it held the loop.
    func timed<Result>(_ step: @autoclosure () -> String, _ body: () throws -> Result) rethrows -> Result {
        let started = SlowSteps.nowNanoseconds()
        let startedCPU = SlowSteps.threadCPUNanoseconds()
        defer {
            slowSteps.record(step(), nanoseconds: SlowSteps.nowNanoseconds() - started, cpuNanoseconds: SlowSteps.threadCPUNanoseconds() - startedCPU)
        }
        return try body()
    }
}
