import Foundation
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Testing
import TestSupport
@testable import NodeRuntime
@testable import Topology

/// Two sites in one process over real TCP and real mutual TLS, with certificates from
/// `FederationCertificates` (what `sessionfed certs init` writes).
@Suite(.serialized) struct FederationTLSTests {
    /// The refusals these tests provoke are logged at error level; keep the test output quiet.
    static let logger: Logger = {
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        return logger
    }()

    static func topology(federation: String = "tls-test") throws -> Topology {
        let ports = try freePorts(8)
        func node(_ name: String, _ offset: Int) -> Topology.Node {
            Topology.Node(
                name: name,
                client: Topology.Address(host: "127.0.0.1", port: ports[offset]),
                peer: Topology.Address(host: "127.0.0.1", port: ports[offset + 1]),
                federation: Topology.Address(host: "127.0.0.1", port: ports[offset + 2]),
                admin: Topology.Address(host: "127.0.0.1", port: ports[offset + 3]),
                voter: true
            )
        }
        return Topology(
            federation: federation, topologyVersion: 1, defaults: Topology.Defaults(), links: .mesh,
            tls: Topology.TLSSettings(ca: "certs/ca.pem", directory: "certs"), auth: nil, policies: [],
            sites: [
                Topology.Site(name: "seoul", id: 1, role: .active, nodes: [node("seoul-1", 0)]),
                Topology.Site(name: "tokyo", id: 2, role: .active, nodes: [node("tokyo-1", 4)]),
            ]
        )
    }

    static func scratchDirectory() throws -> String {
        let path = NSTemporaryDirectory() + "sessionfed-tls-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// Runs the two nodes, each with certificates under its own directory, around `body`.
    static func withSites(
        _ topology: Topology, directories: [String], _ body: ([NodeServer]) async throws -> Void
    ) async throws {
        let servers = try ["seoul-1", "tokyo-1"].enumerated().map { index, name in
            var configuration = try NodeConfiguration(topology: topology, nodeName: name)
            configuration.topologyDirectory = directories[index]
            return NodeServer(configuration: configuration, logger: Self.logger)
        }
        let group = ServiceGroup(services: servers, logger: Self.logger)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            for server in servers { _ = try await server.boundPort() }
            do {
                try await body(servers)
            } catch {
                await group.triggerGracefulShutdown()
                throw error
            }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
    }

    @Test func demoTopologyIsTheExampleFile() throws {
        let file = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../topologies/local-demo.yaml").standardized
        #expect(try String(contentsOf: file, encoding: .utf8) == DemoTopology.localDemo + "\n")
    }

    @Test func sitesReplicateOverMutualTLS() async throws {
        let topology = try Self.topology()
        let scratch = try Self.scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        try FederationCertificates.write(try FederationCertificates.issue(for: topology, validityDays: 1), to: scratch + "/certs", force: false)
        try await Self.withSites(topology, directories: [scratch, scratch]) { servers in
            try await eventually("both sites to finish loading") {
                let first = try await servers[0].snapshot().loading
                let second = try await servers[1].snapshot().loading
                return !first && !second
            }
            let seoul = try RawClient(port: topology.sites[0].nodes[0].client.port)
            #expect(try seoul.roundTrip("*4\r\n$4\r\nHSET\r\n$9\r\nsession:1\r\n$4\r\nuser\r\n$3\r\nann\r\n") == ":1\r\n")
            let tokyo = try RawClient(port: topology.sites[1].nodes[0].client.port)
            try await eventually("the write to reach tokyo") {
                try tokyo.roundTrip("*3\r\n$4\r\nHGET\r\n$9\r\nsession:1\r\n$4\r\nuser\r\n") == "$3\r\nann\r\n"
            }
            let link = try await servers[0].snapshot().federationLinks[0]
            #expect(link.state == "connected")
            #expect(link.lastError == nil)
        }
    }

    @Test func aCertificateFromAnotherCAIsRefused() async throws {
        let topology = try Self.topology()
        let (first, second) = (try Self.scratchDirectory(), try Self.scratchDirectory())
        defer {
            try? FileManager.default.removeItem(atPath: first)
            try? FileManager.default.removeItem(atPath: second)
        }
        // Same topology, two different CAs: each node trusts only its own.
        try FederationCertificates.write(try FederationCertificates.issue(for: topology, validityDays: 1), to: first + "/certs", force: false)
        try FederationCertificates.write(try FederationCertificates.issue(for: topology, validityDays: 1), to: second + "/certs", force: false)
        try await Self.withSites(topology, directories: [first, second]) { servers in
            try await eventually("seoul to report the TLS failure") {
                try await servers[0].snapshot().federationLinks.first?.lastError?.contains("TLS handshake failed") == true
            }
            let link = try await servers[0].snapshot().federationLinks[0]
            #expect(link.state == "refused")
            #expect(try await servers[1].snapshot().loading, "tokyo must not serve data it could not recover")
        }
    }

    @Test func certsInitRefusesToReplaceACA() throws {
        let topology = try Self.topology()
        let scratch = try Self.scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let files = try FederationCertificates.issue(for: topology, validityDays: 1)
        #expect(files.map(\.name).sorted() == ["ca.key", "ca.pem", "seoul-1.key", "seoul-1.pem", "tokyo-1.key", "tokyo-1.pem"])
        try FederationCertificates.write(files, to: scratch, force: false)
        #expect(throws: (any Error).self) { try FederationCertificates.write(files, to: scratch, force: false) }
        let attributes = try FileManager.default.attributesOfItem(atPath: scratch + "/seoul-1.key")
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
    }

    @Test func missingCertificatesStopTheNodeWithAClearError() async throws {
        let topology = try Self.topology()
        let scratch = try Self.scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        var configuration = try NodeConfiguration(topology: topology, nodeName: "seoul-1")
        configuration.topologyDirectory = scratch
        let server = NodeServer(configuration: configuration, logger: Self.logger)
        do {
            try await server.run()
            Issue.record("the node ran without its certificates")
        } catch {
            #expect("\(error)".contains("cannot read the federation CA"))
            #expect("\(error)".contains("sessionfed certs init"))
        }
    }
}
