import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Testing
#if canImport(Glibc)
import Glibc
#endif
import TestSupport
@testable import Topology
@testable import NodeRuntime

/// Limits tested at their boundary on an in-process node with small limits.
@Suite(.serialized) struct NodeLimitsTests {
    static func topology() -> Topology {
        let node = Topology.Node(
            name: "local-1",
            client: Topology.Address(host: "127.0.0.1", port: 0),
            peer: Topology.Address(host: "127.0.0.1", port: 0),
            federation: Topology.Address(host: "127.0.0.1", port: 0),
            admin: Topology.Address(host: "127.0.0.1", port: 0),
            voter: true
        )
        return Topology(
            federation: "limits", topologyVersion: 1, defaults: Topology.Defaults(), links: .mesh, tls: nil, auth: nil,
            policies: [], sites: [Topology.Site(name: "local", id: 1, role: .active, nodes: [node])]
        )
    }

    /// Runs a node with `configure` applied, hands its port to `body`, then shuts it down.
    static func withNode(_ configure: (inout NodeConfiguration) -> Void, _ body: (Int) async throws -> Void) async throws {
        var configuration = try NodeConfiguration(topology: topology(), nodeName: "local-1")
        configure(&configuration)
        let server = NodeServer(configuration: configuration, logger: Logger(label: "test"))
        let group = ServiceGroup(services: [server], logger: Logger(label: "test"))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            let port = try await server.boundPort()
            do {
                try await body(port)
            } catch {
                await group.triggerGracefulShutdown()
                throw error
            }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
    }

    /// With `threads: 3` the clients' sockets are on two loops of their own, the node state on
    /// a third: the limits hold across the hand-over.
    @Test(arguments: [1, 3]) func maxclients_oneAboveRefused_slotFreedOnClose(threads: Int) async throws {
        try await Self.withNode({ $0.maximumClients = 2; $0.topology.defaults.threads = threads }) { port in
            let first = try RawClient(port: port)
            let second = try RawClient(port: port)
            #expect(try first.roundTrip("*1\r\n$4\r\nPING\r\n") == "+PONG\r\n")
            #expect(try second.roundTrip("*1\r\n$4\r\nPING\r\n") == "+PONG\r\n")
            let third = try RawClient(port: port)
            #expect(third.readUntilClosed() == "-ERR max number of clients reached\r\n")
            first.close()
            try await Task.sleep(for: .milliseconds(100))
            let fourth = try RawClient(port: port)
            #expect(try fourth.roundTrip("*1\r\n$4\r\nPING\r\n") == "+PONG\r\n")
        }
    }

    @Test(arguments: [1, 3]) func queryBuffer_atLimitKept_aboveClosed_othersUnaffected(threads: Int) async throws {
        try await Self.withNode({ $0.limits.maximumQueryBufferBytes = 1_024; $0.topology.defaults.threads = threads }) { port in
            let bystander = try RawClient(port: port)
            let atLimit = try RawClient(port: port)
            // An incomplete command of exactly 1,024 buffered bytes is kept waiting.
            atLimit.send("*2\r\n$4\r\nECHO\r\n$2000\r\n" + String(repeating: "a", count: 1_024 - 22))
            try await Task.sleep(for: .milliseconds(100))
            #expect(try bystander.roundTrip("*1\r\n$4\r\nPING\r\n") == "+PONG\r\n")
            atLimit.send("a")
            #expect(atLimit.readUntilClosed() == "", "over client-query-buffer-limit: closed without a reply, as Redis does")
            #expect(try bystander.roundTrip("*1\r\n$4\r\nPING\r\n") == "+PONG\r\n")
        }
    }

    /// The limit counts what is read and not yet run: a client that sends far more than it
    /// over many round trips stays connected; one that closes its side after sending gets
    /// every reply, then the close.
    @Test(arguments: [1, 3]) func queryBuffer_countsOnlyWhatIsNotRun_halfCloseAnswered(threads: Int) async throws {
        try await Self.withNode({ $0.limits.maximumQueryBufferBytes = 1_024; $0.topology.defaults.threads = threads }) { port in
            let client = try RawClient(port: port)
            let value = String(repeating: "v", count: 200)
            for round in 0..<20 {
                #expect(try client.roundTrip("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$200\r\n\(value)\r\n") == "+OK\r\n", "round \(round)")
            }
            let closing = try RawClient(port: port)
            closing.send("*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\n1\r\n*2\r\n$3\r\nGET\r\n$1\r\na\r\n")
            shutdown(closing.fd, Int32(SHUT_WR))
            #expect(closing.readUntilClosed() == "+OK\r\n$1\r\n1\r\n")
        }
    }

    @Test func bulkLimit_configured_refusesOneAbove() async throws {
        try await Self.withNode({ $0.limits.maximumBulkBytes = 10 }) { port in
            let client = try RawClient(port: port)
            #expect(try client.roundTrip("*2\r\n$4\r\nECHO\r\n$10\r\n0123456789\r\n") == "$10\r\n0123456789\r\n")
            client.send("*2\r\n$4\r\nECHO\r\n$11\r\n")
            #expect(client.readUntilClosed() == "-ERR Protocol error: invalid bulk length\r\n")
        }
    }

    @Test func keyspaceEvents_reachSubscriber_asRESP3Push() async throws {
        try await Self.withNode({ _ in }) { port in
            let subscriber = try RawClient(port: port)
            _ = try subscriber.roundTrip("*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n")
            #expect(try subscriber.roundTrip("*2\r\n$9\r\nSUBSCRIBE\r\n$19\r\n__keyevent@0__:hset\r\n") == ">3\r\n$9\r\nsubscribe\r\n$19\r\n__keyevent@0__:hset\r\n:1\r\n")
            let writer = try RawClient(port: port)
            #expect(try writer.roundTrip("*4\r\n$6\r\nCONFIG\r\n$3\r\nSET\r\n$22\r\nnotify-keyspace-events\r\n$3\r\nEh$\r\n") == "+OK\r\n")
            #expect(try writer.roundTrip("*4\r\n$4\r\nHSET\r\n$1\r\ns\r\n$1\r\nf\r\n$1\r\nv\r\n") == ":1\r\n")
            #expect(try subscriber.read() == ">3\r\n$7\r\nmessage\r\n$19\r\n__keyevent@0__:hset\r\n$1\r\ns\r\n")
        }
    }
}
