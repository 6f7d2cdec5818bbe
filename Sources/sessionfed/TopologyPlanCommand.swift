import ArgumentParser
import Topology

extension TopologyCommand {
    /// `sessionfed topology plan OLD NEW`: what a new version of a topology changes, how each
    /// change is applied, and what is refused (exit 1 when anything is).
    struct Plan: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List what NEW changes against OLD (sites, nodes, links, policies, settings), how each is applied, and what is refused.",
            discussion: "Exits 0 when every change can be applied, 1 when some change is refused (the reason is printed with it)."
        )

        @Argument(help: "The topology the federation runs now.") var old: String
        @Argument(help: "The new topology.") var new: String

        func run() throws {
            let plan = TopologyPlan.between(try loadTopology(old), try loadTopology(new))
            print(plan.rendered(), terminator: "")
            if plan.refused { throw ExitCode(1) }
        }
    }
}
