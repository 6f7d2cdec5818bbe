import Federation
import Keyspace
import RESP
import SessionModel
import Testing
import Wire

/// Federation-wide collection of deleted and expired sessions (DESIGN.md §2.5): without it
/// every session ever created stayed in memory at every site of a federation.
@Suite struct CollectionTests {
    static let grace: UInt64 = 60_000

    /// Three sites, sessions written everywhere, half deleted and half expired.
    /// `mergesAtPrimaries`: the sites stand for sites of several nodes, whose partitions'
    /// primaries vote on and drop their keys.
    static func sessionsDeletedAndExpired(count: Int = 40, mergesAtPrimaries: Bool = false) -> FederationHarness {
        var harness = FederationHarness(sites: [1, 2, 3], mergesAtPrimaries: mergesAtPrimaries)
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

    @Test(arguments: [false, true])
    func deletedAndExpiredSessions_areReleasedAtEverySite_onceEverySiteHoldsTheSameState(mergesAtPrimaries: Bool) {
        var harness = Self.sessionsDeletedAndExpired(mergesAtPrimaries: mergesAtPrimaries)
        for site in harness.sites { #expect(harness.nodes[site]!.keyspace.storedKeyCount == 40, "site \(site) keeps tombstones and expired keys") }
        harness.now += Self.grace + 11_000
        harness.settle(milliseconds: 100)
        for site in harness.sites {
            #expect(harness.nodes[site]!.keyspace.storedKeyCount == 0, "site \(site)")
            #expect(harness.nodes[site]!.keyspace.statistics.keysCollected == 40)
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

    /// A write made after the collection is told from the collected key's past by its dots, not
    /// by the elements it stores: a delete stores none. Merged as a delta (the outbox had
    /// folded the write before it into the delete) and as a state, it must give the state the
    /// writer holds; discarded, the sites' Merkle roots differed until a periodic
    /// anti-entropy round.
    @Test func aDeleteMadeAfterCollection_isMerged_asADeltaAndAsAState() {
        let key = Array("session:1".utf8)
        var writer = Keyspace(configuration: KeyspaceConfiguration(site: tokyo, retainTombstones: true, expiryGraceMilliseconds: 0))
        var byDelta = Keyspace(configuration: KeyspaceConfiguration(site: seoul, retainTombstones: true, expiryGraceMilliseconds: 0))
        var byState = Keyspace(configuration: KeyspaceConfiguration(site: frankfurt, retainTombstones: true, expiryGraceMilliseconds: 0))
        _ = writer.execute([Array("HSET".utf8), key, Array("user".utf8), Array("ann".utf8)], now: 1_000)
        _ = writer.execute([Array("DEL".utf8), key], now: 1_001)
        let tombstone = writer.state(of: key)!
        _ = byDelta.merge(state: tombstone, key: key, now: 1_001)
        _ = byState.merge(state: tombstone, key: key, now: 1_001)
        let collected = [
            writer.collect(key, digest: tombstone.digest, now: 2_000), byDelta.collect(key, digest: tombstone.digest, now: 2_000),
            byState.collect(key, digest: tombstone.digest, now: 2_000),
        ]
        #expect(collected == [true, true, true])
        _ = writer.execute([Array("HSET".utf8), key, Array("user".utf8), Array("bob".utf8)], now: 3_000)
        let delete = writer.execute([Array("DEL".utf8), key], now: 3_001)!.deltas
        for delta in delete { _ = byDelta.merge(delta, now: 3_001) }
        _ = byState.merge(state: writer.state(of: key)!, key: key, now: 3_001)
        #expect(byDelta.state(of: key) == writer.state(of: key), "the delete as a delta")
        #expect(byState.state(of: key) == writer.state(of: key), "the delete as a state")
    }

    /// A site that agreed to drop a key and wrote it before the commit came keeps the key (its
    /// state changed) and sends its state to every linked site. The sites that dropped it
    /// start the key again from that write's delta alone, without the tombstone's context
    /// the writer joined it onto: their states differed until a periodic anti-entropy round.
    /// `mergesAtPrimaries`: tokyo stands for a site of several nodes, whose partition primary
    /// votes, keeps the key and sends its state once its backups hold it.
    @Test(arguments: [false, true])
    func aWriteBetweenVoteAndCommit_keepsTheKey_andSendsItsStateToEverySite(mergesAtPrimaries: Bool) throws {
        var harness = Self.sessionsDeletedAndExpired(count: 2, mergesAtPrimaries: mergesAtPrimaries)
        let key = Array("session:0".utf8)
        let tombstone = try #require(harness.nodes[tokyo]!.keyspace.state(of: key))
        #expect(tombstone.elements.isEmpty, "session:0 was deleted")
        let proposal = [KeyDigest(key: key, digest: tombstone.digest)]
        let fromSeoul = FederationConnection.inbound(seoul, node: "site1-1")
        var node = harness.nodes[tokyo]!
        let vote = node.core.receive(.collectionCheck(round: 1, proposal), on: fromSeoul, store: &node.keyspace, now: harness.now)
        harness.nodes[tokyo] = node
        harness.perform(vote, at: tokyo)
        let partition = UInt32(harness.nodes[tokyo]!.core.settings.partitioning.partition(of: key))
        #expect(Self.inFlight(from: tokyo, harness).map(\.message) == [.collectionVote(round: 1, agreed: [key], partitions: mergesAtPrimaries ? [partition] : [])])
        // Seoul's round is played by hand: its own core never hears this vote.
        harness.inFlight = harness.inFlight.filter { $0.key.from != tokyo }
        harness.run(tokyo, "HSET", "session:0", "user", "after")
        for site in [seoul, frankfurt] {
            let dropped = harness.nodes[site]!.keyspace.collect(key, digest: tombstone.digest, now: harness.now)
            #expect(dropped, "site \(site) drops the key it agreed on")
        }
        node = harness.nodes[tokyo]!
        let commit = node.core.receive(.collectionCommit(proposal), on: fromSeoul, store: &node.keyspace, now: harness.now)
        harness.nodes[tokyo] = node
        harness.perform(commit, at: tokyo)
        let sentTo = Self.inFlight(from: tokyo, harness).compactMap { sent -> SiteID? in
            guard case .keyStates = sent.message else { return nil }
            return sent.to
        }
        #expect(sentTo.sorted() == [seoul, frankfurt])
        harness.settle()
        expectConverged(&harness)
        for site in harness.sites { #expect(harness.value(site, "HGET", "session:0", "user") == "\(RESPValue.bulk("after"))", "site \(site)") }
    }

    /// The federation messages `site` has in flight, with the site each goes to.
    static func inFlight(from site: SiteID, _ harness: FederationHarness) -> [(to: SiteID, message: FederationMessage)] {
        harness.inFlight.filter { $0.key.from == site }.sorted { $0.key.to < $1.key.to }.flatMap { route, frames in
            frames.compactMap { bytes -> (to: SiteID, message: FederationMessage)? in
                var decoder = FrameDecoder()
                decoder.append(bytes)
                guard case .federation(let message)? = try? decoder.next() else { return nil }
                return (route.to, message)
            }
        }
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

    /// A proposal's keys are voted on per partition by a site of several nodes: the round
    /// ends only once every partition of every site answered, and a key one partition's
    /// primary refused is not dropped anywhere, whatever the other partitions and sites said.
    @Test func aRound_waitsForEveryPartitionsVote_andCommitsOnlyWhatEveryPartitionAgreed() throws {
        var harness = Self.sessionsDeletedAndExpired(mergesAtPrimaries: true)
        harness.now += Self.grace + 11_000
        // Separate variables: the votes below mutate both.
        var core = harness.nodes[seoul]!.core
        var keyspace = harness.nodes[seoul]!.keyspace
        // Candidates are gathered over a few ticks before the round starts.
        var checks: [(SiteID, UInt64, [KeyDigest])] = []
        for _ in 0..<100 where checks.isEmpty {
            harness.now += 1
            checks = core.continueRounds(store: &keyspace, now: harness.now).compactMap { action -> (SiteID, UInt64, [KeyDigest])? in
                guard case .send(.outbound(let site), .collectionCheck(let round, let keys)) = action else { return nil }
                return (site, round, keys)
            }
        }
        try #require(checks.count == 2)
        let (round, proposal) = (checks[0].1, checks[0].2)
        let partitioning = core.settings.partitioning
        let partitions = Set(proposal.map { UInt32(partitioning.partition(of: $0.key)) }).sorted()
        try #require(partitions.count > 1)
        let refusedKey = proposal[0].key
        let refusedPartition = UInt32(partitioning.partition(of: refusedKey))
        var commits: [[KeyDigest]] = []
        func vote(_ site: SiteID, _ agreed: [[UInt8]], _ partitions: [UInt32]) {
            let actions = core.receive(.collectionVote(round: round, agreed: agreed, partitions: partitions), on: .outbound(site), store: &keyspace, now: harness.now)
            for case .send(_, .collectionCommit(let keys)) in actions { commits.append(keys) }
        }
        vote(frankfurt, proposal.map(\.key), [])  // a site of one node: every partition at once
        for partition in partitions {
            let keys = proposal.filter { UInt32(partitioning.partition(of: $0.key)) == partition }.map(\.key)
            #expect(commits.isEmpty, "no commit before tokyo's partition \(partition) voted")
            vote(tokyo, partition == refusedPartition ? keys.filter { $0 != refusedKey } : keys, [partition])
        }
        try #require(commits.count == 2, "one commit per linked site")
        let name = { (key: [UInt8]) in String(decoding: key, as: UTF8.self) }
        #expect(Set(commits[0].map { name($0.key) }) == Set(proposal.map { name($0.key) }).subtracting([name(refusedKey)]))
        // A site of several nodes drops the agreed keys at their primaries, not in the round.
        #expect(keyspace.storedKeyCount == 40)
    }

    /// A site of several nodes votes per partition, at each partition's primary: the key one
    /// partition's primary refuses (a write to it is still in flight there) stays at every
    /// site, the keys the other partitions agreed on go.
    @Test func aSiteOfSeveralNodes_votesPerPartition_andARefusedKeyStaysEverywhere() {
        var harness = Self.sessionsDeletedAndExpired(mergesAtPrimaries: true)
        harness.now += Self.grace + 11_000
        // Written as the rounds start: its delta is unacknowledged at tokyo when tokyo votes.
        harness.run(tokyo, "HSET", "session:0", "user", "again")
        harness.settle(milliseconds: 100)
        for site in harness.sites {
            #expect(harness.nodes[site]!.keyspace.storedKeyCount == 1, "site \(site)")
            #expect(harness.value(site, "HGET", "session:0", "user") == "\(RESPValue.bulk("again"))", "site \(site)")
            #expect(harness.nodes[site]!.keyspace.statistics.keysCollected == 39, "site \(site)")
        }
        expectConverged(&harness)
    }
}
