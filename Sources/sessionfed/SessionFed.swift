import ArgumentParser
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
        subcommands: [Node.self, Demo.self, Status.self, TopologyCommand.self, Proxy.self]
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

struct Node: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run one node of a topology.")

    @Option(help: "The topology file.") var topology: String
    @Option(help: "This node's name in the topology.") var node: String
    @Option(help: "trace, debug, info, notice, warning, error or critical.") var logLevel: Logger.Level = .info

    func run() async throws {
        let logger = makeLogger("sessionfed.node", level: logLevel)
        let topology = try loadTopology(self.topology)
        let configuration = try NodeConfiguration(topology: topology, nodeName: node)
        try await runNode(configuration, logger: logger)
    }
}

/// Runs a node's services until SIGTERM or SIGINT, then drains them in reverse order.
func runNode(_ configuration: NodeConfiguration, logger: Logger, onReady: (@Sendable (NodeServer) async -> Void)? = nil) async throws {
    let server = NodeServer(configuration: configuration, logger: logger)
    let group = ServiceGroup(
        configuration: ServiceGroupConfiguration(
            // Shutdown runs in reverse order: the client listener drains first.
            services: [.init(service: server.adminService()), .init(service: server)],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger
        )
    )
    if let onReady {
        async let running: Void = group.run()
        if (try? await server.boundPort()) != nil { await onReady(server) }
        try await running
    } else {
        try await group.run()
    }
}

struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run a local demo and print how to use it.")

    @Option(help: "trace, debug, info, notice, warning, error or critical.") var logLevel: Logger.Level = .warning

    func run() async throws {
        let logger = makeLogger("sessionfed.demo", level: logLevel)
        guard case .success(let topology) = TopologyParser.parse(DemoTopology.singleNode, file: "(embedded demo topology)") else {
            throw ValidationError("the embedded demo topology is invalid")
        }
        let configuration = try NodeConfiguration(topology: topology, nodeName: "local-1")
        try await runNode(configuration, logger: logger) { server in
            let port = (try? await server.boundPort()) ?? configuration.node.client.port
            print("""
                sessionfed demo: one site ('local'), one node, listening on 127.0.0.1:\(port)

                Try it with redis-cli:
                  redis-cli -p \(port) HSET spring:session:sessions:42 creationTime 1700000000000 sessionAttr:user ann
                  redis-cli -p \(port) PEXPIRE spring:session:sessions:42 1800000
                  redis-cli -p \(port) HGETALL spring:session:sessions:42
                  redis-cli -p \(port) DEL spring:session:sessions:42

                Every write already carries its version-vector metadata (site id 1).
                Stop with Ctrl-C.
                """)
            fflush(nil)
        }
    }
}

enum DemoTopology {
    static let singleNode = """
        federation: demo-sessions
        topologyVersion: 1
        defaults:
          backupCount: 0
        sites:
          - name: local
            id: 1
            role: active
            nodes:
              - name: local-1
                client: 127.0.0.1:16379
                peer: 127.0.0.1:17379
                federation: 127.0.0.1:18379
                admin: 127.0.0.1:19379
        """
}

struct TopologyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "topology",
        abstract: "Work with topology files.",
        subcommands: [Validate.self]
    )

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

struct Proxy: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wan-proxy",
        abstract: "A TCP proxy emulating a wide-area link between sites, for tests and rehearsals.",
        discussion: """
            Every chunk is delayed by --delay-ms in each direction. Send lines to the control port \
            (e.g. with `nc`): `delay MS`, `cut` (close connections, refuse new ones), `blackhole` \
            (drop bytes silently), `restore`, `status`.
            """
    )

    @Option(help: "Address to listen on (host:port).") var listen: String
    @Option(help: "Address to forward to (host:port).") var target: String
    @Option(help: "Control address (host:port).") var control: String
    @Option(help: "One-way delay in milliseconds.") var delayMs: Int64 = 0

    func run() async throws {
        guard let listen = Topology.Address(listen), let target = Topology.Address(target), let control = Topology.Address(control) else {
            throw ValidationError("addresses are host:port")
        }
        let logger = makeLogger("sessionfed.wan-proxy", level: .notice)
        try await WANProxy(listen: listen, target: target, control: control, delayMilliseconds: delayMs, logger: logger).run()
    }
}
