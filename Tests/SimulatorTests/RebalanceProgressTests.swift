import ControlPlane
import Testing

/// Rebalancing moves a bounded number of partitions at a time, and says how much is left
/// and how long that should take.
@Suite struct RebalanceProgressTests {
    /// Three members, every copy in sync, then `c` (which held nothing) comes up.
    static func siteWithAnIdleMember() -> ClusterMap {
        var map = ClusterMapTests.map(members: ["a", "b", "c"], partitions: 16)
        map.apply(.memberState(name: "c", state: .down), index: map.appliedIndex + 1)
        ClusterMapTests.applyAll(map.repairs(), to: &map)
        ClusterMapTests.markAllInSync(&map)
        map.apply(.memberState(name: "c", state: .up), index: map.appliedIndex + 1)
        return map
    }

    /// Finishes every move under way: the old primaries hand off, new copies catch up, and
    /// the copies they replace are dropped.
    static func finishMoves(_ map: inout ClusterMap) {
        let handedOff = map.partitions.filter { $0.handoverTo != nil }.map { ClusterCommand.assign($0.completingHandover(wholeCopies: $0.inSync, eligible: Set(map.eligibleMembers))) }
        ClusterMapTests.applyAll(handedOff, to: &map)
        ClusterMapTests.markAllInSync(&map)
        ClusterMapTests.applyAll(map.repairs(), to: &map)
    }

    @Test(arguments: [1, 2, 4])
    func rebalancing_neverHasMoreMovesUnderWayThanConfigured(limit: Int) {
        var map = Self.siteWithAnIdleMember()
        var rounds = 0
        while rounds < 200 {
            rounds += 1
            // The leader proposes again and again before anything finishes: it stops at the limit.
            for _ in 0..<8 {
                ClusterMapTests.applyAll(map.rebalance(movesInFlight: limit), to: &map)
                #expect(map.movesInFlight <= limit)
            }
            if map.movesInFlight == 0 { break }
            Self.finishMoves(&map)
        }
        #expect(map.movesLeft == 0)
        let primaries = map.partitions.reduce(into: [String: Int]()) { $0[$1.primary!, default: 0] += 1 }
        #expect(primaries.values.max()! - primaries.values.min()! <= 1, "primaries: \(primaries)")
        var copies: [String: Int] = [:]
        for assignment in map.partitions {
            #expect(Set(assignment.holders).count == assignment.holders.count)
            for holder in assignment.holders { copies[holder, default: 0] += 1 }
        }
        #expect(copies.values.max()! - copies.values.min()! <= 1, "copies: \(copies)")
    }

    @Test func aHigherLimitBalancesInFewerRounds() {
        func rounds(_ limit: Int) -> Int {
            var map = Self.siteWithAnIdleMember()
            for round in 1...200 {
                ClusterMapTests.applyAll(map.rebalance(movesInFlight: limit), to: &map)
                for _ in 1..<limit { ClusterMapTests.applyAll(map.rebalance(movesInFlight: limit), to: &map) }
                if map.movesInFlight == 0 { return round }
                Self.finishMoves(&map)
            }
            return 200
        }
        #expect(rounds(4) < rounds(1))
    }

    @Test func movesLeft_countsTheWorkToBalanceAndToEmptyLeavingMembers() {
        var map = Self.siteWithAnIdleMember()
        // c holds nothing of 16 primaries and 32 copies: about 5 primaries and 10 copies go to it.
        #expect((10...16).contains(map.movesLeft), "moves left: \(map.movesLeft)")
        let before = map.movesLeft
        ClusterMapTests.applyAll(map.rebalance(movesInFlight: 1), to: &map)
        // A move under way no longer counts as left to start.
        #expect(map.movesLeft == before - 1)
        Self.finishMoves(&map)
        #expect(map.movesLeft == before - 1)

        var draining = ClusterMapTests.map(members: ["a", "b", "c"], partitions: 6)
        ClusterMapTests.applyAll(draining.repairs(), to: &draining)
        ClusterMapTests.markAllInSync(&draining)
        draining.apply(.memberDraining(name: "c", draining: true), index: draining.appliedIndex + 1)
        let onC = draining.partitions.filter { $0.holders.contains("c") }.count
        #expect(draining.movesLeft >= onC)
    }

    @Test func eta_followsTheRateAtWhichMovesFinish() {
        var progress = RebalanceProgress()
        #expect(progress.observe(moving: 2, left: 10, now: 0).etaMilliseconds == nil, "no move finished yet: no estimate")
        _ = progress.observe(moving: 2, left: 8, now: 1_000)
        let figures = progress.observe(moving: 2, left: 6, now: 2_000)
        // Four moves finished in two seconds: eight more take about four.
        #expect(figures.etaMilliseconds == 4_000)
        #expect(figures.movesFinished == 4)
        // Balanced: nothing left, no estimate needed.
        let done = progress.observe(moving: 0, left: 0, now: 3_000)
        #expect(done.etaMilliseconds == 0 && done.movesFinished == 12)
        // New work after a quiet minute starts a fresh estimate.
        #expect(progress.observe(moving: 1, left: 5, now: 90_000).etaMilliseconds == nil)
    }
}
