import RESP
import SessionModel
import Testing
@testable import Keyspace

/// A keyspace that held many keys and lost most of them gives the room back: its containers
/// are rebuilt at their size, and what they still hold is unchanged.
@Suite struct KeyspaceShrinkingTests {
    static func run(_ keyspace: inout Keyspace, _ arguments: String..., now: UInt64) {
        _ = keyspace.execute(arguments.map { Array($0.utf8) }, now: now)
    }

    @Test func aKeyspaceEmptiedToAFewKeys_shrinksItsContainers_andKeepsEveryKeyAndExpiry() {
        let layout = MerkleLayout(partitioning: Partitioning(partitionCount: 4), leafCount: 8)
        var keyspace = Keyspace(configuration: KeyspaceConfiguration(site: SiteID(1), partitioning: layout.partitioning, merkleLeafCount: 8))
        for index in 0..<20_000 {
            Self.run(&keyspace, "HSET", "session:\(index)", "user", "u\(index)", now: 1_000)
            Self.run(&keyspace, "PEXPIRE", "session:\(index)", "\(100_000 + index)", now: 1_000)
        }
        for index in 0..<20_000 where index % 100 != 0 { Self.run(&keyspace, "DEL", "session:\(index)", now: 1_001) }
        _ = keyspace.refreshMerkleLeaves(budget: .max)
        let capacityBefore = keyspace.keys.capacity
        let rootBefore = keyspace.merkleLeaves(ofPartitions: Set(0..<4), layout: layout)

        let shrank = keyspace.shrinkIfSparse()
        #expect(shrank)
        #expect(keyspace.keys.capacity < capacityBefore / 4)
        let partitionCapacities = keyspace.partitionKeys.map(\.capacity)
        #expect(partitionCapacities.allSatisfy { $0 < 1_024 })
        let shrankAgain = keyspace.shrinkIfSparse()
        #expect(!shrankAgain, "nothing left to shrink")
        #expect(keyspace.storedKeyCount == 200)
        let rootAfter = keyspace.merkleLeaves(ofPartitions: Set(0..<4), layout: layout)
        #expect(rootAfter == rootBefore)
        for index in stride(from: 0, to: 20_000, by: 100) {
            #expect(keyspace.state(of: Array("session:\(index)".utf8))?.expireAt == 1_000 + 100_000 + UInt64(index))
        }
        // The expiry queue still expires what it held.
        let events = keyspace.sweepExpired(now: 1_000 + 200_000, budget: .max)
        #expect(events.count == 200)
        #expect(keyspace.count(now: 1_000 + 200_000) == 0)
    }

    @Test func aSmallKeyspace_isLeftAlone() {
        var keyspace = Keyspace(configuration: KeyspaceConfiguration(site: SiteID(1)))
        for index in 0..<100 { Self.run(&keyspace, "SET", "k\(index)", "v", now: 1) }
        for index in 0..<99 { Self.run(&keyspace, "DEL", "k\(index)", now: 2) }
        let shrank = keyspace.shrinkIfSparse()
        #expect(!shrank)
        #expect(keyspace.storedKeyCount == 1)
    }
}
