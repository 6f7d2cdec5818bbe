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
        subcommands: [Node.self, Demo.self, Status.self, Drain.self, DR.self, TopologyCommand.self, Certs.self, Simulate.self, Bench.self, Proxy.self]
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
        var configuration = try NodeConfiguration(topology: topology, nodeName: node)
        configuration.topologyDirectory = directory(of: self.topology)
        try await runNode(configuration, logger: logger)
    }
}

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

struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a local three-site federation (seoul, tokyo, frankfurt) with mTLS and print how to use it."
    )

    @Option(help: "trace, debug, info, notice, warning, error or critical.") var logLevel: Logger.Level = .warning

    func run() async throws {
        let logger = makeLogger("sessionfed.demo", level: logLevel)
        guard case .success(let topology) = TopologyParser.parse(DemoTopology.localDemo, file: "(embedded demo topology)") else {
            throw ValidationError("the embedded demo topology is invalid")
        }
        var template = "/tmp/sessionfed-demo-XXXXXX".utf8CString
        guard let created = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw ValidationError("cannot create a temporary directory for the demo certificates")
        }
        let scratch = String(cString: created)
        defer { _ = try? FileManager.default.removeItem(atPath: scratch) }
        let certificates = FederationTLSPaths.resolve(topology.tls?.directory ?? "certs", in: scratch)
        try FederationCertificates.write(try FederationCertificates.issue(for: topology, validityDays: 2), to: certificates, force: true)
        let configurations = try topology.sites.flatMap(\.nodes).map { node in
            var configuration = try NodeConfiguration(topology: topology, nodeName: node.name)
            configuration.topologyDirectory = scratch
            // Every node of the demo stops at once: nobody could take a drained partition.
            configuration.drainsOnShutdown = false
            return configuration
        }
        try await runNodes(configurations, logger: logger) { servers in
            // Print once every site has synchronized with the others (a few hundred ms).
            for _ in 0..<200 {
                var loading = false
                for server in servers where (try? await server.snapshot().loading) ?? false { loading = true }
                if !loading { break }
                try? await Task.sleep(for: .milliseconds(50))
            }
            let endpoints = topology.sites.map { site in
                let node = site.nodes[0]
                return "  \(site.name.padding(toLength: 10, withPad: " ", startingAt: 0)) redis-cli -p \(node.client.port)    status: curl -s localhost:\(node.admin.port)/status"
            }.joined(separator: "\n")
            print("""
                sessionfed demo: federation '\(topology.federation)', three active sites, one node each,
                linked by mutual TLS (certificates in \(certificates), removed on exit).

                \(endpoints)

                Walkthrough:
                  redis-cli -p 16379 HSET spring:session:sessions:42 user ann cart 1    # log in at seoul
                  redis-cli -p 16380 HGETALL spring:session:sessions:42                 # read it at tokyo
                  redis-cli -p 16381 PEXPIRE spring:session:sessions:42 1800000        # touch at frankfurt
                  redis-cli -p 16381 DEL spring:session:sessions:42                    # log out at frankfurt
                  redis-cli -p 16379 EXISTS spring:session:sessions:42                 # gone at seoul too: 0

                In another terminal, `swift run sessionfed status --topology topologies/local-demo.yaml`
                shows the sites, the links, their lag and conflicts. Stop with Ctrl-C.
                """)
            fflush(nil)
        }
    }
}

struct Certs: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "certs",
        abstract: "Create the certificates federation links authenticate with.",
        subcommands: [Init.self, Rotate.self]
    )

    struct Rotate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Issue new node certificates from the existing CA (ca.pem and its key); nodes load them on SIGHUP without dropping links.",
            discussion: "Writes <node>.pem and <node>.key for every node of the topology into --out, keeping ca.pem. Send SIGHUP to each node (or restart it) to use them; established connections stay up, new ones use the new certificate."
        )

        @Option(help: "The topology file.") var topology: String
        @Option(help: "Directory holding ca.pem, where the node certificates are written.") var out: String
        @Option(help: "The CA's private key (default: <out>/ca.key).") var caKey: String?
        @Option(help: "Validity of the new certificates in days (at most the CA's).") var days = 825

        func run() throws {
            let topology = try loadTopology(self.topology)
            let keyPath = caKey ?? "\(out)/ca.key"
            let caPEM: String
            let caKeyPEM: String
            do { caPEM = try String(contentsOfFile: "\(out)/ca.pem", encoding: .utf8) } catch {
                throw ValidationError("cannot read the CA certificate \(out)/ca.pem: \(error)")
            }
            do { caKeyPEM = try String(contentsOfFile: keyPath, encoding: .utf8) } catch {
                throw ValidationError("cannot read the CA key \(keyPath): \(error) (give it with --ca-key)")
            }
            let files = try FederationCertificates.rotate(for: topology, caPEM: caPEM, caKeyPEM: caKeyPEM, validityDays: days)
            try FederationCertificates.write(files, to: out, force: false)
            let nodes = topology.sites.flatMap(\.nodes).map(\.name)
            print("wrote new certificates and keys for \(nodes.count) node(s) in \(out)/, signed by \(out)/ca.pem: \(nodes.joined(separator: ", "))")
            print("send SIGHUP to each node to load them (links stay up)")
        }
    }

    struct Init: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a federation CA and one certificate per node of a topology (ca.pem, <node>.pem, <node>.key)."
        )

        @Option(help: "The topology file.") var topology: String
        @Option(help: "Directory to write into (the topology's tls.directory).") var out: String
        @Option(help: "Validity of the certificates in days.") var days = 825
        @Flag(help: "Replace an existing CA (every node must then get the new files).") var force = false
        @Option(help: "Write the CA's private key here instead of next to the node certificates (keep it off the nodes).") var caKeyOut: String?

        func run() throws {
            let topology = try loadTopology(self.topology)
            var files = try FederationCertificates.issue(for: topology, validityDays: days)
            let keyPath = caKeyOut ?? "\(out)/ca.key"
            if let caKeyOut, let index = files.firstIndex(where: { $0.name == "ca.key" }) {
                let key = files.remove(at: index)
                try FederationCertificates.write([FederationCertificates.File(name: lastComponent(of: caKeyOut), contents: key.contents, secret: true)], to: directory(of: caKeyOut), force: force)
            }
            try FederationCertificates.write(files, to: out, force: force)
            let nodes = topology.sites.flatMap(\.nodes).map(\.name)
            print("wrote the CA certificate: \(out)/ca.pem (every node needs it)")
            print("wrote the CA private key: \(keyPath) (keep it off the nodes; `certs rotate` needs it)")
            print("wrote a certificate and key for \(nodes.count) node(s) in \(out)/: \(nodes.map { "\($0).pem, \($0).key" }.joined(separator: "; "))")
            if let tls = topology.tls {
                print("the topology expects ca: \(tls.ca), directory: \(tls.directory) (relative to the topology file)")
            } else {
                print("note: the topology has no tls: section; add `tls: {ca: <dir>/ca.pem, directory: <dir>}` to use these")
            }
        }
    }
}

struct TopologyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "topology",
        abstract: "Work with topology files.",
        subcommands: [Validate.self, Plan.self, Apply.self, Graph.self]
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
