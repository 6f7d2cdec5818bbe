import RESP
import SessionModel
import Testing
@testable import Keyspace

/// WATCH on a site of several nodes compares what the key's primary holds with what it held
/// at WATCH, possibly read from another copy: the version must be the same on every copy.
@Suite struct WatchVersionTests {
    static let key = Array("session:1".utf8)

    @Test func everyCopyOfAKey_hasTheSameVersion_andEveryChangeMovesIt() throws {
        var primary = Harness()
        primary.run("HSET", "session:1", "user", "ann")
        // Another copy, as a backup or a transaction's locked state holds it.
        var copy = Harness()
        _ = copy.keyspace.merge(state: try #require(primary.keyspace.state(of: Self.key)), key: Self.key, now: copy.now)
        let before = primary.keyspace.watchVersion(of: Self.key, now: primary.now)
        #expect(before != nil)
        #expect(copy.keyspace.watchVersion(of: Self.key, now: copy.now) == before)
        // The copy's own revision differs (it counts its own changes): not comparable.
        primary.run("HSET", "session:1", "user", "ann")
        #expect(primary.keyspace.watchVersion(of: Self.key, now: primary.now) != before, "a rewrite of the same value is a change, as in Redis")
    }

    @Test func aKeyThatExpires_changesVersion_andANeverStoredKeyHasNone() {
        var harness = Harness()
        #expect(harness.keyspace.watchVersion(of: Self.key, now: harness.now) == nil)
        harness.run("SET", "session:1", "v", "PX", "100")
        let live = harness.keyspace.watchVersion(of: Self.key, now: harness.now)
        #expect(harness.keyspace.watchVersion(of: Self.key, now: harness.now + 200) != live)
    }
}
