import Federation
import Keyspace
import RESP
import SessionModel
import Testing

/// Races between expiry at one site and writes at another (DESIGN.md §2.4, §2.3 rule 7).
@Suite struct ExpiryRaceTests {
    /// Seoul writes `key` (expiring in 10 s) and both sites see it; then the link is cut and
    /// 9 s pass, so that tokyo still sees the key live and seoul will see it expired at 11 s.
    static func keyAboutToExpire(_ words: String...) -> FederationHarness {
        var harness = FederationHarness(sites: [1, 2])
        harness.connectAll()
        harness.run(seoul, words)
        harness.run(seoul, "PEXPIRE", words[1], "10000")
        harness.settle()
        harness.cutLink(seoul, tokyo)
        harness.now += 9_000
        return harness
    }

    /// FLUSHALL is a delete of every key, those expired but kept for their grace period too:
    /// skipping them let a touch another site made before the expiry bring them back after
    /// the flush.
    @Test func flushAll_deletesKeysInTheirExpiryGrace_soAConcurrentTouchCannotBringThemBack() {
        var harness = FederationHarness(sites: [1, 2])
        harness.connectAll()
        harness.run(seoul, "SET", "session:1", "ann", "PX", "10000")
        harness.run(seoul, "SET", "session:2", "bob")
        harness.settle()
        harness.cutLink(seoul, tokyo)
        harness.now += 9_000
        // Tokyo keeps the session alive, a second before it would expire.
        harness.run(tokyo, "PEXPIRE", "session:1", "60000")
        harness.now += 2_000
        #expect(harness.reply(seoul, ["EXISTS", "session:1"]) == .integer(0), "expired at seoul, kept for its grace period")
        #expect(harness.run(seoul, "FLUSHALL")?.reply == .ok)
        harness.restoreLink(seoul, tokyo)
        harness.settle(milliseconds: 100)
        for site in harness.sites {
            #expect(harness.reply(site, ["DBSIZE"]) == .integer(0), "site \(site) after the flush")
        }
        expectConverged(&harness)
    }

    /// §2.4: a touch made before expiry revives the key. Seoul writes a field to its expired
    /// copy while Tokyo's touch, made before the expiry, is still on the way: the write used to
    /// act as a delete there, so under delete-wins the touch was discarded and the other fields
    /// vanished at every site.
    @Test func aTouchMadeBeforeExpiryRevivesTheKey_evenAfterAWriteToItsExpiredCopyElsewhere() {
        var harness = Self.keyAboutToExpire("HSET", "session:1", "user", "ann", "cart", "3")
        harness.run(tokyo, "PEXPIRE", "session:1", "60000")
        harness.now += 2_000
        #expect(harness.reply(seoul, ["EXISTS", "session:1"]) == .integer(0), "expired at seoul")
        #expect(harness.run(seoul, "HSET", "session:1", "theme", "dark")?.reply == .integer(1))
        harness.restoreLink(seoul, tokyo)
        harness.settle(milliseconds: 100)
        for site in harness.sites {
            #expect(harness.reply(site, ["HGETALL", "session:1"]) == .map([
                RESPPair(.bulkString(Array("cart".utf8)), .bulkString(Array("3".utf8))),
                RESPPair(.bulkString(Array("theme".utf8)), .bulkString(Array("dark".utf8))),
                RESPPair(.bulkString(Array("user".utf8)), .bulkString(Array("ann".utf8))),
            ]), "site \(site) keeps the whole revived session")
            #expect(harness.reply(site, ["PTTL", "session:1"]) == .integer(58_000 - 100), "site \(site) keeps tokyo's touch")
        }
        expectConverged(&harness)
    }

    /// Redis's rule where no touch intervenes: a write to an expired key starts a new key, at
    /// every site, and a write another site made to the old key before the restart stays with
    /// the old key.
    @Test func aWriteToAnExpiredKeyStartsANewKey_whenNoTouchRevivedIt() {
        var harness = Self.keyAboutToExpire("HSET", "session:1", "user", "ann")
        harness.run(tokyo, "HSET", "session:1", "cart", "3")
        harness.now += 2_000
        #expect(harness.run(seoul, "HSET", "session:1", "theme", "dark")?.reply == .integer(1))
        harness.restoreLink(seoul, tokyo)
        harness.settle(milliseconds: 100)
        for site in harness.sites {
            #expect(harness.reply(site, ["HGETALL", "session:1"]) == .map([
                RESPPair(.bulkString(Array("theme".utf8)), .bulkString(Array("dark".utf8))),
            ]), "site \(site) holds the new key alone")
            #expect(harness.reply(site, ["PTTL", "session:1"]) == .integer(-1), "site \(site): the new key has no expiry")
        }
        expectConverged(&harness)
    }

    /// A set member added to an expired key is a restart too; a later DEL at the restarting
    /// site removes old and new members alike (delete-wins still holds for real deletes).
    @Test func aDeleteAfterARestartRemovesTheRevivedKeyEverywhere() {
        var harness = Self.keyAboutToExpire("SADD", "index:ann", "s1", "s2")
        harness.run(tokyo, "PEXPIRE", "index:ann", "60000")
        harness.now += 2_000
        harness.run(seoul, "SADD", "index:ann", "s3")
        harness.restoreLink(seoul, tokyo)
        harness.settle(milliseconds: 100)
        #expect(harness.reply(tokyo, ["SCARD", "index:ann"]) == .integer(3))
        #expect(harness.run(tokyo, "DEL", "index:ann")?.reply == .integer(1))
        harness.settle(milliseconds: 100)
        for site in harness.sites {
            #expect(harness.reply(site, ["EXISTS", "index:ann"]) == .integer(0), "site \(site)")
        }
        expectConverged(&harness)
    }
}
