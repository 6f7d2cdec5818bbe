import Testing
@testable import SessionModel

/// Sorted sets across sites: a member's presence merges add-wins (as a set member), its score
/// by the conflict policy (last writer wins by default), and the sorted index every copy keeps
/// is the one its merged state implies, whatever order the writes arrived in.
@Suite struct SortedSetMergeTests {
    let index = "spring:session:sessions:expirations"

    @Test func concurrentAddAndRemove_memberStaysPresentAtEverySite() throws {
        var seoul = TestSite(1), tokyo = TestSite(2)
        let first = try seoul.commit(index, scores([("s1", 100), ("s2", 200)]))
        tokyo.receive(first)
        seoul.physicalMilliseconds += 10
        tokyo.physicalMilliseconds += 20
        // Seoul touches s1 again while Tokyo, unaware, removes it: the add wins.
        let touch = try seoul.commit(index, scores([("s1", 300)]))
        let removal = try tokyo.commit(index, .removeScoredMembers(["s1".bytes]))
        seoul.receive(removal)
        tokyo.receive(touch)

        #expect(seoul.scores(index) == [("s2", 200), ("s1", 300)].map(ScoredMember.init))
        #expect(tokyo.scores(index) == seoul.scores(index))
        #expect(seoul.state(index) == tokyo.state(index))
        seoul.expectIndexMatchesState(index)
        tokyo.expectIndexMatchesState(index)
    }

    @Test func removeThatSawTheAdd_removesTheMember_lastMemberRemovesTheKey() throws {
        var seoul = TestSite(1), tokyo = TestSite(2)
        let add = try seoul.commit(index, scores([("s1", 1)]))
        tokyo.receive(add)
        let removal = try tokyo.commit(index, .removeScoredMembers(["s1".bytes]))
        seoul.receive(removal)
        #expect(seoul.value(index) == nil)
        #expect(tokyo.value(index) == nil)
        #expect(seoul.state(index).isEmpty)
    }

    @Test func concurrentAddsOfDifferentScores_laterTimestampWins_conflictReported() throws {
        var seoul = TestSite(1, physicalMilliseconds: 1_000)
        var tokyo = TestSite(2, physicalMilliseconds: 2_000)
        let fromSeoul = try seoul.commit(index, scores([("s1", 5)]))
        let fromTokyo = try tokyo.commit(index, scores([("s1", 7)]))
        seoul.receive(fromTokyo)
        tokyo.receive(fromSeoul)

        #expect(seoul.score(index, "s1") == 7)
        #expect(tokyo.score(index, "s1") == 7)
        let expected = MergeEvent.concurrentWrites(element: .sortedMember("s1".bytes), winner: fromTokyo.dot, loser: fromSeoul.dot)
        #expect(seoul.events == [expected])
        #expect(tokyo.events == [expected])
        #expect(seoul.state(index) == tokyo.state(index))
        #expect(seoul.state(index).visibleElementCount(of: .zset) == 1)
        seoul.expectIndexMatchesState(index)
    }

    @Test func concurrentAddsAtEqualTimestamps_higherSiteWins_atEverySite() throws {
        var seoul = TestSite(1), tokyo = TestSite(2), frankfurt = TestSite(3)
        let stamp = HLCTimestamp(physicalMilliseconds: 5_000, logical: 0)
        let fromSeoul = try seoul.commit(index, scores([("s1", 9)]), timestamp: stamp)
        let fromTokyo = try tokyo.commit(index, scores([("s1", -1)]), timestamp: stamp)
        seoul.receive(fromTokyo)
        tokyo.receive(fromSeoul)
        frankfurt.receive([fromTokyo, fromSeoul])
        for site in [seoul, tokyo, frankfurt] {
            #expect(site.score(index, "s1") == -1)
            #expect(site.scores(index) == [ScoredMember(member: "s1".bytes, score: -1)])
        }
    }

    @Test func sitePriority_decidesTheScoreWhateverTheClock() throws {
        let policy = MergePolicy(conflict: .sitePriority([SiteID(1)]))
        var seoul = TestSite(1, physicalMilliseconds: 1_000, policy: policy)
        var tokyo = TestSite(2, physicalMilliseconds: 9_000, policy: policy)
        let fromSeoul = try seoul.commit(index, scores([("s1", 1)]))
        let fromTokyo = try tokyo.commit(index, scores([("s1", 2)]))
        seoul.receive(fromTokyo)
        tokyo.receive(fromSeoul)
        #expect(seoul.score(index, "s1") == 1)
        #expect(tokyo.scores(index) == seoul.scores(index))
        tokyo.expectIndexMatchesState(index)
    }

    @Test func removeThatSawBothConcurrentScores_removesTheMember() throws {
        var seoul = TestSite(1), tokyo = TestSite(2), frankfurt = TestSite(3)
        let fromSeoul = try seoul.commit(index, scores([("s1", 1), ("s2", 2)]))
        let fromTokyo = try tokyo.commit(index, scores([("s1", 3)]))
        frankfurt.receive([fromSeoul, fromTokyo])
        let removal = try frankfurt.commit(index, .removeScoredMembers(["s1".bytes]))
        seoul.receive([fromTokyo, removal])
        tokyo.receive([removal, fromSeoul])
        for site in [seoul, tokyo, frankfurt] {
            #expect(site.scores(index) == [ScoredMember(member: "s2".bytes, score: 2)])
            site.expectIndexMatchesState(index)
        }
        #expect(seoul.state(index) == tokyo.state(index))
    }

    @Test func value_ordersByScoreThenMember_typeIsZset() throws {
        var seoul = TestSite(1)
        try seoul.commit(index, scores([("b", 2), ("a", 2), ("c", -.infinity), ("d", .infinity), ("e", 0.5)]))
        #expect(seoul.scores(index).map { String(decoding: $0.member, as: UTF8.self) } == ["c", "e", "a", "b", "d"])
        #expect(seoul.state(index).visibleType(policy: .lastWriterWins) == .zset)
        #expect(seoul.value(index)?.type == .zset)
        seoul.expectIndexMatchesState(index)
    }

    @Test func rescoringAMember_movesItInTheIndex() throws {
        var seoul = TestSite(1)
        try seoul.commit(index, scores([("a", 1), ("b", 2), ("c", 3)]))
        try seoul.commit(index, scores([("a", 10)]))
        #expect(seoul.scores(index).map(\.score) == [2, 3, 10])
        #expect(seoul.state(index).sortedIndex.items.count == 3)
        seoul.expectIndexMatchesState(index)
    }

    @Test func addToAnExpiredKey_startsANewSortedSet() throws {
        var seoul = TestSite(1)
        try seoul.commit(index, scores([("old", 1)]))
        try seoul.commit(index, .expire(atMilliseconds: seoul.now + 100))
        seoul.physicalMilliseconds += 1_000
        let delta = try seoul.commit(index, scores([("new", 2)]))
        #expect(delta.startsNewKey)
        #expect(seoul.scores(index) == [ScoredMember(member: "new".bytes, score: 2)])
        #expect(seoul.state(index).visibleElementCount(of: .zset) == 1)
    }

    @Test func renameOfASortedSet_carriesScoresAndExpiry() throws {
        var seoul = TestSite(1), tokyo = TestSite(2)
        try seoul.commit(index, scores([("a", 1.5), ("b", 0.1)]))
        try seoul.commit(index, .expire(atMilliseconds: seoul.now + 60_000))
        let deltas = try seoul.commitRename(index, to: "other")
        #expect(seoul.scores("other") == [("b", 0.1), ("a", 1.5)].map(ScoredMember.init))
        #expect(seoul.state("other").expireAt == seoul.now + 60_000)
        tokyo.receive([deltas.destination])
        #expect(tokyo.scores("other") == seoul.scores("other"))
    }

    @Test func anyDeliveryOrder_identicalStatesAndIndexes() throws {
        var seoul = TestSite(1, physicalMilliseconds: 1_000)
        var tokyo = TestSite(2, physicalMilliseconds: 1_003)
        var frankfurt = TestSite(3, physicalMilliseconds: 1_001)
        var log: [Delta] = []
        log.append(try seoul.commit(index, scores([("a", 1), ("b", 2), ("c", 3)])))
        tokyo.receive(log[0])
        log.append(try tokyo.commit(index, scores([("a", 4), ("d", 0)])))
        log.append(try frankfurt.commit(index, scores([("b", 9), ("c", -2)])))
        log.append(try seoul.commit(index, .removeScoredMembers(["a".bytes, "b".bytes])))
        log.append(try tokyo.commit(index, .removeScoredMembers(["d".bytes])))
        log.append(try frankfurt.commit(index, scores([("e", 5)])))

        var random = SeededGenerator(seed: 7)
        var reference: KeyState?
        for _ in 0..<40 {
            var replica = TestSite(4)
            var order = log.indices.shuffled(using: &random)
            order += order.filter { _ in random.next() % 3 == 0 }
            for position in order { replica.receive(log[position]) }
            replica.expectIndexMatchesState(index)
            if let reference {
                #expect(replica.state(index) == reference)
            } else {
                reference = replica.state(index)
            }
        }
    }
}

func scores(_ pairs: [(String, Double)]) -> KeyWrite {
    .addScoredMembers(pairs.map { ScoredMember(member: $0.0.bytes, score: $0.1) })
}

extension ScoredMember {
    init(_ pair: (String, Double)) {
        self.init(member: pair.0.bytes, score: pair.1)
    }
}

extension TestSite {
    func scores(_ key: String) -> [ScoredMember] {
        guard case .zset(let members)? = value(key) else { return [] }
        return members
    }

    func score(_ key: String, _ member: String) -> Double? {
        state(key).score(of: member.bytes, now: now, policy: policy.conflict)
    }

    /// The index a copy keeps is the one its entries imply (rebuilt from scratch), and the
    /// members it shows in order are exactly the visible value's.
    func expectIndexMatchesState(_ key: String, sourceLocation: SourceLocation = #_sourceLocation) {
        let state = state(key)
        let rebuilt = KeyState(context: state.context, deletes: state.deletes, elements: state.elements)
        #expect(rebuilt.sortedIndex == state.sortedIndex, sourceLocation: sourceLocation)
        let ordered = state.sortedMembers(now: now, policy: policy.conflict).map { ScoredMember(member: $0.member, score: $0.score) }
        #expect(ordered == scores(key), sourceLocation: sourceLocation)
        let sortedByHand = ordered.sorted { $0.score != $1.score ? $0.score < $1.score : $0.member.lexicographicallyPrecedes($1.member) }
        #expect(ordered == sortedByHand, sourceLocation: sourceLocation)
    }
}
