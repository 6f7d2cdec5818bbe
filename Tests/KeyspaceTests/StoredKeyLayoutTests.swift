import Testing
@testable import Keyspace
@testable import SessionModel

/// The keyspace's table holds a `StoredKey` in every slot, used or not (about 2.6 slots per
/// key at 100,000 keys): its size is a large share of a session's memory.
@Suite struct StoredKeyLayoutTests {
    @Test func aStoredKeyFitsItsBudget() {
        #expect(MemoryLayout<ElementTable>.size <= 16, "\(MemoryLayout<ElementTable>.size)")
        #expect(MemoryLayout<ElementSummary>.size <= 32, "\(MemoryLayout<ElementSummary>.size)")
        #expect(MemoryLayout<KeyState>.stride <= 80, "\(MemoryLayout<KeyState>.stride)")
        #expect(MemoryLayout<Keyspace.StoredKey>.stride <= 144, "\(MemoryLayout<Keyspace.StoredKey>.stride)")
    }

    @Test func optionalBookkeepingReadsBackAsSet() {
        var stored = Keyspace.StoredKey(isNew: true)
        #expect(stored.isNew && stored.digest == nil && stored.contribution == nil && stored.announcedExpiry == nil)
        stored.digest = StateDigest(high: 0, low: 0)
        stored.contribution = StateDigest(high: 1, low: 2)
        stored.announcedExpiry = 0
        stored.isNew = false
        #expect(!stored.isNew && stored.digest == StateDigest(high: 0, low: 0) && stored.contribution == StateDigest(high: 1, low: 2) && stored.announcedExpiry == 0)
        stored.digest = nil
        stored.announcedExpiry = nil
        #expect(stored.digest == nil && stored.announcedExpiry == nil && stored.contribution == StateDigest(high: 1, low: 2))
    }
}
