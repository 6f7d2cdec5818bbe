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

@main
struct SessionFed: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sessionfed",
        abstract: "Web sessions kept safe across nodes and datacenters, behind a Redis-protocol endpoint.",
        version: ServerIdentity.version,
        subcommands: [Node.self, Demo.self, Status.self, Drain.self, DR.self, TopologyCommand.self, Certs.self, Simulate.self, Bench.self]
    )
}

/// Reads and validates a topology file; on failure prints one line per problem.
func loadTopology(_ path: String) throws -> Topology {
    guard let file = fopen(path, "r") else {
        throw ValidationError("cannot read topology file \(path): \(String(cString: strerror(errno)))")
    }
    defer { fclose(file) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65_536)
    while true {
        let count = fread(&chunk, 1, chunk.count, file)
        if count <= 0 { break }
        bytes += chunk[0..<count]
    }
    switch TopologyParser.parse(String(decoding: bytes, as: UTF8.self), file: path) {
    case .success(let topology): return topology
    case .failure(let errors): throw TopologyInvalid(errors: errors)
    }
}

struct TopologyInvalid: Error, CustomStringConvertible {
    var errors: TopologyErrors
    var description: String { errors.description }
}

func makeLogger(_ label: String, level: Logger.Level) -> Logger {
    LoggingSystem.bootstrap { label in
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = level
        return handler
    }
    return Logger(label: label)
}

extension Logger.Level: @retroactive ExpressibleByArgument {}

/// The file name of a path.
func lastComponent(of path: String) -> String {
    path.lastIndex(of: "/").map { String(path[path.index(after: $0)...]) } ?? path
}

/// The directory of a file path ("." for a bare file name).
func directory(of path: String) -> String {
    guard let slash = path.lastIndex(of: "/") else { return "." }
    return slash == path.startIndex ? "/" : String(path[..<slash])
}

/// Runs a node's services until SIGTERM or SIGINT, then drains them in reverse order.
func runNode(_ configuration: NodeConfiguration, logger: Logger) async throws {
    try await runNodes([configuration], logger: logger)
}

/// Runs several nodes in one process (the demo) or one; `onReady` runs once all listen.
func runNodes(_ configurations: [NodeConfiguration], logger: Logger, onReady: (@Sendable ([NodeServer]) async -> Void)? = nil) async throws {
    let servers = configurations.map { NodeServer(configuration: $0, logger: logger) }
    let group = ServiceGroup(
        configuration: ServiceGroupConfiguration(
            // Shutdown runs in reverse order: the client listeners drain first.
            services: servers.map { ServiceGroupConfiguration.ServiceConfiguration(service: $0.adminService()) }
                // A node that drained on request (`sessionfed drain`) returns on its own: the
                // process then stops as on SIGTERM, exit 0.
                + servers.map { ServiceGroupConfiguration.ServiceConfiguration(service: $0, successTerminationBehavior: .gracefullyShutdownGroup) },
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger
        )
    )
    if let onReady {
        async let running: Void = group.run()
        var ready = true
        for server in servers where (try? await server.boundPort()) == nil { ready = false }
        if ready { await onReady(servers) }
        try await running
    } else {
        try await group.run()
    }
}
