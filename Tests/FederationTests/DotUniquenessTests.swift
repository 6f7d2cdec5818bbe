import Federation
import Keyspace
import RESP
import SessionModel
import Testing

/// No dot is ever issued twice (DESIGN.md §2.1): two writes with one dot look identical to
/// every merge and every Merkle comparison, so the sites holding them never converge.
@Suite struct DotUniquenessTests {
    enum CopyLost: CaseIterable {
        /// The node restarted empty.
        case restart
        /// The key's partition was re-created empty (every copy of it lost).
        case recreatedPartition
    }

    /// Seoul's last write reached frankfurt alone; seoul then loses its copy and, with
    /// frankfurt unreachable, stops loading once tokyo synchronised it (the startup timeout).
    /// Its next write must not take the dot frankfurt holds.
    @Test(arguments: CopyLost.allCases)
    func aCopyLostWhileTheSiteHoldingItsLastWriteIsUnreachable_neverReusesADot(_ lost: CopyLost) {
        var harness = FederationHarness(sites: [1, 2, 3])
        harness.connectAll()
        harness.run(seoul, "HSET", "session:1", "user", "ann")
        harness.settle()
        harness.cutLink(seoul, tokyo)
        harness.run(seoul, "HSET", "session:1", "cart", "3")
        harness.settle()
        harness.cutLink(seoul, frankfurt)
        harness.cutLink(tokyo, frankfurt)
        switch lost {
        case .restart:
            harness.start(seoul)
        case .recreatedPartition:
            let partition = Partitioning(partitionCount: FederationHarness.partitionCount).partition(of: Array("session:1".utf8))
            harness.recreate(partition: partition, at: seoul)
        }
        harness.restoreLink(seoul, tokyo)
        harness.settle(milliseconds: 100)
        harness.loading.remove(seoul)  // the startup sync timed out without frankfurt
        #expect(harness.value(seoul, "HGET", "session:1", "user") == "\(RESPValue.bulk("ann"))", "tokyo's copy reached seoul")
        harness.run(seoul, "HSET", "session:1", "cart", "4")
        harness.cut = []
        harness.connectAll()
        harness.settle(milliseconds: 200)
        #expect(harness.dotReuses == [])
        expectConverged(&harness)
        for site in harness.sites {
            #expect(harness.value(site, "HGET", "session:1", "cart") == "\(RESPValue.bulk("4"))", "site \(site)")
        }
    }
}
