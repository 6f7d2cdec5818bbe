import Federation
import Keyspace
import RESP
import SessionModel
import Testing

/// The topology's `policies:` act (DESIGN.md §2.3 rules 3 and 7, per key pattern): three sites
/// resolve the same concurrent writes by each key's own policy, and converge whatever it is.
@Suite struct KeyPolicyTests {
    struct Combination: CustomStringConvertible, Sendable {
        var conflict: ConflictPolicy
        var delete: DeletePolicy
        var description: String { "cache:* \(MergePolicy(conflict: conflict, delete: delete).conflictName)/\(delete.rawValue)" }
    }

    static let combinations: [Combination] = [
        Combination(conflict: .lastWriterWins, delete: .deleteWins),
        Combination(conflict: .lastWriterWins, delete: .updateWins),
        Combination(conflict: .sitePriority([seoul, tokyo, frankfurt]), delete: .deleteWins),
        Combination(conflict: .sitePriority([seoul, tokyo, frankfurt]), delete: .updateWins),
    ]

    /// `cache:*` keys follow the combination; every other key the defaults (lww, delete-wins).
    /// Cut off from each other, seoul deletes both keys, tokyo writes field `b` of both and
    /// field `c`, frankfurt writes `c` later than tokyo.
    @Test(arguments: combinations) func concurrentWritesAndDeletes_followEachKeysPolicy_atEverySite(combination: Combination) {
        let cache = MergePolicy(conflict: combination.conflict, delete: combination.delete)
        let policies = KeyPolicies(rules: [KeyPolicies.Rule(pattern: Array("cache:*".utf8), policy: cache)])
        var harness = FederationHarness(sites: [1, 2, 3], policies: policies)
        harness.connectAll()
        for key in ["cache:1", "session:1"] { harness.run(seoul, "HSET", key, "a", "1") }
        harness.run(seoul, "HSET", "cache:2", "c", "0")
        harness.settle()
        harness.cutLink(seoul, tokyo)
        harness.cutLink(seoul, frankfurt)
        harness.cutLink(tokyo, frankfurt)
        for key in ["cache:1", "session:1"] {
            harness.run(seoul, "DEL", key)
            harness.run(tokyo, "HSET", key, "b", "2")
        }
        harness.run(tokyo, "HSET", "cache:2", "c", "tokyo")
        harness.now += 10
        harness.run(frankfurt, "HSET", "cache:2", "c", "frankfurt")
        harness.cut = []
        harness.connectAll()
        harness.settle(milliseconds: 100)
        expectConverged(&harness)
        for site in harness.sites {
            // The default (delete-wins) applies to session keys whatever the rule says.
            #expect(harness.reply(site, ["EXISTS", "session:1"]) == .integer(0))
            // Update-wins keeps the field written concurrently with the delete; delete-wins drops it.
            let survivor = harness.reply(site, ["HGET", "cache:1", "b"])
            #expect(survivor == (combination.delete == .updateWins ? .bulkString(Array("2".utf8)) : .null), "\(site)")
            // Site priority ranks tokyo before frankfurt; last-writer-wins takes frankfurt's later write.
            let expected = combination.conflict == .lastWriterWins ? "frankfurt" : "tokyo"
            #expect(harness.reply(site, ["HGET", "cache:2", "c"]) == .bulkString(Array(expected.utf8)), "\(site)")
        }
        let conflicts = harness.status(seoul, link: frankfurt).statistics.conflicts.merging(harness.status(seoul, link: tokyo).statistics.conflicts) { $0 + $1 }
        #expect(conflicts[cache.conflictName, default: 0] > 0, "conflicts counted under the key's own policy: \(conflicts)")
    }
}
