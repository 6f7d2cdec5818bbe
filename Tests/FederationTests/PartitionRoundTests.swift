import Federation
import Keyspace
import SessionModel
import Testing

/// Anti-entropy with sites of several nodes: a node compares only the partitions it leads,
/// and the other site answers each partition from that partition's primary.
@Suite struct PartitionRoundTests {
    static func core(site: SiteID, leading partitions: Set<UInt32>?, partitionCount: Int = 8) -> FederationCore {
        let sites = [seoul, tokyo].map { id in
            (id, FederationSettings.SiteInfo(name: "site\(id.rawValue)", nodes: ["site\(id.rawValue)-1", "site\(id.rawValue)-2"]))
        }
        let settings = FederationSettings(
            federation: "test", topologyVersion: 1, localSite: site, localNode: "site\(site.rawValue)-1",
            sites: Dictionary(uniqueKeysWithValues: sites), links: [seoul: [tokyo], tokyo: [seoul]],
            partitioning: Partitioning(partitionCount: partitionCount), merkleLeaves: 16
        )
        var core = FederationCore(settings: settings, incarnation: 1)
        core.mergesAtPrimaries = true
        if let partitions { core.lead(partitions) }
        return core
    }

    static func requests(_ actions: [FederationAction]) -> [FederationMessage] {
        actions.compactMap { if case .send(.outbound, let message) = $0 { return message } else { return nil } }
    }

    @Test func aRound_comparesOnlyThePartitionsThisNodeLeads() {
        var core = Self.core(site: seoul, leading: [1, 3])
        let requests = Self.requests(core.outboundConnected(to: tokyo, now: 1_000))
        #expect(requests == [.merkleLeavesRequest(round: 1, partitions: [1, 3])])
    }

    @Test func aPartitionThisNodeStartsToLead_getsARoundOfItsOwn() {
        var core = Self.core(site: seoul, leading: [])
        var keyspace = Keyspace(configuration: KeyspaceConfiguration(site: seoul, retainTombstones: true))
        // Leading nothing yet (a site's map is young): the connect round has nothing to compare.
        #expect(Self.requests(core.outboundConnected(to: tokyo, now: 1_000)).isEmpty)
        #expect(core.isSynchronized(with: tokyo))
        core.lead([5])
        #expect(Self.requests(core.tick(now: 1_001)) == [.merkleLeavesRequest(round: 2, partitions: [5])])
        let leaves = FederationCore.emptyLeaves(partition: 5, count: 16)
        _ = core.receive(.merkleLeaves(round: 2, [leaves]), on: .outbound(tokyo), store: &keyspace, now: 1_002)
        // Compared: no new round until it leads another partition (or the interval elapses).
        #expect(Self.requests(core.tick(now: 1_003)).isEmpty)
        core.lead([5, 6])
        #expect(Self.requests(core.tick(now: 1_004)) == [.merkleLeavesRequest(round: 3, partitions: [6])])
    }

    /// A round over a keyspace that differs everywhere reads a bounded number of keys per
    /// step: the key digests of the differing partitions leave a few partitions at a time.
    @Test func keyDigestsOfManyDifferingPartitions_leaveAFewPartitionsPerStep() {
        var core = Self.core(site: seoul, leading: nil)
        var keyspace = Keyspace(configuration: KeyspaceConfiguration(site: seoul, retainTombstones: true, partitioning: Partitioning(partitionCount: 8)))
        for index in 0..<40_000 { _ = keyspace.execute([Array("SET".utf8), Array("key:\(index)".utf8), [1]], now: 1_000) }
        _ = core.outboundConnected(to: tokyo, now: 1_000)
        let empty = (0..<8).map { FederationCore.emptyLeaves(partition: UInt32($0), count: 16) }
        var partitionsPerStep: [Set<UInt32>] = []
        func partitions(_ actions: [FederationAction]) -> Set<UInt32> {
            Set(Self.requests(actions).compactMap { if case .bucketDigests(_, _, let buckets) = $0 { return buckets.first?.partition } else { return nil } })
        }
        partitionsPerStep.append(partitions(core.receive(.merkleLeaves(round: 1, empty), on: .outbound(tokyo), store: &keyspace, now: 1_001)))
        for step in 0..<8 { partitionsPerStep.append(partitions(core.continueRounds(store: &keyspace, now: 1_002 + UInt64(step)))) }
        // 5,000 keys per partition and 4,000 keys per step: one partition per step.
        #expect(partitionsPerStep.map(\.count) == [1, 1, 1, 1, 1, 1, 1, 1, 0])
        #expect(partitionsPerStep.reduce(Set()) { $0.union($1) } == Set(0..<8))
    }

    /// The leaves of many partitions are asked for at most 16 unanswered at a time, each
    /// answer making room for as many more: no step encodes, decodes or compares the leaves of
    /// every partition (at 271 partitions that one step held the loop for 25-40 ms), and a
    /// partition the other site never answers (no primary there) holds one place, not the
    /// partitions after it.
    @Test func leavesOfManyPartitions_areAskedForSixteenAtMostAtATime_andAnUnansweredOneHoldsOnlyItsPlace() {
        var core = Self.core(site: seoul, leading: Set((0..<40).map(UInt32.init)), partitionCount: 40)
        var keyspace = Keyspace(configuration: KeyspaceConfiguration(site: seoul, retainTombstones: true))
        let window = FederationCore.leavesPartitionsPerRequest
        func leavesRequests(_ actions: [FederationAction]) -> [[UInt32]] {
            Self.requests(actions).compactMap { if case .merkleLeavesRequest(_, let partitions) = $0 { return partitions } else { return nil } }
        }
        var asked = leavesRequests(core.outboundConnected(to: tokyo, now: 1_000)).flatMap { $0 }
        #expect(asked == (0..<window).map(UInt32.init))
        var outstanding = Set(asked)
        var now: UInt64 = 1_001
        // Every partition is answered, one or a few at a time, except partition 0.
        while let next = outstanding.filter({ $0 != 0 }).min() {
            let answer = [next].map { FederationCore.emptyLeaves(partition: $0, count: 16) }
            outstanding.remove(next)
            let more = leavesRequests(core.receive(.merkleLeaves(round: 1, answer), on: .outbound(tokyo), store: &keyspace, now: now)).flatMap { $0 }
            asked += more
            outstanding.formUnion(more)
            #expect(outstanding.count <= window)
            now += 1
        }
        #expect(asked.sorted() == (0..<40).map(UInt32.init), "every partition asked for once")
        #expect(outstanding == [0])
        #expect(!core.isSynchronized(with: tokyo), "partition 0 is still unanswered")
    }

    @Test func anUnansweredRound_isStartedAgainAfterItsSilence() {
        var core = Self.core(site: seoul, leading: [2])
        #expect(Self.requests(core.outboundConnected(to: tokyo, now: 1_000)) == [.merkleLeavesRequest(round: 1, partitions: [2])])
        #expect(Self.requests(core.tick(now: 1_000 + 29_999)).isEmpty)
        let abandoned = core.tick(now: 1_000 + 30_000)
        #expect(abandoned.contains { if case .log(let log) = $0 { return log.message.contains("unanswered") } else { return false } })
        #expect(Self.requests(core.tick(now: 1_000 + 30_001)) == [.merkleLeavesRequest(round: 2, partitions: [2])])
    }

    @Test func aRepeatedEndOfRepair_doesNotFinishTheRoundEarly() {
        var core = Self.core(site: seoul, leading: [1, 2])
        var keyspace = Keyspace(configuration: KeyspaceConfiguration(site: seoul, retainTombstones: true))
        _ = core.outboundConnected(to: tokyo, now: 1_000)
        var differing = FederationCore.emptyLeaves(partition: 1, count: 16)
        differing.leaves[0] = StateDigest(high: 1, low: 1)
        var other = differing
        other.partition = 2
        let digests = Self.requests(core.receive(.merkleLeaves(round: 1, [differing, other]), on: .outbound(tokyo), store: &keyspace, now: 1_001))
        #expect(digests.count == 2, "one chunk per partition: \(digests)")
        let first = FederationMessage.bucketRepair(BucketRepair(round: 1, chunk: 0, last: true, states: [], wanted: []))
        _ = core.receive(first, on: .outbound(tokyo), store: &keyspace, now: 1_002)
        _ = core.receive(first, on: .outbound(tokyo), store: &keyspace, now: 1_003)
        #expect(!core.isSynchronized(with: tokyo), "the repeat must not stand for chunk 1")
        _ = core.receive(.bucketRepair(BucketRepair(round: 1, chunk: 1, last: true, states: [], wanted: [])), on: .outbound(tokyo), store: &keyspace, now: 1_004)
        #expect(core.isSynchronized(with: tokyo))
    }

    @Test func aSilentRound_keepsWhatWasAnswered_andAsksAgainForTheRest() {
        var core = Self.core(site: seoul, leading: [1, 2])
        var keyspace = Keyspace(configuration: KeyspaceConfiguration(site: seoul, retainTombstones: true))
        _ = core.outboundConnected(to: tokyo, now: 1_000)
        // Partition 1 answers (and matches); partition 2 has no primary at tokyo and never does.
        _ = core.receive(.merkleLeaves(round: 1, [FederationCore.emptyLeaves(partition: 1, count: 16)]), on: .outbound(tokyo), store: &keyspace, now: 1_001)
        _ = core.tick(now: 1_001 + 30_000)
        #expect(Self.requests(core.tick(now: 1_002 + 30_000)) == [.merkleLeavesRequest(round: 2, partitions: [2])])
    }

    @Test func requestsOfAnotherSite_areHandedToEachPartitionsPrimary() {
        var core = Self.core(site: tokyo, leading: nil)
        var keyspace = Keyspace(configuration: KeyspaceConfiguration(site: tokyo, retainTombstones: true))
        let from = FederationConnection.inbound(seoul, node: "site1-1")
        let leaves = core.receive(.merkleLeavesRequest(round: 4, partitions: [3, 1]), on: from, store: &keyspace, now: 1)
        #expect(
            leaves == [
                .answerAtPrimary(RoundRequest(connection: from, partition: 1, message: .merkleLeavesRequest(round: 4, partitions: [1]))),
                .answerAtPrimary(RoundRequest(connection: from, partition: 3, message: .merkleLeavesRequest(round: 4, partitions: [3]))),
            ]
        )
        let bucket = Bucket(partition: 2, leaf: 0, keys: [])
        #expect(
            core.receive(.bucketDigests(round: 4, chunk: 0, [bucket]), on: from, store: &keyspace, now: 1)
                == [.answerAtPrimary(RoundRequest(connection: from, partition: 2, message: .bucketDigests(round: 4, chunk: 0, [bucket])))]
        )
        let mixed = core.receive(.bucketDigests(round: 4, chunk: 1, [bucket, Bucket(partition: 3, leaf: 0, keys: [])]), on: from, store: &keyspace, now: 1)
        #expect(mixed.count == 1)
        guard case .close(from, let reason) = mixed.first else {
            Issue.record("a chunk about two partitions must close the connection, got \(mixed)")
            return
        }
        #expect(reason.contains("2 partitions in one chunk"))
        let beyond = core.receive(.merkleLeavesRequest(round: 4, partitions: [8]), on: from, store: &keyspace, now: 1)
        #expect(beyond.count == 1 && { if case .close = beyond[0] { return true } else { return false } }())
    }
}

extension FederationCore {
    /// The leaves of an empty partition.
    static func emptyLeaves(partition: UInt32, count: Int) -> PartitionLeaves {
        PartitionLeaves(partition: partition, leaves: Array(repeating: StateDigest(high: 0, low: 0), count: count))
    }
}
