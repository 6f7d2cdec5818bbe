import Testing
@testable import SessionModel

/// One test per rule of DESIGN.md §2.3, each a scenario across sites (seoul = 1, tokyo = 2,
/// frankfurt = 3). Deltas are moved between sites by hand, in the order each story needs.
@Suite struct MergeRulesTests {
    let session = "spring:session:sessions:42"

    // MARK: Rule 1

    @Test func rule1_duplicateAndReorderedDeltas_changeNothing() throws {
        var seoul = TestSite(1), tokyo = TestSite(2), frankfurt = TestSite(3)
        let first = try seoul.commit(session, fields([("user", "ann")]))
        seoul.physicalMilliseconds += 5
        let second = try seoul.commit(session, fields([("user", "bob")]))

        tokyo.receive([first, second])
        frankfurt.receive([second, first, second, first])

        #expect(tokyo.field(session, "user") == "bob")
        #expect(frankfurt.state(session) == tokyo.state(session))
        var replayed = frankfurt.state(session)
        #expect(replayed.merge(first, policy: .default).changed == false)
        #expect(replayed.merge(second, policy: .default).changed == false)
    }

    // MARK: Rule 2

    @Test func rule2_writeThatSawEarlierWrite_winsEvenWithEarlierClock() throws {
        var seoul = TestSite(1), tokyo = TestSite(2), frankfurt = TestSite(3)
        // Seoul's clock runs far ahead; Tokyo overwrites after seeing Seoul's write but stamps
        // an earlier time. Causality, not the clock, decides.
        let early = try seoul.commit(
            session, fields([("cart", "3 items")]), timestamp: HLCTimestamp(physicalMilliseconds: 9_000_000, logical: 0))
        tokyo.receive(early)
        let later = try tokyo.commit(
            session, fields([("cart", "empty")]), timestamp: HLCTimestamp(physicalMilliseconds: 1_000, logical: 0))
        frankfurt.receive([later, early])
        seoul.receive(later)

        #expect(frankfurt.field(session, "cart") == "empty")
        #expect(seoul.field(session, "cart") == "empty")
        #expect(frankfurt.events.isEmpty && seoul.events.isEmpty)
        #expect(frankfurt.state(session) == seoul.state(session))
    }

    // MARK: Rule 3

    @Test func rule3_concurrentWritesToSameField_higherTimestampWins_conflictReported() throws {
        var seoul = TestSite(1, physicalMilliseconds: 1_000)
        var tokyo = TestSite(2, physicalMilliseconds: 2_000)
        let fromSeoul = try seoul.commit(session, fields([("theme", "dark")]))
        let fromTokyo = try tokyo.commit(session, fields([("theme", "light")]))
        seoul.receive(fromTokyo)
        tokyo.receive(fromSeoul)

        #expect(seoul.field(session, "theme") == "light")
        #expect(tokyo.field(session, "theme") == "light")
        let expected = MergeEvent.concurrentWrites(element: .field("theme".bytes), winner: fromTokyo.dot, loser: fromSeoul.dot)
        #expect(seoul.events == [expected])
        #expect(tokyo.events == [expected])
        #expect(seoul.state(session) == tokyo.state(session))
    }

    @Test func rule3_equalTimestamps_higherSiteIDWins() throws {
        var seoul = TestSite(1), tokyo = TestSite(2)
        let stamp = HLCTimestamp(physicalMilliseconds: 5_000, logical: 0)
        let fromSeoul = try seoul.commit(session, fields([("theme", "dark")]), timestamp: stamp)
        let fromTokyo = try tokyo.commit(session, fields([("theme", "light")]), timestamp: stamp)
        seoul.receive(fromTokyo)
        tokyo.receive(fromSeoul)
        #expect(seoul.field(session, "theme") == "light")
        #expect(tokyo.field(session, "theme") == "light")
    }

    @Test func rule3_sitePriority_listedSiteWinsWhateverTheClock() throws {
        let policy = MergePolicy(conflict: .sitePriority([SiteID(1)]))
        var seoul = TestSite(1, physicalMilliseconds: 1_000, policy: policy)
        var tokyo = TestSite(2, physicalMilliseconds: 9_000, policy: policy)
        let fromSeoul = try seoul.commit(session, fields([("theme", "dark")]))
        let fromTokyo = try tokyo.commit(session, fields([("theme", "light")]))
        seoul.receive(fromTokyo)
        tokyo.receive(fromSeoul)
        #expect(seoul.field(session, "theme") == "dark")
        #expect(tokyo.field(session, "theme") == "dark")
        #expect(tokyo.events == [.concurrentWrites(element: .field("theme".bytes), winner: fromSeoul.dot, loser: fromTokyo.dot)])
    }

    @Test func rule3_laterWriteSupersedesBothConcurrentValues() throws {
        var seoul = TestSite(1), tokyo = TestSite(2), frankfurt = TestSite(3)
        let a = try seoul.commit(session, fields([("theme", "dark")]))
        let b = try tokyo.commit(session, fields([("theme", "light")]))
        frankfurt.receive([a, b])
        #expect(frankfurt.state(session).elements[.field("theme".bytes)]?.count == 2)
        let c = try frankfurt.commit(session, fields([("theme", "blue")]))
        #expect(frankfurt.state(session).elements[.field("theme".bytes)]?.count == 1)
        seoul.receive([c, b])
        tokyo.receive([c, a])
        #expect(seoul.field(session, "theme") == "blue")
        #expect(seoul.state(session) == tokyo.state(session))
        #expect(seoul.state(session) == frankfurt.state(session))
    }

    // MARK: Rule 4

    @Test func rule4_concurrentWritesToDifferentFields_bothSurvive() throws {
        var seoul = TestSite(1), tokyo = TestSite(2)
        let base = try seoul.commit(session, fields([("creationTime", "1")]))
        tokyo.receive(base)
        let a = try seoul.commit(session, fields([("sessionAttr:cart", "3")]))
        let b = try tokyo.commit(session, fields([("lastAccessedTime", "2")]))
        seoul.receive(b)
        tokyo.receive(a)
        let expected = hash([("creationTime", "1"), ("sessionAttr:cart", "3"), ("lastAccessedTime", "2")])
        #expect(seoul.value(session) == expected)
        #expect(tokyo.value(session) == expected)
        #expect(seoul.events.isEmpty && tokyo.events.isEmpty)
    }

    // MARK: Rule 5

    @Test func rule5_concurrentAddAndRemoveOfMember_addWins() throws {
        let index = "spring:session:index:PRINCIPAL_NAME_INDEX_NAME:ann"
        var seoul = TestSite(1), tokyo = TestSite(2)
        let first = try seoul.commit(index, .addMembers(["s1".bytes, "s2".bytes]))
        tokyo.receive(first)
        let remove = try seoul.commit(index, .removeMembers(["s1".bytes]))
        let readd = try tokyo.commit(index, .addMembers(["s1".bytes, "s3".bytes]))
        seoul.receive(readd)
        tokyo.receive(remove)
        let expected = KeyValue.set(["s1".bytes, "s2".bytes, "s3".bytes])
        #expect(seoul.value(index) == expected)
        #expect(tokyo.value(index) == expected)
        #expect(seoul.state(index) == tokyo.state(index))
    }

    @Test func rule5_removeThatSawTheAdd_removesEverywhere() throws {
        let index = "principal:ann"
        var seoul = TestSite(1), tokyo = TestSite(2), frankfurt = TestSite(3)
        let add = try seoul.commit(index, .addMembers(["s1".bytes, "s2".bytes]))
        tokyo.receive(add)
        let remove = try tokyo.commit(index, .removeMembers(["s1".bytes]))
        frankfurt.receive([remove, add])
        #expect(frankfurt.value(index) == .set(["s2".bytes]))
    }

    // MARK: Rule 6

    @Test func rule6_concurrentExpiries_laterTimeWins() throws {
        var seoul = TestSite(1), tokyo = TestSite(2)
        let create = try seoul.commit(session, fields([("user", "ann")]))
        tokyo.receive(create)
        let seoulTouch = try seoul.commit(session, .expire(atMilliseconds: 1_030_000))
        let tokyoTouch = try tokyo.commit(session, .expire(atMilliseconds: 1_020_000))
        seoul.receive(tokyoTouch)
        tokyo.receive(seoulTouch)
        #expect(seoul.state(session).expireAt == 1_030_000)
        #expect(tokyo.state(session).expireAt == 1_030_000)
        #expect(tokyo.events == [.concurrentWrites(element: .expiry, winner: seoulTouch.dot, loser: tokyoTouch.dot)])
    }

    @Test func rule6_persistConcurrentWithExpire_persistWins() throws {
        var seoul = TestSite(1), tokyo = TestSite(2)
        let create = try seoul.commit(session, fields([("user", "ann")]))
        let expiry = try seoul.commit(session, .expire(atMilliseconds: 1_020_000))
        tokyo.receive([create, expiry])
        let persist = try tokyo.commit(session, .persist)
        let touch = try seoul.commit(session, .expire(atMilliseconds: 1_090_000))
        seoul.receive(persist)
        tokyo.receive(touch)
        #expect(seoul.state(session).expireAt == nil)
        #expect(tokyo.state(session).expireAt == nil)
        #expect(seoul.state(session) == tokyo.state(session))
    }

    @Test func rule6_causallyLaterExpiry_winsEvenIfEarlier() throws {
        var seoul = TestSite(1), tokyo = TestSite(2), frankfurt = TestSite(3)
        let create = try seoul.commit(session, fields([("user", "ann")]))
        let long = try seoul.commit(session, .expire(atMilliseconds: 1_900_000))
        tokyo.receive([create, long])
        let short = try tokyo.commit(session, .expire(atMilliseconds: 1_100_000))
        frankfurt.receive([short, long, create])
        #expect(frankfurt.state(session).expireAt == 1_100_000)
        #expect(frankfurt.events.isEmpty)
    }

    // MARK: Rule 7

    @Test func deleteConcurrentWithFieldWrite_deleteWins() throws {
        var seoul = TestSite(1), tokyo = TestSite(2), frankfurt = TestSite(3)
        let login = try seoul.commit(session, fields([("user", "ann"), ("cart", "0")]))
        tokyo.receive(login)
        frankfurt.receive(login)
        // Logout at Frankfurt while Tokyo still updates the cart.
        let logout = try frankfurt.commit(session, .delete)
        let update = try tokyo.commit(session, fields([("cart", "1")]))
        seoul.receive([update, logout])
        tokyo.receive(logout)
        frankfurt.receive(update)

        for site in [seoul, tokyo, frankfurt] {
            #expect(site.value(session) == nil)
        }
        #expect(seoul.state(session) == tokyo.state(session))
        #expect(tokyo.state(session) == frankfurt.state(session))
        #expect(frankfurt.events.contains(.discardedByDelete(element: .field("cart".bytes), discarded: update.dot, deletes: logout.deletes)))
    }

    @Test func deleteConcurrentWithFieldWrite_updateWins_keepsOnlyConcurrentField() throws {
        let policy = MergePolicy(delete: .updateWins)
        var seoul = TestSite(1, policy: policy), tokyo = TestSite(2, policy: policy)
        let login = try seoul.commit(session, fields([("user", "ann"), ("cart", "0")]))
        tokyo.receive(login)
        let logout = try seoul.commit(session, .delete)
        let update = try tokyo.commit(session, fields([("cart", "1")]))
        seoul.receive(update)
        tokyo.receive(logout)
        #expect(seoul.value(session) == hash([("cart", "1")]))
        #expect(seoul.state(session) == tokyo.state(session))
    }

    @Test func writeThatSawDelete_createsNewIncarnation() throws {
        var seoul = TestSite(1), tokyo = TestSite(2), frankfurt = TestSite(3)
        let login = try seoul.commit(session, fields([("user", "ann")]))
        let logout = try seoul.commit(session, .delete)
        tokyo.receive([login, logout])
        let relogin = try tokyo.commit(session, fields([("user", "bob")]))
        frankfurt.receive([relogin, logout, login])
        seoul.receive(relogin)
        #expect(frankfurt.value(session) == hash([("user", "bob")]))
        #expect(seoul.value(session) == hash([("user", "bob")]))
        #expect(frankfurt.state(session) == seoul.state(session))
    }

    @Test func lateDeltaAfterLogout_neverResurrectsSession() throws {
        var seoul = TestSite(1), tokyo = TestSite(2), frankfurt = TestSite(3)
        let login = try seoul.commit(session, fields([("user", "ann")]))
        tokyo.receive(login)
        let touch = try tokyo.commit(session, fields([("lastAccessedTime", "7")]))
        seoul.receive(touch)
        let logout = try seoul.commit(session, .delete)
        // Frankfurt hears of the logout first, then the writes it superseded, duplicated.
        frankfurt.receive([logout, touch, login, touch])
        #expect(frankfurt.value(session) == nil)
        #expect(frankfurt.state(session).isEmpty)
        tokyo.receive(logout)
        #expect(tokyo.state(session) == frankfurt.state(session))
    }

    @Test func renameConcurrentWithWriteToSource_sourceGoneEverywhere() throws {
        let old = "spring:session:sessions:old", new = "spring:session:sessions:new"
        var seoul = TestSite(1), tokyo = TestSite(2)
        let create = try seoul.commit(old, fields([("user", "ann")]))
        let ttl = try seoul.commit(old, .expire(atMilliseconds: 2_000_000))
        tokyo.receive([create, ttl])
        let (renameSource, renameDestination) = try seoul.commitRename(old, to: new)
        let write = try tokyo.commit(old, fields([("cart", "1")]))
        tokyo.receive([renameDestination, renameSource])
        seoul.receive(write)
        #expect(seoul.value(old) == nil && tokyo.value(old) == nil)
        #expect(tokyo.value(new) == hash([("user", "ann")]))
        #expect(tokyo.state(new).expireAt == 2_000_000)
        #expect(seoul.state(old) == tokyo.state(old))
        #expect(seoul.state(new) == tokyo.state(new))
    }

    // MARK: Rule 8

    @Test func rule8_everyDeliveryOrderWithDuplicates_givesIdenticalState() throws {
        var seoul = TestSite(1), tokyo = TestSite(2), frankfurt = TestSite(3)
        var deltas: [Delta] = []
        deltas.append(try seoul.commit(session, fields([("a", "1"), ("b", "1")])))
        tokyo.receive(deltas[0])
        deltas.append(try tokyo.commit(session, fields([("a", "2")])))
        deltas.append(try seoul.commit(session, .removeFields(["b".bytes])))
        deltas.append(try frankfurt.commit(session, fields([("c", "3")])))
        deltas.append(try tokyo.commit(session, .expire(atMilliseconds: 5_000_000)))

        var reference: [UInt8]?
        for permutation in permutations(of: Array(deltas.indices)) {
            var state = KeyState()
            for index in permutation + permutation.prefix(2) {
                state.merge(deltas[index], policy: .default)
            }
            let bytes = state.canonicalBytes
            if let reference {
                #expect(bytes == reference, "order \(permutation)")
            } else {
                reference = bytes
            }
        }
        var merged = KeyState()
        for delta in deltas { merged.merge(delta, policy: .default) }
        #expect(merged.value(now: 1_000_000, policy: .lastWriterWins) == hash([("a", "2"), ("c", "3")]))
    }

    @Test func rule8_fullStateMerge_isCommutativeAssociativeIdempotent() throws {
        var seoul = TestSite(1), tokyo = TestSite(2), frankfurt = TestSite(3)
        let login = try seoul.commit(session, fields([("user", "ann")]))
        tokyo.receive(login)
        _ = tokyo.write(session, fields([("cart", "1")]))
        _ = seoul.write(session, .delete)
        _ = frankfurt.write(session, fields([("user", "eve")]))
        let (x, y, z) = (seoul.state(session), tokyo.state(session), frankfurt.state(session))
        func join(_ a: KeyState, _ b: KeyState) -> KeyState {
            var result = a
            result.merge(b, policy: .default)
            return result
        }
        #expect(join(x, y) == join(y, x))
        #expect(join(join(x, y), z) == join(x, join(y, z)))
        #expect(join(x, x) == x)
        #expect(join(join(x, y), y) == join(x, y))
    }

    // MARK: Types

    @Test func concurrentSetAndHset_typeOfLaterWriteWins_writeAfterwardsCleansUp() throws {
        var seoul = TestSite(1, physicalMilliseconds: 1_000), tokyo = TestSite(2, physicalMilliseconds: 2_000)
        let string = try seoul.commit(session, .setString("v".bytes, keepExpiry: false))
        let hashWrite = try tokyo.commit(session, fields([("f", "1")]))
        seoul.receive(hashWrite)
        tokyo.receive(string)
        #expect(seoul.value(session) == hash([("f", "1")]))
        #expect(tokyo.value(session) == hash([("f", "1")]))
        let next = try tokyo.commit(session, fields([("g", "2")]))
        #expect(tokyo.state(session).elements[.string] == nil)
        seoul.receive(next)
        #expect(seoul.state(session) == tokyo.state(session))
    }
}

func permutations(of items: [Int]) -> [[Int]] {
    guard items.count > 1 else { return [items] }
    return items.indices.flatMap { index -> [[Int]] in
        var rest = items
        let head = rest.remove(at: index)
        return permutations(of: rest).map { [head] + $0 }
    }
}
