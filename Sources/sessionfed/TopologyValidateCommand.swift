import ArgumentParser
import Foundation
import Logging
import NodeRuntime
import ServiceLifecycle
import Topology

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension TopologyCommand {
    struct Validate: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Check a topology file; exit 1 with one line per problem.")

        @Argument(help: "The topology file.") var file: String

        func run() throws {
            do {
                let topology = try loadTopology(file)
                let nodes = topology.sites.reduce(0) { $0 + $1.nodes.count }
                print("\(file): valid — federation \(topology.federation), version \(topology.topologyVersion), \(topology.sites.count) site(s), \(nodes) node(s)")
            } catch let invalid as TopologyInvalid {
                for error in invalid.errors.errors { print(error) }
                throw ExitCode(1)
            }
        }
    }
}
