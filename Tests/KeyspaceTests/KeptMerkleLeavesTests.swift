import RESP
import SessionModel
import Testing
@testable import Keyspace

/// The Merkle leaves a federated keyspace keeps current equal, at every moment a round may
/// ask, the leaves computed from every key's digest.
@Suite struct KeptMerkleLeavesTests {
    static let layout = MerkleLayout(partitioning: Partitioning(partitionCount: 4), leafCount: 8)

    static func computed(_ keyspace: inout Keyspace) -> [Int: [StateDigest]] {
        var leaves: [Int: [StateDigest]] = [:]
        for partition in 0..<4 { leaves[partition] = Array(repeating: .zero, count: 8) }
        keyspace.forEachDigest { key, digest in
            let (partition, leaf) = layout.location(of: key)
            leaves[partition]![leaf].add(MerkleLayout.contribution(key: key, digest: digest))
        }
        return leaves
    }

    @Test(arguments: [false, true])
    func randomCommandsMergesAndDiscards_keptLeavesEqualComputedLeaves(retainTombstones: Bool) {
        var random = SeededGenerator(seed: retainTombstones ? 11 : 12)
        var harness = Harness()
        harness.keyspace = Keyspace(
            configuration: KeyspaceConfiguration(
                site: SiteID(1), retainTombstones: retainTombstones, partitioning: Self.layout.partitioning, merkleLeafCount: 8
            )
        )
        var other = Keyspace(configuration: KeyspaceConfiguration(site: SiteID(2), retainTombstones: true))
        let all = Set(0..<4)
        for step in 0..<3_000 {
            let key = "session:\(random.next() % 40)"
            switch random.next() % 12 {
            case 0, 1, 2: harness.run("HSET", key, "f\(random.next() % 3)", "v\(random.next() % 9)")
            case 3: harness.run("DEL", key)
            case 4: harness.run("PEXPIRE", key, "\(1 + random.next() % 2_000)")
            case 5: harness.run("SADD", key + ":set", "m\(random.next() % 3)")
            case 6: harness.run("RENAME", key, "session:\(random.next() % 40)")
            case 7:
                let result = other.execute([Array("HSET".utf8), Array(key.utf8), Array("remote".utf8), Array("\(step)".utf8)], now: harness.now)!
                for delta in result.deltas { _ = harness.keyspace.merge(delta, now: harness.now) }
            case 8: _ = harness.keyspace.sweepExpired(now: harness.now, budget: 5)
            case 9: harness.keyspace.refreshMerkleLeaves(budget: Int(random.next() % 20))
            case 10 where random.next() % 20 == 0: harness.keyspace.discard(partition: Int(random.next() % 4))
            case 11 where random.next() % 200 == 0: harness.run("FLUSHALL")
            default: harness.now += random.next() % 700
            }
            if random.next() % 10 == 0 {
                let kept = harness.keyspace.merkleLeaves(ofPartitions: all, layout: Self.layout)
                #expect(kept == Self.computed(&harness.keyspace), "step \(step)")
                #expect(harness.keyspace.dirtyDigestCount == 0)
            }
        }
    }

    @Test func budgetedRefresh_foldsAtMostItsBudget_andAnotherLayoutGetsNothing() {
        var harness = Harness()
        harness.keyspace = Keyspace(configuration: KeyspaceConfiguration(site: SiteID(1), partitioning: Self.layout.partitioning, merkleLeafCount: 8))
        for index in 0..<100 { harness.run("SET", "key:\(index)", "v") }
        #expect(harness.keyspace.dirtyDigestCount == 100)
        #expect(harness.keyspace.refreshMerkleLeaves(budget: 30) == 70)
        #expect(harness.keyspace.refreshMerkleLeaves(budget: 1_000) == 0)
        #expect(harness.keyspace.merkleLeaves(ofPartitions: [0], layout: MerkleLayout(partitioning: Partitioning(partitionCount: 4), leafCount: 16)) == nil)
    }
}
