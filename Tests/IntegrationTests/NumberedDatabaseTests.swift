import Foundation
import Testing
import TestSupport

/// SELECT 0–15 on a real node: each database its own keyspace, per connection.
@Suite(.serialized) struct NumberedDatabaseTests {
    @Test func select_outsideZeroToFifteen_refused_insideSwitchesKeyspace() throws {
        let node = try NodeProcess()
        defer { #expect(node.terminate() == 0) }
        let client = try RESPTestClient(port: node.clientPort)
        #expect(try client.command("SELECT", "16") == .error("ERR DB index is out of range"))
        #expect(try client.command("SELECT", "-1") == .error("ERR DB index is out of range"))
        #expect(try client.command("SELECT", "one") == .error("ERR value is not an integer or out of range"))
        #expect(try client.command("SET", "k", "zero") == .simple("OK"))
        #expect(try client.command("SELECT", "15") == .simple("OK"))
        #expect(try client.command("GET", "k") == .bulk(nil))
        #expect(try client.command("SELECT", "1") == .simple("OK"))
        #expect(try client.command("SET", "k", "one") == .simple("OK"))
        #expect(try client.command("GET", "k") == .text("one"))
        #expect(try client.command("DBSIZE") == .integer(1))
        guard case .bulk(let line?) = try client.command("CLIENT", "INFO") else { Issue.record("CLIENT INFO"); return }
        #expect(String(decoding: line, as: UTF8.self).contains(" db=1 "))
        guard case .bulk(let info?) = try client.command("INFO", "keyspace") else { Issue.record("INFO"); return }
        let text = String(decoding: info, as: UTF8.self)
        #expect(text.contains("db0:keys=1,expires=0") && text.contains("db1:keys=1,expires=0"), "\(text)")
        // Another connection starts in database 0.
        let other = try RESPTestClient(port: node.clientPort)
        #expect(try other.command("GET", "k") == .text("zero"))
        // RESET returns to database 0.
        #expect(try client.command("RESET") == .simple("RESET"))
        #expect(try client.command("GET", "k") == .text("zero"))
    }

    @Test func swapdbAndMove_refusedWithAReason() throws {
        let node = try NodeProcess()
        defer { #expect(node.terminate() == 0) }
        let client = try RESPTestClient(port: node.clientPort)
        #expect(try client.command("SWAPDB", "0", "1") == .error("ERR SWAPDB is not supported by this server: each database is replicated and federated on its own"))
        #expect(try client.command("MOVE", "k", "1") == .error("ERR MOVE is not supported by this server: each database is replicated and federated on its own"))
    }

    /// As in Redis, a SELECT queued in MULTI changes the database of the commands after it;
    /// WATCH watches the key of the database selected when it ran.
    @Test func selectInsideMulti_andWatch_followTheDatabase() throws {
        let node = try NodeProcess()
        defer { #expect(node.terminate() == 0) }
        let client = try RESPTestClient(port: node.clientPort)
        #expect(try client.command("MULTI") == .simple("OK"))
        #expect(try client.command("SET", "k", "zero") == .simple("QUEUED"))
        #expect(try client.command("SELECT", "2") == .simple("QUEUED"))
        #expect(try client.command("SET", "k", "two") == .simple("QUEUED"))
        #expect(try client.command("EXEC") == .array([.simple("OK"), .simple("OK"), .simple("OK")]))
        #expect(try client.command("GET", "k") == .text("two"))
        #expect(try client.command("SELECT", "0") == .simple("OK"))
        #expect(try client.command("GET", "k") == .text("zero"))

        let writer = try RESPTestClient(port: node.clientPort)
        #expect(try client.command("SELECT", "2") == .simple("OK"))
        #expect(try client.command("WATCH", "k") == .simple("OK"))
        // The same name in database 0 changes: the watch on database 2's key still holds.
        #expect(try writer.command("SET", "k", "changed") == .simple("OK"))
        #expect(try client.command("MULTI") == .simple("OK"))
        #expect(try client.command("GET", "k") == .simple("QUEUED"))
        #expect(try client.command("EXEC") == .array([.text("two")]))
        #expect(try client.command("WATCH", "k") == .simple("OK"))
        #expect(try writer.command("SELECT", "2") == .simple("OK"))
        #expect(try writer.command("SET", "k", "changed") == .simple("OK"))
        #expect(try client.command("MULTI") == .simple("OK"))
        #expect(try client.command("GET", "k") == .simple("QUEUED"))
        #expect(try client.command("EXEC") == .array(nil))
    }

    @Test func keyspaceNotifications_nameTheDatabase() throws {
        let node = try NodeProcess()
        defer { #expect(node.terminate() == 0) }
        let client = try RESPTestClient(port: node.clientPort)
        let subscriber = try RESPTestClient(port: node.clientPort)
        #expect(try client.command("CONFIG", "SET", "notify-keyspace-events", "KEA") == .simple("OK"))
        _ = try subscriber.command("SUBSCRIBE", "__keyspace@1__:k", "__keyevent@1__:set")
        _ = try subscriber.read()
        #expect(try client.command("SET", "k", "zero") == .simple("OK"))
        #expect(try client.command("SELECT", "1") == .simple("OK"))
        #expect(try client.command("SET", "k", "one") == .simple("OK"))
        #expect(try subscriber.read() == .array([.text("message"), .text("__keyspace@1__:k"), .text("set")]))
        #expect(try subscriber.read() == .array([.text("message"), .text("__keyevent@1__:set"), .text("k")]))
    }
}
