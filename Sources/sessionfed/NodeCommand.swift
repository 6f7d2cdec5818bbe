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

struct Node: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run one node of a topology.")

    @Option(help: "The topology file.") var topology: String
    @Option(help: "This node's name in the topology.") var node: String
    @Option(help: "trace, debug, info, notice, warning, error or critical.") var logLevel: Logger.Level = .info

    func run() async throws {
        let logger = makeLogger("sessionfed.node", level: logLevel)
        let topology = try loadTopology(self.topology)
        var configuration = try NodeConfiguration(topology: topology, nodeName: node)
        configuration.topologyDirectory = directory(of: self.topology)
        try await runNode(configuration, logger: logger)
    }
}
