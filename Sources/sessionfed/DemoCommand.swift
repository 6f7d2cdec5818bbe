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
