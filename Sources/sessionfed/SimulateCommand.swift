import ArgumentParser
import Foundation
import Simulator

/// `sessionfed simulate`: one deterministic run of a site under seeded faults — its control
/// plane, or with `--data-plane` the whole site: partitions replicated, clients on every node,
/// and the linearizability, single-writer and identical-copies checks.
struct Simulate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a site's control plane in a deterministic simulation with seeded faults; exit 1 if an invariant fails."
    )

    @Option(help: "Root seed (random when omitted; printed either way).") var seed: UInt64?
    @Option(help: "Voter nodes in the site.") var nodes = 3
    @Option(help: "none, lossy, partitions, crashes or chaos.") var faults = "chaos"
    @Option(help: "Simulated milliseconds with faults on (a liveness phase follows).") var steps: UInt64 = 20_000
    @Flag(help: "With --data-plane: print the story of a failing run (commands, replies, map changes).") var trace = false
    @Flag(help: "Simulate the data plane too: replicated partitions and client traffic, with the linearizability checker.") var dataPlane = false

    func run() throws {
        guard let profile = FaultProfile(rawValue: faults) else {
            throw ValidationError("unknown fault profile '\(faults)' (\(FaultProfile.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        guard (1...9).contains(nodes) else { throw ValidationError("--nodes must be 1 to 9") }
        let seed = self.seed ?? UInt64.random(in: 1...UInt64.max)
        let options = SimulationOptions(seed: seed, nodes: nodes, faults: profile, steps: steps)
        print("simulate: \(options)")
        let started = Date()
        if dataPlane {
            var simulation = DataPlaneSimulation(options: options)
            simulation.tracing = trace
            let outcome = simulation.run()
            try report(
                outcome, since: started,
                summary: "\(simulation.acknowledged) writes acknowledged, \(simulation.history.values.reduce(0) { $0 + $1.count }) operations checked, "
                    + "\(simulation.tryAgain) -TRYAGAIN, \(simulation.unknown) unknown outcomes; \(outcome.messagesDelivered) messages delivered, "
                    + "\(outcome.messagesDropped) dropped, \(outcome.crashes) crashes, \(outcome.partitionsInjected) partitions, "
                    + "\(simulation.controlPlaneCheckers.handoversCompleted) planned handovers, \(outcome.drainsCompleted)/\(outcome.drains) drains completed, \(outcome.joins) joins, \(outcome.leaves) leaves",
                trace: simulation.trace, replay: simulation.replayCommand
            )
            return
        }
        var simulation = Simulation(options: options)
        let outcome = simulation.run()
        try report(
            outcome, since: started,
            summary: "\(outcome.messagesDelivered) messages delivered, \(outcome.messagesDropped) dropped, \(outcome.crashes) crashes, "
                + "\(outcome.partitionsInjected) partitions, \(outcome.leaderElections) terms with a leader; "
                + "final leader \(outcome.finalLeader ?? "none") in term \(outcome.finalTerm), commit index \(outcome.finalCommitIndex)",
            trace: [], replay: options.replayCommand
        )
    }

    /// Prints the outcome; on failure the trace, every violation and the replay command, and
    /// exits 1.
    func report(_ outcome: SimulationOutcome, since started: Date, summary: String, trace: [String], replay: String) throws {
        print("outcome: \(outcome.passed ? "passed" : "FAILED") in \(String(format: "%.2f", Date().timeIntervalSince(started))) s — \(summary)")
        guard !outcome.passed else { return }
        for line in trace { print("trace: \(line)") }
        for violation in outcome.violations { print("violation: \(violation)") }
        print("replay: \(replay)")
        throw ExitCode(1)
    }
}
