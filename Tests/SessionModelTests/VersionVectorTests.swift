import Testing
@testable import SessionModel

@Suite struct VersionVectorTests {
    let a = SiteID(1), b = SiteID(2), c = SiteID(3)

    @Test func compare_pointwise_givesEqualBeforeAfterConcurrent() {
        let x = VersionVector([a: 2, b: 1])
        #expect(x.compare(VersionVector([a: 2, b: 1])) == .equal)
        #expect(x.compare(VersionVector([a: 3, b: 1])) == .before)
        #expect(x.compare(VersionVector([a: 2])) == .after)
        #expect(x.compare(VersionVector([a: 1, b: 1, c: 1])) == .concurrent)
        #expect(VersionVector().compare(VersionVector()) == .equal)
    }

    @Test func zeroCounters_omitted_equalVectorsEqual() {
        #expect(VersionVector([a: 0, b: 1]) == VersionVector([b: 1]))
        var x = VersionVector([a: 1])
        x[a] = 0
        #expect(x.isEmpty)
    }

    @Test func merge_takesPointwiseMaximum() {
        var x = VersionVector([a: 2, b: 1])
        x.merge(VersionVector([b: 5, c: 1]))
        #expect(x == VersionVector([a: 2, b: 5, c: 1]))
        #expect(x.entries.map(\.site) == [a, b, c])
    }

    @Test func covers_dotAndVector() {
        let x = VersionVector([a: 2])
        #expect(x.covers(Dot(site: a, counter: 2)))
        #expect(!x.covers(Dot(site: a, counter: 3)))
        #expect(!x.covers(Dot(site: b, counter: 1)))
        #expect(x.covers(VersionVector()))
        #expect(!x.covers(VersionVector([b: 1])))
    }

    @Test func pointwiseMinimum_isWhatEveryVectorKnows() {
        let stable = VersionVector.pointwiseMinimum([VersionVector([a: 3, b: 2]), VersionVector([a: 1, b: 4, c: 1])])
        #expect(stable == VersionVector([a: 1, b: 2]))
        #expect(VersionVector.pointwiseMinimum([]) == VersionVector())
    }
}

@Suite struct CausalContextTests {
    let a = SiteID(1), b = SiteID(2)

    @Test func outOfOrderDots_keptInCloud_thenCompacted() {
        var context = CausalContext()
        context.insert(Dot(site: a, counter: 3))
        context.insert(Dot(site: a, counter: 2))
        #expect(context.vector.isEmpty)
        #expect(context.cloud == [DotRange(site: a, first: 2, last: 3)])
        context.insert(Dot(site: a, counter: 1))
        #expect(context.vector == VersionVector([a: 3]))
        #expect(context.cloud.isEmpty)
    }

    @Test func union_isOrderIndependent_andCanonical() {
        let x = CausalContext(vector: VersionVector([a: 1]), dots: [Dot(site: b, counter: 2)])
        let y = CausalContext(vector: VersionVector([b: 1]), dots: [Dot(site: a, counter: 3)])
        var xy = x
        xy.formUnion(y)
        var yx = y
        yx.formUnion(x)
        #expect(xy == yx)
        #expect(xy.vector == VersionVector([a: 1, b: 2]))
        #expect(xy.cloud == [DotRange(site: a, first: 3, last: 3)])
        #expect(xy.nextDot(for: a) == Dot(site: a, counter: 4))
    }

    @Test func runsOfDots_mergeWhenTheyTouch_andJoinThePrefix() {
        var context = CausalContext()
        context.insert(DotRange(site: a, first: 100, last: 105))
        context.insert(Dot(site: a, counter: 107))
        #expect(context.cloud == [DotRange(site: a, first: 100, last: 105), DotRange(site: a, first: 107, last: 107)])
        context.insert(Dot(site: a, counter: 106))
        #expect(context.cloud == [DotRange(site: a, first: 100, last: 107)])
        #expect(context.nextDot(for: a) == Dot(site: a, counter: 108))
        #expect(context.nextDot(for: a, floor: 5_000) == Dot(site: a, counter: 5_000))
        context.insert(DotRange(site: a, first: 1, last: 99))
        #expect(context.vector == VersionVector([a: 107]))
        #expect(context.cloud.isEmpty)
    }

    /// The compact form holds exactly the dots inserted, whatever the order, and equal sets
    /// of dots have one representation.
    @Test func randomInsertsAndUnions_matchASetOfDots() {
        var random = SeededGenerator(seed: 77)
        for _ in 0..<2_000 {
            var expected = Set<Dot>()
            var one = CausalContext()
            var other = CausalContext()
            for _ in 0..<Int(random.next() % 12) {
                let site = random.next() % 2 == 0 ? a : b
                let first = 1 + random.next() % 12
                let last = first + random.next() % 3
                for counter in first...last { expected.insert(Dot(site: site, counter: counter)) }
                if random.next() % 2 == 0 { one.insert(DotRange(site: site, first: first, last: last)) } else { other.insert(DotRange(site: site, first: first, last: last)) }
            }
            var joined = one
            joined.formUnion(other)
            var reversed = other
            reversed.formUnion(one)
            #expect(joined == reversed)
            #expect(Set(joined.dots) == expected)
            #expect(joined == CausalContext(vector: VersionVector(), dots: Array(expected)))
            for counter in 1...16 {
                let dot = Dot(site: a, counter: UInt64(counter))
                #expect(joined.contains(dot) == expected.contains(dot))
            }
        }
    }

    /// `isSubset(of:)` reads the compact forms; it must agree with the sets of dots they hold.
    @Test func isSubset_matchesSetsOfDots() {
        var random = SeededGenerator(seed: 78)
        func randomContext() -> CausalContext {
            var context = CausalContext()
            for _ in 0..<Int(random.next() % 6) {
                let first = 1 + random.next() % 10
                context.insert(DotRange(site: random.next() % 2 == 0 ? a : b, first: first, last: first + random.next() % 4))
            }
            return context
        }
        for _ in 0..<5_000 {
            let one = randomContext(), other = randomContext()
            #expect(one.isSubset(of: other) == Set(one.dots).isSubset(of: Set(other.dots)), "\(one) ⊆ \(other)")
            var joined = one
            joined.formUnion(other)
            #expect(one.isSubset(of: joined) && other.isSubset(of: joined))
        }
    }

    /// `isDisjoint(with:)` and `forEachDot(atMost:)` read the compact form; they must agree
    /// with the set of dots it holds, for runs inside, across and beside the prefix and the
    /// runs.
    @Test func isDisjoint_matchesSetsOfDots() {
        var random = SeededGenerator(seed: 79)
        for _ in 0..<5_000 {
            var context = CausalContext()
            for _ in 0..<Int(random.next() % 6) {
                let first = 1 + random.next() % 10
                context.insert(DotRange(site: random.next() % 2 == 0 ? a : b, first: first, last: first + random.next() % 4))
            }
            let first = 1 + random.next() % 14
            let run = DotRange(site: random.next() % 2 == 0 ? a : b, first: first, last: first + random.next() % 4)
            let dots = Set(context.dots)
            let expected = (run.first...run.last).allSatisfy { !dots.contains(Dot(site: run.site, counter: $0)) }
            #expect(context.isDisjoint(with: run) == expected, "\(run) against \(context)")
            // Walked without an array: every dot once when few enough, none otherwise.
            var walked: [Dot] = []
            let walkedAll = context.forEachDot(atMost: 8) { walked.append($0) }
            #expect(walkedAll == (dots.count <= 8))
            #expect(walked.sorted() == (walkedAll ? context.dots : []))
            #expect(context.dots(atMost: 8) == (walkedAll ? context.dots : nil))
        }
    }

    @Test func contains_vectorAndCloud() {
        let context = CausalContext(vector: VersionVector([a: 2]), dots: [Dot(site: a, counter: 5)])
        #expect(context.contains(Dot(site: a, counter: 1)))
        #expect(context.contains(Dot(site: a, counter: 5)))
        #expect(!context.contains(Dot(site: a, counter: 3)))
        #expect(context.isCovered(by: VersionVector([a: 5])))
        #expect(!context.isCovered(by: VersionVector([a: 4])))
    }
}

@Suite struct HybridLogicalClockTests {
    @Test func tick_sameMillisecond_incrementsLogical() {
        var clock = HybridLogicalClock()
        let first = clock.tick(physicalMilliseconds: 100)
        let second = clock.tick(physicalMilliseconds: 100)
        let third = clock.tick(physicalMilliseconds: 99)  // the physical clock stepped back
        #expect(first == HLCTimestamp(physicalMilliseconds: 100, logical: 0))
        #expect(second == HLCTimestamp(physicalMilliseconds: 100, logical: 1))
        #expect(third == HLCTimestamp(physicalMilliseconds: 100, logical: 2))
        #expect(clock.tick(physicalMilliseconds: 101) == HLCTimestamp(physicalMilliseconds: 101, logical: 0))
    }

    @Test func receive_remoteAhead_nextLocalEventIsLater() throws {
        var clock = HybridLogicalClock()
        _ = clock.tick(physicalMilliseconds: 100)
        let remote = HLCTimestamp(physicalMilliseconds: 150, logical: 7)
        let received = try clock.receive(remote, physicalMilliseconds: 101)
        #expect(received == HLCTimestamp(physicalMilliseconds: 150, logical: 8))
        #expect(clock.tick(physicalMilliseconds: 102) > remote)
    }

    @Test func receive_allThreeEqual_takesMaxLogicalPlusOne() throws {
        var clock = HybridLogicalClock(last: HLCTimestamp(physicalMilliseconds: 100, logical: 3))
        let received = try clock.receive(HLCTimestamp(physicalMilliseconds: 100, logical: 9), physicalMilliseconds: 100)
        #expect(received == HLCTimestamp(physicalMilliseconds: 100, logical: 10))
    }

    @Test func receive_physicalAhead_resetsLogical() throws {
        var clock = HybridLogicalClock(last: HLCTimestamp(physicalMilliseconds: 100, logical: 3))
        let received = try clock.receive(HLCTimestamp(physicalMilliseconds: 90, logical: 9), physicalMilliseconds: 200)
        #expect(received == HLCTimestamp(physicalMilliseconds: 200, logical: 0))
    }

    @Test func receive_beyondMaximumDrift_throwsAndKeepsClock() {
        var clock = HybridLogicalClock(maximumDriftMilliseconds: 1_000)
        _ = clock.tick(physicalMilliseconds: 100)
        #expect(throws: HLCDriftError.self) {
            try clock.receive(HLCTimestamp(physicalMilliseconds: 1_101, logical: 0), physicalMilliseconds: 100)
        }
        #expect(clock.last == HLCTimestamp(physicalMilliseconds: 100, logical: 0))
        #expect(throws: Never.self) {
            try clock.receive(HLCTimestamp(physicalMilliseconds: 1_100, logical: 0), physicalMilliseconds: 100)
        }
    }

    @Test func logicalOverflow_carriesIntoPhysical_staysMonotonic() throws {
        var clock = HybridLogicalClock()
        _ = try clock.receive(HLCTimestamp(physicalMilliseconds: 100, logical: UInt32.max), physicalMilliseconds: 100)
        #expect(clock.last == HLCTimestamp(physicalMilliseconds: 101, logical: 0))
        #expect(clock.tick(physicalMilliseconds: 100) == HLCTimestamp(physicalMilliseconds: 101, logical: 1))
    }
}
