import Foundation
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// A real `sessionfed node` process, real sockets: bad input closes only the connection it
/// came on; the node and other clients carry on. Tests taking `threads` run with the clients'
/// sockets on the node state's loop (1) and on two loops of their own (3).
@Suite(.serialized) struct NodeServerTests {
    @Test(arguments: [1, 3]) func malformedRESP_closesOnlyThatConnection(threads: Int) throws {
        let node = try NodeProcess(threads: threads)
        defer { #expect(node.terminate() == 0) }
        let bystander = try RESPTestClient(port: node.clientPort)
        #expect(try bystander.command("SET", "session:1", "alive") == .simple("OK"))

        let cases: [(String, [UInt8], String)] = [
            ("expected $", Array("*1\r\n+PING\r\n".utf8), "ERR Protocol error: expected '$', got '+'"),
            ("negative bulk length", Array("*1\r\n$-3\r\n".utf8), "ERR Protocol error: invalid bulk length"),
            ("oversize bulk", Array("*1\r\n$536870913\r\n".utf8), "ERR Protocol error: invalid bulk length"),
            ("bad multibulk", Array("*zz\r\n".utf8), "ERR Protocol error: invalid multibulk length"),
            ("unbalanced quotes", Array("SET a \"b\r\n".utf8), "ERR Protocol error: unbalanced quotes in request"),
        ]
        for (name, bytes, expected) in cases {
            let client = try RESPTestClient(port: node.clientPort)
            client.send(raw: bytes)
            #expect(try client.read() == .error(expected), "\(name)")
            #expect(client.isClosedByServer(), "\(name): connection closed")
        }
        #expect(try bystander.command("GET", "session:1") == .text("alive"))
    }

    @Test func randomBytesAndTruncatedFrames_nodeSurvives() throws {
        let node = try NodeProcess()
        defer { #expect(node.terminate() == 0) }
        var state: UInt64 = 42
        for round in 0..<200 {
            let client = try RESPTestClient(port: node.clientPort, timeoutSeconds: 1)
            var bytes: [UInt8] = []
            for _ in 0..<(round % 50 + 1) {
                state = state &* 6364136223846793005 &+ 1
                bytes.append(UInt8(truncatingIfNeeded: state >> 56))
            }
            if round % 3 == 0 { bytes = Array("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$10\r\nabc".utf8) }  // truncated frame
            client.send(raw: bytes)
            client.close()
        }
        let check = try RESPTestClient(port: node.clientPort)
        #expect(try check.command("PING") == .simple("PONG"))
        #expect(try check.command("EXISTS", "k") == .integer(0), "a truncated SET never ran")
    }

    @Test func wrongTypeAndUnknownCommands_exactRedisErrors() throws {
        let node = try NodeProcess()
        defer { #expect(node.terminate() == 0) }
        let client = try RESPTestClient(port: node.clientPort)
        _ = try client.command("HSET", "h", "f", "v")
        #expect(try client.command("GET", "h") == .error("WRONGTYPE Operation against a key holding the wrong kind of value"))
        #expect(try client.command("SADD", "h", "m") == .error("WRONGTYPE Operation against a key holding the wrong kind of value"))
        #expect(try client.command("FOO", "a", "b") == .error("ERR unknown command 'FOO', with args beginning with: 'a' 'b' "))
        #expect(try client.command("GET") == .error("ERR wrong number of arguments for 'get' command"))
        #expect(try client.command("SELECT", "16") == .error("ERR DB index is out of range"))
        #expect(try client.command("SELECT", "0") == .simple("OK"))
        #expect(try client.command("EVALSHA", "abc", "0") == .error("NOSCRIPT No matching script. Please use EVAL."))
        #expect(try client.command("RENAME", "missing", "x") == .error("ERR no such key"))
    }

    @Test(arguments: [1, 3]) func pipelinedCommands_answeredInOrder(threads: Int) throws {
        let node = try NodeProcess(threads: threads)
        defer { #expect(node.terminate() == 0) }
        let client = try RESPTestClient(port: node.clientPort)
        var bytes: [UInt8] = []
        for index in 0..<500 { bytes += Array("*3\r\n$3\r\nSET\r\n$\(String(index).count + 2)\r\nk:\(index)\r\n$1\r\nv\r\n".utf8) }
        bytes += Array("*1\r\n$6\r\nDBSIZE\r\n".utf8)
        client.send(raw: bytes)
        for _ in 0..<500 { #expect(try client.read() == .simple("OK")) }
        #expect(try client.read() == .integer(500))
    }

    @Test func maxmemory_noeviction_refusesWritesNotReads() throws {
        let node = try NodeProcess()
        defer { #expect(node.terminate() == 0) }
        let client = try RESPTestClient(port: node.clientPort)
        #expect(try client.command("SET", "session:a", String(repeating: "x", count: 4_000)) == .simple("OK"))
        #expect(try client.command("CONFIG", "SET", "maxmemory", "1kb") == .simple("OK"))
        #expect(try client.command("SET", "session:b", "y") == .error("OOM command not allowed when used memory > 'maxmemory'."))
        #expect(try client.command("GET", "session:a") == .text(String(repeating: "x", count: 4_000)), "nothing evicted")
        #expect(try client.command("DEL", "session:a") == .integer(1), "deletes still free memory")
        #expect(try client.command("SET", "session:b", "y") == .simple("OK"))
        #expect(try client.command("CONFIG", "SET", "maxmemory-policy", "allkeys-lru")
            == .error("ERR CONFIG SET failed (possibly related to argument 'maxmemory-policy') - sessionfed never evicts sessions: only noeviction is supported"))
        #expect(try client.command("CONFIG", "GET", "maxmemory*") == .array([.text("maxmemory"), .text("1024"), .text("maxmemory-policy"), .text("noeviction")]))
    }

    @Test func authRequired_noauthThenWrongpassThenOK() throws {
        let node = try NodeProcess(extraTopology: "auth:\n  password: s3cret\n  users:\n    app: apppass")
        defer { #expect(node.terminate() == 0) }
        let client = try RESPTestClient(port: node.clientPort)
        #expect(try client.command("GET", "k") == .error("NOAUTH Authentication required."))
        #expect(try client.command("AUTH", "nope") == .error("WRONGPASS invalid username-password pair or user is disabled."))
        #expect(try client.command("AUTH", "s3cret") == .simple("OK"))
        #expect(try client.command("AUTH", "app", "apppass") == .simple("OK"))
        #expect(try client.command("PING") == .simple("PONG"))
    }

    @Test(arguments: [1, 3]) func sigterm_finishesPipelinedWork_exitsZero(threads: Int) throws {
        let node = try NodeProcess(threads: threads)
        let client = try RESPTestClient(port: node.clientPort)
        var bytes: [UInt8] = []
        for index in 0..<200 { bytes += Array("*3\r\n$3\r\nSET\r\n$\(String(index).count + 2)\r\nk:\(index)\r\n$1\r\nv\r\n".utf8) }
        client.send(raw: bytes)
        #expect(try client.read() == .simple("OK"))
        kill(node.process.processIdentifier, SIGTERM)
        var answered = 1
        while (try? client.read()) != nil { answered += 1 }
        #expect(answered == 200, "every command read before SIGTERM was answered")
        #expect(node.terminate() == 0)
    }

    /// Clients that keep sending while SIGTERM arrives: each gets its replies in order, with no
    /// gap and none twice, until its connection closes; the node exits 0 and logs no crash.
    /// With `threads` 3 the sockets' loops stop while the node state's loop may still be
    /// answering what they handed it.
    @Test(arguments: [1, 3]) func sigterm_whileClientsKeepSending_repliesStayInOrder(threads: Int) throws {
        let node = try NodeProcess(threads: threads)
        let port = node.clientPort
        let answers = Answers()
        let group = DispatchGroup()
        for client in 0..<6 {
            // A thread each, all at once (a dispatch queue starts blocking work a few at a time).
            group.enter()
            Thread {
                defer { group.leave() }
                var answered = 0
                var inOrder = true
                defer { answers.record(client: client, answered: answered, inOrder: inOrder) }
                guard let connection = try? RESPTestClient(port: port) else { return }
                var next = 0
                while next < 1_000_000 {
                    // Twenty pipelined commands, then their replies.
                    for index in next..<(next + 20) { connection.send(["ECHO", "\(client):\(index)"]) }
                    for index in next..<(next + 20) {
                        guard let reply = try? connection.read() else { return }
                        if reply != .text("\(client):\(index)") { inOrder = false }
                        answered += 1
                    }
                    next += 20
                    answers.advance(client: client, to: answered)
                }
            }.start()
        }
        // The clients are well under way before the signal.
        let deadline = Date().addingTimeInterval(20)
        while answers.minimumSoFar(of: 6) < 100 && Date() < deadline { usleep(10_000) }
        #expect(answers.minimumSoFar(of: 6) >= 100, "every client answered before the signal")
        kill(node.process.processIdentifier, SIGTERM)
        #expect(group.wait(timeout: .now() + 20) == .success, "every client saw its connection close")
        #expect(node.terminate() == 0)
        #expect(answers.all.count == 6 && answers.all.allSatisfy(\.inOrder), "\(answers.all)")
        let log = node.log
        // (NIO prints "…already shut down…" for work handed to a loop that stopped.)
        for crash in ["Fatal error", "precondition", "Invalid state", "already shut down"] {
            #expect(!log.contains(crash), "\(log.suffix(2_000))")
        }
    }

    /// What each client of the SIGTERM test saw, written from their threads.
    final class Answers: @unchecked Sendable {
        struct Seen: Sendable { var client: Int; var answered: Int; var inOrder: Bool }
        private let lock = NSLock()
        private var seen: [Seen] = []
        private var progress: [Int: Int] = [:]

        func record(client: Int, answered: Int, inOrder: Bool) {
            lock.withLock { seen.append(Seen(client: client, answered: answered, inOrder: inOrder)) }
        }

        var all: [Seen] { lock.withLock { seen } }

        func minimumSoFar(of clients: Int) -> Int {
            lock.withLock { progress.count < clients ? 0 : progress.values.min() ?? 0 }
        }

        func advance(client: Int, to answered: Int) {
            lock.withLock { progress[client] = answered }
        }
    }

    @Test func adminEndpoints_healthStatusMetrics() throws {
        let node = try NodeProcess()
        defer { #expect(node.terminate() == 0) }
        let client = try RESPTestClient(port: node.clientPort)
        _ = try client.command("HSET", "spring:session:sessions:1", "creationTime", "1")
        let health = try httpGet(port: node.adminPort, path: "/healthz")
        #expect(health.hasPrefix("HTTP/1.1 200") && health.hasSuffix("ok\n"))
        let status = try httpGet(port: node.adminPort, path: "/status")
        #expect(status.contains("\"keys\" : 1") && status.contains("\"node\" : \"local-1\""))
        let metrics = try httpGet(port: node.adminPort, path: "/metrics")
        for name in ["sessionfed_connected_clients 1", "sessionfed_keys 1", "sessionfed_sessions_created_total 1",
                     "sessionfed_commands_by_name_total{command=\"hset\"} 1", "sessionfed_memory_used_bytes", "sessionfed_expired_keys_total 0"] {
            #expect(metrics.contains(name), "\(name)")
        }
    }

    /// Counters a connection updates in place (its command's slot, its CLIENT LIST entry)
    /// stay right across CONFIG RESETSTAT and between connections.
    @Test(arguments: [1, 3]) func commandCounts_clientList_afterResetstat(threads: Int) throws {
        let node = try NodeProcess(threads: threads)
        defer { #expect(node.terminate() == 0) }
        let client = try RESPTestClient(port: node.clientPort)
        let other = try RESPTestClient(port: node.clientPort)
        _ = try client.command("HSET", "h", "f", "v")
        _ = try client.command("GET", "k")
        #expect(try client.command("CONFIG", "RESETSTAT") == .simple("OK"))
        _ = try client.command("GET", "k")
        _ = try other.command("GET", "k")
        _ = try other.command("SET", "k", "v")
        let metrics = try httpGet(port: node.adminPort, path: "/metrics")
        #expect(metrics.contains("sessionfed_commands_by_name_total{command=\"get\"} 2"), "\(metrics)")
        #expect(metrics.contains("sessionfed_commands_by_name_total{command=\"set\"} 1"), "\(metrics)")
        #expect(!metrics.contains("sessionfed_commands_by_name_total{command=\"hset\"}"), "counted before the reset")
        guard case .bulk(let list?) = try other.command("CLIENT", "LIST") else {
            Issue.record("CLIENT LIST did not answer a bulk string")
            return
        }
        let lines = String(decoding: list, as: UTF8.self).split(separator: "\n")
        #expect(lines.count == 2, "\(lines)")
        #expect(lines.contains { $0.contains("cmd=get ") }, "the first connection's last command: \(lines)")
        #expect(lines.contains { $0.contains("cmd=client ") }, "this connection's: \(lines)")
    }

    /// A site of one node is its own majority: it elects itself and owns every partition,
    /// without any peer connection.
    @Test func oneNodeSite_leadsItsControlPlane() throws {
        let node = try NodeProcess()
        defer { #expect(node.terminate() == 0) }
        var status = ""
        // Elected after one election timeout (1-1.5 s), then the partitions are placed.
        for _ in 0..<100 where !(status.contains("\"role\" : \"leader\"") && status.contains("\"withoutPrimary\" : 0")) {
            Thread.sleep(forTimeInterval: 0.05)
            status = try httpGet(port: node.adminPort, path: "/status")
        }
        #expect(status.contains("\"role\" : \"leader\"") && status.contains("\"leader\" : \"local-1\""), "\(status)")
        #expect(status.contains("\"withoutPrimary\" : 0"), "\(status)")
        let metrics = try httpGet(port: node.adminPort, path: "/metrics")
        for name in ["sessionfed_controlplane_is_leader 1", "sessionfed_controlplane_has_leader 1", "sessionfed_partitions_without_primary 0"] {
            #expect(metrics.contains(name), "\(name)")
        }
    }
}

/// A one-shot HTTP/1.1 GET over a raw socket (the admin endpoint is plain HTTP on loopback).
func httpGet(port: Int, path: String) throws -> String {
    let client = try RESPTestClient(port: port)
    client.send(raw: Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".utf8))
    _ = client.isClosedByServer()
    return String(decoding: client.buffer, as: UTF8.self)
}
