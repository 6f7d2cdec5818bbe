import Foundation
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// `threads: 3`: a real node whose clients' sockets are spread over two loops of their own
/// while one loop runs every command. Connections accepted one after the other land on
/// alternate loops, so each test's clients cover both.
@Suite(.serialized) struct ClientLoopsTests {
    /// Every connection pipelines commands against one shared counter and keys of its own:
    /// each sees its replies in the order it sent its commands, and no command is lost or run
    /// twice.
    @Test func pipelinesFromEveryLoop_runOnOneKeyspace_repliesInOrder() throws {
        let node = try NodeProcess(threads: 3)
        defer { #expect(node.terminate() == 0) }
        let clients = try (0..<12).map { _ in try RESPTestClient(port: node.clientPort) }
        let rounds = 200
        for (index, client) in clients.enumerated() {
            var words: [[String]] = []
            for round in 0..<rounds {
                words.append(["INCR", "shared"])
                words.append(["SET", "own:\(index)", "\(round)"])
                words.append(["GET", "own:\(index)"])
            }
            client.send(raw: words.flatMap(Self.encode))
        }
        for (index, client) in clients.enumerated() {
            var last: Int64 = 0
            for round in 0..<rounds {
                guard case .integer(let count) = try client.read() else {
                    Issue.record("client \(index): INCR did not answer an integer")
                    return
                }
                #expect(count > last, "client \(index): its INCRs ran in the order it sent them")
                last = count
                #expect(try client.read() == .simple("OK"))
                #expect(try client.read() == .text("\(round)"), "client \(index): GET follows its own SET")
            }
        }
        #expect(try clients[0].command("GET", "shared") == .text("\(12 * rounds)"))
        guard case .bulk(let info?) = try clients[1].command("INFO", "stats") else {
            Issue.record("INFO did not answer a bulk string")
            return
        }
        #expect(String(decoding: info, as: UTF8.self).contains("io_threads_active:1"))
    }

    /// A subscriber and a publisher on different loops: every message arrives, in order,
    /// and PUBLISH counts the subscriber.
    @Test func pubsubAcrossLoops_deliversEveryMessageInOrder() throws {
        let node = try NodeProcess(threads: 3)
        defer { #expect(node.terminate() == 0) }
        let subscriber = try RESPTestClient(port: node.clientPort)
        let publisher = try RESPTestClient(port: node.clientPort)
        #expect(try subscriber.command("SUBSCRIBE", "news") == .array([.text("subscribe"), .text("news"), .integer(1)]))
        for index in 0..<100 {
            #expect(try publisher.command("PUBLISH", "news", "m\(index)") == .integer(1))
        }
        for index in 0..<100 {
            #expect(try subscriber.read() == .array([.text("message"), .text("news"), .text("m\(index)")]))
        }
    }

    /// A transaction from one loop and writes from the other: EXEC's commands run back to
    /// back. CLIENT LIST shows the clients of both loops; QUIT closes only its own.
    @Test func transactionClientListAndQuit_acrossLoops() throws {
        let node = try NodeProcess(threads: 3)
        defer { #expect(node.terminate() == 0) }
        let first = try RESPTestClient(port: node.clientPort)
        let second = try RESPTestClient(port: node.clientPort)
        #expect(try first.command("CLIENT", "SETNAME", "first") == .simple("OK"))
        #expect(try second.command("CLIENT", "SETNAME", "second") == .simple("OK"))
        #expect(try first.command("MULTI") == .simple("OK"))
        #expect(try first.command("INCR", "k") == .simple("QUEUED"))
        #expect(try second.command("SET", "k", "10") == .simple("OK"))
        #expect(try first.command("INCR", "k") == .simple("QUEUED"))
        #expect(try first.command("EXEC") == .array([.integer(11), .integer(12)]))
        guard case .bulk(let list?) = try first.command("CLIENT", "LIST") else {
            Issue.record("CLIENT LIST did not answer a bulk string")
            return
        }
        let lines = String(decoding: list, as: UTF8.self).split(separator: "\n")
        #expect(lines.count == 2 && lines.contains { $0.contains("name=first ") } && lines.contains { $0.contains("name=second ") }, "\(lines)")
        let loops = Set(lines.compactMap { $0.split(separator: " ").first { $0.hasPrefix("io-thread=") } })
        #expect(loops == ["io-thread=1", "io-thread=2"], "one client on each of the two client loops: \(lines)")
        #expect(try second.command("QUIT") == .simple("OK"))
        #expect(second.isClosedByServer())
        #expect(try first.command("GET", "k") == .text("12"))
        var remaining = lines.count
        for _ in 0..<100 where remaining != 1 {
            usleep(20_000)
            if case .bulk(let list?) = try first.command("CLIENT", "LIST") { remaining = String(decoding: list, as: UTF8.self).split(separator: "\n").count }
        }
        #expect(remaining == 1, "the second client left CLIENT LIST")
    }

    static func encode(_ words: [String]) -> [UInt8] {
        var bytes = Array("*\(words.count)\r\n".utf8)
        for word in words { bytes += Array("$\(word.utf8.count)\r\n\(word)\r\n".utf8) }
        return bytes
    }
}
