import Federation
import Keyspace
import RESP
import SessionModel
import Testing

/// Federation-wide collection of deleted and expired sessions (DESIGN.md §2.5): without it
/// every session ever created stayed in memory at every site of a federation.
@Suite struct CollectionTests {
    static let grace: UInt64 = 60_000

    /// Three sites, sessions written everywhere, half deleted and half expired.
    static func sessionsDeletedAndExpired(count: Int = 40) -> FederationHarness {
        var harness = FederationHarness(sites: [1, 2, 3])
        harness.connectAll()
        harness.settle()
        for index in 0..<count {
            let site = SiteID(UInt32(index % 3 + 1))
            harness.run(site, "HSET", "session:\(index)", "user", "u\(index)")
            harness.run(site, index % 2 == 0 ? "DEL" : "PEXPIRE", "session:\(index)", "1000")
        }
        harness.settle()
        return harness
    }

    @Test func deletedAndExpiredSessions_areReleasedAtEverySite_onceEverySiteHoldsTheSameState() {
        var harness = Self.sessionsDeletedAndExpired()
        for site in harness.sites { #expect(harness.nodes[site]!.keyspace.storedKeyCount == 40, "site \(site) keeps tombstones and expired keys") }
        harness.now += Self.grace + 11_000
        harness.settle(milliseconds: 100)
        for site in harness.sites {
            #expect(harness.nodes[site]!.keyspace.storedKeyCount == 0, "site \(site)")
            #expect(harness.nodes[site]!.core.collectionStatus().keysCollected == 40 || harness.nodes[site]!.keyspace.statistics.keysCollected == 40)
        }
        expectConverged(&harness)
    }

    @Test func expiredKeysWithinTheirGrace_andLiveKeys_areKept() {
        var harness = Self.sessionsDeletedAndExpired()
        harness.run(seoul, "SET", "session:live", "1")
        harness.settle()
        harness.now += 11_000  // past the interval, inside the expired keys' grace
        harness.settle(milliseconds: 100)
        for site in harness.sites {
            #expect(harness.nodes[site]!.keyspace.storedKeyCount == 21, "site \(site): 20 expired in grace and the live key; tombstones went")
            #expect(harness.value(site, "GET", "session:live") == "\(RESPValue.bulk("1"))")
        }
    }

    @Test func aSiteCutOff_blocksCollection_andStatusNamesIt() {
        var harness = Self.sessionsDeletedAndExpired()
        harness.cutLink(seoul, frankfurt)
        harness.cutLink(tokyo, frankfurt)
        harness.now += Self.grace + 11_000
        harness.settle(milliseconds: 100)
        for site in harness.sites { #expect(harness.nodes[site]!.keyspace.storedKeyCount == 40, "site \(site)") }
        let status = harness.nodes[seoul]!.core.collectionStatus()
        #expect(status.collects)
        #expect(status.blockedBy == ["site3"])
        harness.cut = []
        harness.connectAll()
        harness.settle(milliseconds: 100)
        harness.now += 11_000
        harness.settle(milliseconds: 100)
        for site in harness.sites { #expect(harness.nodes[site]!.keyspace.storedKeyCount == 0, "site \(site) after frankfurt returned") }
        #expect(harness.nodes[seoul]!.core.collectionStatus().blockedBy == [])
    }

    /// A key state anti-entropy sent before the collection, arriving after it, must not bring
    /// the key back; a write made after the collection lives.
    @Test func aStaleStateAfterCollection_staysCollected_aNewWriteLives() {
        var keyspace = Keyspace(configuration: KeyspaceConfiguration(site: seoul, retainTombstones: true, expiryGraceMilliseconds: 0))
        var other = Keyspace(configuration: KeyspaceConfiguration(site: tokyo, retainTombstones: true))
        let key = Array("session:1".utf8)
        _ = other.execute([Array("HSET".utf8), key, Array("user".utf8), Array("ann".utf8)], now: 1_000)
        let before = other.state(of: key)!
        _ = keyspace.merge(state: before, key: key, now: 1_000)
        let deleted = other.execute([Array("DEL".utf8), key], now: 1_001)!.deltas
        for delta in deleted { _ = keyspace.merge(delta, now: 1_001) }
        let digest = keyspace.state(of: key)!.digest
        let dropped = keyspace.collect(key, digest: digest, now: 2_000)
        #expect(dropped)
        #expect(keyspace.storedKeyCount == 0)
        _ = keyspace.merge(state: before, key: key, now: 2_001)
        #expect(keyspace.storedKeyCount == 0, "the old state is the collected key's past")
        #expect(keyspace.wasCollected(key))
        let again = other.execute([Array("HSET".utf8), key, Array("user".utf8), Array("bob".utf8)], now: 3_000)!.deltas
        for delta in again { _ = keyspace.merge(delta, now: 3_000) }
        #expect(keyspace.execute([Array("HGETALL".utf8), key], now: 3_000)?.reply == .map([RESPPair(.bulk("user"), .bulk("bob"))]))
        keyspace.forgetCollected(before: 10_000)
        #expect(keyspace.collectedKeyCount == 0)
    }

    /// Forgetting goes oldest first and keeps a key collected again later.
    @Test func forgettingCollectedKeys_keepsThoseCollectedAgainLater() {
        var keyspace = Keyspace(configuration: KeyspaceConfiguration(site: seoul, retainTombstones: true))
        let key = Array("session:1".utf8)
        func deleteAndCollect(at now: UInt64) {
            _ = keyspace.execute([Array("SET".utf8), key, [1]], now: now)
            _ = keyspace.execute([Array("DEL".utf8), key], now: now)
            let digest = keyspace.state(of: key)!.digest
            let dropped = keyspace.collect(key, digest: digest, now: now)
            #expect(dropped)
        }
        deleteAndCollect(at: 1_000)
        deleteAndCollect(at: 5_000)
        keyspace.forgetCollected(before: 2_000)
        #expect(keyspace.wasCollected(key), "collected again at 5,000")
        keyspace.forgetCollected(before: 6_000)
        #expect(!keyspace.wasCollected(key))
        #expect(keyspace.collectedKeyCount == 0)
    }

    @Test func aSiteOfSeveralNodes_agreesToNothing_soItsSiteKeepsItsKeys() {
        var harness = FederationHarness(sites: [1, 2], mergesAtPrimaries: true)
        harness.connectAll()
        harness.run(seoul, "SET", "k", "v")
        harness.run(seoul, "DEL", "k")
        harness.now += 11_000
        harness.settle(milliseconds: 100)
        #expect(harness.nodes[seoul]!.keyspace.storedKeyCount == 1)
        #expect(!harness.nodes[seoul]!.core.collectionStatus().collects)
    }
}
