import Federation
import Keyspace
import RESP
import SessionModel
import Testing

/// Races between expiry at one site and writes at another (DESIGN.md §2.4, §2.3 rule 7).
@Suite struct ExpiryRaceTests {
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
}
