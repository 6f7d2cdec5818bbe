import Testing
@testable import SessionModel

/// Stories found in review: each failed before its fix.
@Suite struct EdgeCaseTests {
    let session = "s"

    @Test func logoutOfLocallyExpiredKey_stillReachesSiteWhereTouchKeptItAlive() throws {
        var seoul = TestSite(1), tokyo = TestSite(2)
        let login = try seoul.commit(session, fields([("user", "alice")]))
        let ttl = try seoul.commit(session, .expire(atMilliseconds: 1_001_000))
        tokyo.receive([login, ttl])
        tokyo.physicalMilliseconds = 1_000_900
        let touch = try tokyo.commit(session, .expire(atMilliseconds: 1_100_000))
        seoul.physicalMilliseconds = 1_001_001
        let logout = try seoul.commit(session, .delete)
        seoul.receive(touch)
        tokyo.receive(logout)
        #expect(seoul.value(session) == nil)
        #expect(tokyo.value(session) == nil)
        #expect(seoul.state(session) == tokyo.state(session))
    }

    @Test func hdelOnHashWithHiddenConcurrentString_keepsTheHash() throws {
        var seoul = TestSite(1, physicalMilliseconds: 10), tokyo = TestSite(2, physicalMilliseconds: 20)
        var frankfurt = TestSite(3, physicalMilliseconds: 40)
        let f1 = try seoul.commit(session, fields([("f1", "1")]))
        let string = try tokyo.commit(session, .setString("s".bytes, keepExpiry: false))
        seoul.physicalMilliseconds = 30
        let f2 = try seoul.commit(session, fields([("f2", "2")]))
        frankfurt.receive([f1, string, f2])
        #expect(frankfurt.value(session) == hash([("f1", "1"), ("f2", "2")]))
        _ = try frankfurt.commit(session, .removeFields(["f2".bytes]))
        #expect(frankfurt.value(session) == hash([("f1", "1")]))
    }

    @Test func writeToExpiredKey_preExpiryWriteElsewhereDoesNotLeakIn() throws {
        var seoul = TestSite(1), tokyo = TestSite(2)
        let login = try seoul.commit(session, fields([("user", "alice"), ("cart", "x")]))
        let ttl = try seoul.commit(session, .expire(atMilliseconds: 1_001_000))
        tokyo.receive([login, ttl])
        tokyo.physicalMilliseconds = 1_000_500
        let cart = try tokyo.commit(session, fields([("cart", "alice-cart")]))
        seoul.physicalMilliseconds = 1_002_000
        let fresh = try seoul.commit(session, fields([("user", "bob")]))
        seoul.receive(cart)
        tokyo.physicalMilliseconds = 1_002_000
        tokyo.receive(fresh)
        #expect(seoul.value(session) == hash([("user", "bob")]))
        #expect(tokyo.value(session) == hash([("user", "bob")]))
        #expect(seoul.state(session) == tokyo.state(session))
    }

    @Test func concurrentSetAndHset_typeConflictReported() throws {
        var seoul = TestSite(1, physicalMilliseconds: 1_000), tokyo = TestSite(2, physicalMilliseconds: 2_000)
        var frankfurt = TestSite(3)
        let string = try seoul.commit(session, .setString("v".bytes, keepExpiry: false))
        let hashWrite = try tokyo.commit(session, fields([("f", "1")]))
        frankfurt.receive([string, hashWrite])
        #expect(frankfurt.events == [.concurrentWrites(element: .string, winner: hashWrite.dot, loser: string.dot)])
    }

    @Test func contextCounterAtTheTop_mergeDoesNotTrap() {
        let site = SiteID(3)
        var context = CausalContext(vector: VersionVector([site: UInt64.max]))
        context.formUnion(CausalContext(vector: VersionVector([site: 1]), dots: [Dot(site: site, counter: 5)]))
        #expect(context.vector[site] == UInt64.max)
    }
}
