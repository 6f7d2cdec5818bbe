import Foundation
import Testing
@testable import Simulator

/// Seeded runs of whole sites — control plane, partition replication and client traffic
/// through the real RaftNode, PartitionCopies and Keyspace — under every fault profile.
/// Each run checks per-register linearizability of the clients' history (with a final read of
/// every register, so a lost acknowledged write fails it), one writing primary per partition
/// at a time, and identical copies once the site has converged.
@Suite struct DataPlaneSimulationTests {
    /// Seeds per fault profile (5 profiles: 500 runs by default).
    static let seedsPerProfile = UInt64(ProcessInfo.processInfo.environment["SESSIONFED_SIMULATION_SEEDS"] ?? "") ?? 100
    static let firstSeed = UInt64(ProcessInfo.processInfo.environment["SESSIONFED_SIMULATION_FIRST_SEED"] ?? "") ?? 1

    static func run(seed: UInt64, nodes: Int, faults: FaultProfile, steps: UInt64 = 4_000) -> (DataPlaneSimulation, SimulationOutcome) {
        var simulation = DataPlaneSimulation(options: SimulationOptions(seed: seed, nodes: nodes, faults: faults, steps: steps))
        let outcome = simulation.run()
        return (simulation, outcome)
    }

    /// Seeds that fail for a reason known and not fixed yet, each with the reason. They are
    /// left out of the seeded runs and run on their own as known issues, so fixing the cause
    /// shows (the known-issue test then fails and asks for the entry to go).
    /// Seeds found failing and not fixed yet, each with what it found; they are left out of
    /// the seeded runs and must keep failing until fixed (the known-issue test then fails and
    /// asks for the entry to go). None now.
    static let knownIssues: [FaultProfile: [UInt64: String]] = [:]

    /// Seeds that once failed, run on their own whatever the seed range.
    /// - chaos 72, crashes 126: a rebalancing handover gave a partition's primary to a node
    ///   that had just crashed (not yet detected); the old primary became a backup that had to
    ///   copy again, and the partition was re-created empty. Planned handovers now keep the
    ///   old primary's copy whole and in sync, so it is promoted instead.
    /// - chaos 290: a false suspicion took a partition's only in-sync backup out of the map,
    ///   then its primary crashed (two faults within one failover, more than backupCount 1
    ///   survives). It passes since handovers changed its course; the double fault itself is
    ///   still possible with minInSync 1.
    @Test(arguments: [(FaultProfile.chaos, UInt64(72)), (.crashes, 126), (.chaos, 290)])
    func onceFailingSeeds_holdEveryInvariant(_ profile: FaultProfile, _ seed: UInt64) {
        let (simulation, outcome) = Self.run(seed: seed, nodes: seed % 2 == 0 ? 5 : 3, faults: profile)
        #expect(outcome.passed, "\(outcome.violations) — replay: \(simulation.replayCommand) --trace")
    }

    @Test(arguments: FaultProfile.allCases)
    func seededRunsHoldEveryInvariant(_ profile: FaultProfile) {
        var checked = 0
        var handovers = 0
        var drains = 0
        var joins = 0
        var leaves = 0
        for seed in Self.firstSeed..<(Self.firstSeed + Self.seedsPerProfile) where Self.knownIssues[profile]?[seed] == nil {
            let (simulation, outcome) = Self.run(seed: seed, nodes: seed % 2 == 0 ? 5 : 3, faults: profile)
            checked += simulation.history.values.reduce(0) { $0 + $1.count }
            handovers += simulation.controlPlaneCheckers.handoversCompleted
            drains += outcome.drainsCompleted
            joins += outcome.joins
            leaves += outcome.leaves
            if !outcome.passed {
                Issue.record("\(outcome.violations.joined(separator: "; ")) — replay: \(simulation.replayCommand) --trace")
                return
            }
        }
        #expect(checked > Int(Self.seedsPerProfile) * 20, "the clients did work: \(checked) operations checked")
        #expect(handovers >= Int(Self.seedsPerProfile), "planned handovers ran under the faults: \(handovers) in \(Self.seedsPerProfile) seeds")
        #expect(drains >= Int(Self.seedsPerProfile) / 2, "nodes drained, exited and came back under the faults: \(drains) in \(Self.seedsPerProfile) seeds")
        // Half the seeds run five nodes, the last joining; in half of those the planned drain is
        // a non-voter's scale-in.
        #expect(joins >= Int(Self.seedsPerProfile) / 2 - 1, "never-run nodes joined: \(joins) in \(Self.seedsPerProfile) seeds")
        #expect(leaves >= Int(Self.seedsPerProfile) / 10, "drained non-voters left for good: \(leaves) in \(Self.seedsPerProfile) seeds")
    }

    @Test func knownIssues_stillReproduce() {
        for (profile, seeds) in Self.knownIssues {
            for (seed, reason) in seeds {
                withKnownIssue(Comment(rawValue: reason)) {
                    let (simulation, outcome) = Self.run(seed: seed, nodes: seed % 2 == 0 ? 5 : 3, faults: profile)
                    #expect(outcome.passed, "\(outcome.violations) — replay: \(simulation.replayCommand)")
                }
            }
        }
    }

    @Test func aRunIsDeterministic() {
        let (first, a) = Self.run(seed: 42, nodes: 3, faults: .chaos)
        let (second, b) = Self.run(seed: 42, nodes: 3, faults: .chaos)
        #expect(a.passed && b.passed)
        #expect(a.messagesDelivered == b.messagesDelivered)
        #expect(first.acknowledged == second.acknowledged && first.unknown == second.unknown)
        #expect(first.history == second.history)
    }

    @Test func faultFreeRun_acknowledgesWritesAndChecksThem() {
        let (simulation, outcome) = Self.run(seed: 9, nodes: 3, faults: .none)
        #expect(outcome.passed, "\(outcome.violations)")
        #expect(simulation.acknowledged > 100)
        #expect(simulation.tryAgain == 0)
    }

    /// Seeds that once failed, each pinned with what it found.
    @Test(arguments: [
        // Two holes on the way: a backup reported caught up (and was marked in sync) before
        // its primary counted it for commits, so a write committed in between was missing
        // after a handover; and a primary orphaned while cut off was reinstated at a new epoch
        // with its only complete copy discarded.
        (UInt64(3), 3, FaultProfile.chaos, UInt64(5_000)),
        // The primary crashed while its in-sync backup was cut off: the backup's complete copy
        // was forgotten and the partition re-created empty.
        (UInt64(206), 3, FaultProfile.chaos, UInt64(5_000)),
        // A restarted node's new incarnation was admitted before the map moved the old one's
        // partitions: it inherited their primaries with no data.
        (UInt64(101), 3, FaultProfile.crashes, UInt64(5_000)),
        // A backup removed from a partition and added again within one epoch was marked in
        // sync on a report its node sent before the map re-added it (about its old, complete
        // copy): the new copy was still transferring when a handover made it primary, and
        // the writes committed while the partition had no backup were gone.
        (UInt64(331), 3, FaultProfile.partitions, UInt64(4_000)),
        (UInt64(102), 5, FaultProfile.crashes, UInt64(5_000)),
        (UInt64(128), 3, FaultProfile.crashes, UInt64(5_000)),
    ])
    func pinnedSeed_passes(seed: UInt64, nodes: Int, faults: FaultProfile, steps: UInt64) {
        let (simulation, outcome) = Self.run(seed: seed, nodes: nodes, faults: faults, steps: steps)
        #expect(outcome.passed, "\(outcome.violations) — replay: \(simulation.replayCommand)")
    }
}

@Suite struct LinearizabilityCheckerTests {
    typealias Op = RegisterOperation

    @Test func sequentialWritesAndReads_areLinearizable() {
        let history = [
            Op(client: 0, kind: .write(1), invokedAt: 1, respondedAt: 2),
            Op(client: 1, kind: .read(1), invokedAt: 3, respondedAt: 4),
            Op(client: 0, kind: .write(2), invokedAt: 5, respondedAt: 6),
            Op(client: 1, kind: .read(2), invokedAt: 7, respondedAt: 8),
        ]
        #expect(LinearizabilityChecker.check(history) == nil)
    }

    @Test func staleReadAfterAnAcknowledgedWrite_isNot() {
        let history = [
            Op(client: 0, kind: .write(1), invokedAt: 1, respondedAt: 2),
            Op(client: 0, kind: .write(2), invokedAt: 3, respondedAt: 4),
            Op(client: 1, kind: .read(1), invokedAt: 5, respondedAt: 6),
        ]
        #expect(LinearizabilityChecker.check(history) != nil)
    }

    @Test func lostAcknowledgedWrite_readAsEmpty_isNot() {
        let history = [
            Op(client: 0, kind: .write(1), invokedAt: 1, respondedAt: 2),
            Op(client: 1, kind: .read(nil), invokedAt: 3, respondedAt: 4),
        ]
        #expect(LinearizabilityChecker.check(history) != nil)
    }

    @Test func concurrentWrites_eitherOrderExplainsTheReads() {
        let history = [
            Op(client: 0, kind: .write(1), invokedAt: 1, respondedAt: 10),
            Op(client: 1, kind: .write(2), invokedAt: 2, respondedAt: 9),
            Op(client: 2, kind: .read(1), invokedAt: 11, respondedAt: 12),
        ]
        #expect(LinearizabilityChecker.check(history) == nil)
    }

    @Test func writeWithUnknownOutcome_mayTakeEffectLateOrNever() {
        let late = [
            Op(client: 0, kind: .write(1), invokedAt: 1, respondedAt: nil),
            Op(client: 1, kind: .read(nil), invokedAt: 2, respondedAt: 3),
            Op(client: 1, kind: .read(1), invokedAt: 4, respondedAt: 5),
        ]
        #expect(LinearizabilityChecker.check(late) == nil)
        let never = [Op(client: 0, kind: .write(1), invokedAt: 1, respondedAt: nil), Op(client: 1, kind: .read(nil), invokedAt: 2, respondedAt: 3)]
        #expect(LinearizabilityChecker.check(never) == nil)
        // But it cannot take effect, be overwritten and then come back.
        let resurrected = [
            Op(client: 0, kind: .write(1), invokedAt: 1, respondedAt: nil),
            Op(client: 1, kind: .read(1), invokedAt: 2, respondedAt: 3),
            Op(client: 1, kind: .write(2), invokedAt: 4, respondedAt: 5),
            Op(client: 1, kind: .read(1), invokedAt: 6, respondedAt: 7),
        ]
        #expect(LinearizabilityChecker.check(resurrected) != nil)
    }
}
