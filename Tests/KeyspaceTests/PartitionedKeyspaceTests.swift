import RESP
import SessionModel
import Testing
@testable import Keyspace

/// A keyspace of a node that shares its site with others: keys indexed by partition.
@Suite struct PartitionedKeyspaceTests {
    static let partitioning = Partitioning(partitionCount: 8)

    func harness() -> Harness {
        var harness = Harness()
        harness.keyspace = Keyspace(configuration: KeyspaceConfiguration(site: SiteID(1), partitioning: Self.partitioning))
        for index in 0..<300 { harness.run("SET", "key:\(index)", "v") }
        return harness
    }

    @Test func scan_overEveryPartition_visitsEachKeyOnce_andCursorsNameTheirPartition() {
        var harness = harness()
        var cursor = "0"
        var seen: [String] = []
        var partitionsVisited: [Int] = []
        repeat {
            partitionsVisited.append(Keyspace.scanPartition(ofCursor: UInt64(cursor)!))
            guard case .array(let reply) = harness.run("SCAN", cursor, "COUNT", "7"), case .bulkString(let next)? = reply.first,
                case .array(let keys) = reply[1]
            else { Issue.record("SCAN reply"); return }
            for case .bulkString(let key) in keys {
                #expect(Self.partitioning.partition(of: key) == partitionsVisited.last!, "a call returns keys of its cursor's partition only")
                seen.append(String(decoding: key, as: UTF8.self))
            }
            cursor = String(decoding: next, as: UTF8.self)
        } while cursor != "0"
        #expect(seen.count == 300)
        #expect(Set(seen).count == 300)
        #expect(partitionsVisited == partitionsVisited.sorted(), "partitions are visited in order")
    }

    @Test func scan_cursorBeyondTheLastPartition_isInvalid() {
        var harness = harness()
        #expect(harness.run("SCAN", String(UInt64(8) << 50)) == RedisError.invalidCursor)
    }

    @Test func countKeysAndFlush_restrictedToPartitions_touchOnlyThose() {
        var harness = harness()
        let mine: Set<Int> = [0, 3, 5]
        let expected = (0..<300).map { "key:\($0)" }.filter { mine.contains(Self.partitioning.partition(of: Array($0.utf8))) }
        #expect(harness.keyspace.count(now: harness.now, inPartitions: mine, database: 0) == expected.count)
        #expect(Set(harness.keyspace.keys(matching: Array("key:*".utf8), inPartitions: mine, now: harness.now, database: 0).map { String(decoding: $0, as: UTF8.self) }) == Set(expected))
        let deltas = harness.keyspace.flush(partitions: mine, now: harness.now, database: nil)
        #expect(deltas.count == expected.count)
        #expect(harness.keyspace.count(now: harness.now) == 300 - expected.count)
        #expect(harness.keyspace.keys(inPartition: 3).isEmpty)
    }

    @Test func discardPartition_dropsItsKeysAndTheirMemory() {
        var harness = harness()
        let before = harness.keyspace.usedMemoryBytes
        let dropped = harness.keyspace.keys(inPartition: 2).count
        #expect(dropped > 0)
        harness.keyspace.discard(partition: 2)
        #expect(harness.keyspace.keys(inPartition: 2).isEmpty)
        #expect(harness.keyspace.count(now: harness.now) == 300 - dropped)
        #expect(harness.keyspace.usedMemoryBytes < before)
    }

    @Test func expiry_recordsReleasedKeys_andABackupReleasesThemWhateverItsClock() {
        var harness = harness()
        harness.run("SET", "short", "v", "PX", "10")
        harness.now += 20
        #expect(harness.run("GET", "short") == .null)
        #expect(harness.keyspace.drainReleasedByExpiry() == [Array("short".utf8)])
        #expect(harness.keyspace.drainReleasedByExpiry().isEmpty)
        // A backup copy: the key is still live by its clock, but the primary released it.
        var backup = harness.keyspace
        harness.run("SET", "alive", "v", "PX", "100000")
        _ = backup.merge(harness.deltas.last!, now: harness.now)
        backup.releaseExpired(Array("alive".utf8))
        #expect(backup.state(of: Array("alive".utf8)) == nil)
        #expect(backup.keys(inPartition: Self.partitioning.partition(of: Array("alive".utf8))).allSatisfy { $0 != Array("alive".utf8) })
    }

    @Test func sweep_skipsPartitionsThisNodeDoesNotLead_untilScheduledAgain() {
        var harness = harness()
        harness.run("SET", "short", "v", "PX", "10")
        let partition = Self.partitioning.partition(of: Array("short".utf8))
        harness.now += 20
        #expect(harness.keyspace.sweepExpired(now: harness.now, budget: 100, expires: { $0 != partition ? .now : .never }).isEmpty)
        #expect(harness.keyspace.state(of: Array("short".utf8)) != nil, "a backup's copy is not expired by its own sweep")
        harness.keyspace.scheduleExpiries(ofPartition: partition)
        let events = harness.keyspace.sweepExpired(now: harness.now, budget: 100)
        #expect(events.map(\.name) == ["expired"])
        #expect(harness.keyspace.state(of: Array("short".utf8)) == nil)
    }

    /// A primary whose lease lapsed for a moment (a slow heartbeat on a loaded machine) is
    /// still the partition's primary: no `becamePrimary` will schedule its keys again, so a
    /// due key it could not expire must stay queued, or it never expires (nor is announced).
    @Test func sweep_keepsDueKeysOfAPrimaryThatCannotActForAMoment() {
        var harness = harness()
        harness.run("SET", "short", "v", "PX", "10")
        harness.run("SET", "other", "v", "PX", "10")
        let partition = Self.partitioning.partition(of: Array("short".utf8))
        harness.now += 20
        let first = harness.keyspace.sweepExpired(now: harness.now, budget: 100, expires: { $0 == partition ? .later : .now })
        #expect(harness.keyspace.state(of: Array("short".utf8)) != nil, "not expired while the primary cannot act")
        #expect(first.count == (Self.partitioning.partition(of: Array("other".utf8)) == partition ? 0 : 1))
        let events = harness.keyspace.sweepExpired(now: harness.now + 100, budget: 100)
        #expect(events.map(\.key).contains(Array("short".utf8)))
        #expect(harness.keyspace.state(of: Array("short".utf8)) == nil)
    }
}
