import Testing
@testable import SessionModel

/// DESIGN.md §2.4: each site expires keys itself from the merged expiry; expired state is kept
/// for a grace period so a delayed touch revives the whole session.
@Suite struct ExpiryTests {
    let session = "session:abc"

    @Test func expiredKey_invisibleAtOnce_stateKept() throws {
        var seoul = TestSite(1)
        _ = try seoul.commit(session, fields([("user", "ann")]))
        _ = try seoul.commit(session, .expire(atMilliseconds: 1_000_500))
        seoul.physicalMilliseconds = 1_000_500
        #expect(seoul.value(session) != nil, "Redis expires a key once the time is past its expiry")
        seoul.physicalMilliseconds = 1_000_501
        #expect(seoul.value(session) == nil)
        #expect(seoul.state(session).isExpired(now: seoul.now))
        #expect(!seoul.state(session).isEmpty)
    }

    @Test func touchAtOtherSiteBeforeExpiry_revivesWithinGrace() throws {
        var seoul = TestSite(1), tokyo = TestSite(2)
        let login = try seoul.commit(session, fields([("user", "ann"), ("cart", "2")]))
        let ttl = try seoul.commit(session, .expire(atMilliseconds: 1_001_000))
        tokyo.receive([login, ttl])
        // Tokyo touches just before expiry; the delta is delayed past the expiry at Seoul.
        tokyo.physicalMilliseconds = 1_000_900
        let touch = try tokyo.commit(session, .expire(atMilliseconds: 1_031_000))
        seoul.physicalMilliseconds = 1_002_000
        #expect(seoul.value(session) == nil)
        var state = seoul.state(session)
        #expect(state.collectTombstones(stable: VersionVector([SiteID(1): 2]), now: seoul.now, expiryGraceMilliseconds: 5_000) == .unchanged)
        seoul.receive(touch)
        #expect(seoul.value(session) == hash([("cart", "2"), ("user", "ann")]))
    }

    @Test func expiredBeyondGrace_dataReleased_lateTouchRevivesNothing() throws {
        var seoul = TestSite(1), tokyo = TestSite(2)
        let login = try seoul.commit(session, fields([("user", "ann")]))
        let ttl = try seoul.commit(session, .expire(atMilliseconds: 1_001_000))
        tokyo.receive([login, ttl])
        tokyo.physicalMilliseconds = 1_000_900
        let touch = try tokyo.commit(session, .expire(atMilliseconds: 1_100_000))

        seoul.physicalMilliseconds = 1_007_000
        var state = seoul.state(session)
        let stable = state.context.vector
        #expect(state.collectTombstones(stable: stable, now: seoul.now, expiryGraceMilliseconds: 5_000) == .releasedExpiredData)
        #expect(state.isEmpty)
        state.merge(touch, policy: .default)
        #expect(state.value(now: seoul.now, policy: .lastWriterWins) == nil)
        state.merge(login, policy: .default)
        #expect(state.value(now: seoul.now, policy: .lastWriterWins) == nil, "a replayed write must not come back")
    }

    @Test func expiredSession_lateFieldWriteDoesNotResurrectPartialKey() throws {
        var seoul = TestSite(1), tokyo = TestSite(2)
        let login = try seoul.commit(session, fields([("user", "ann")]))
        let ttl = try seoul.commit(session, .expire(atMilliseconds: 1_001_000))
        tokyo.receive([login, ttl])
        tokyo.physicalMilliseconds = 1_000_800
        let write = try tokyo.commit(session, fields([("cart", "9")]))
        seoul.physicalMilliseconds = 1_002_000
        seoul.receive(write)
        #expect(seoul.value(session) == nil)
    }

    @Test func writeToExpiredKey_startsNewKeyWithoutOldFieldsOrTTL() throws {
        var seoul = TestSite(1), tokyo = TestSite(2)
        let login = try seoul.commit(session, fields([("user", "ann")]))
        let ttl = try seoul.commit(session, .expire(atMilliseconds: 1_001_000))
        seoul.physicalMilliseconds = 1_002_000
        let fresh = try seoul.commit(session, fields([("user", "bob")]))
        #expect(seoul.value(session) == hash([("user", "bob")]))
        #expect(seoul.state(session).expireAt == nil)
        tokyo.physicalMilliseconds = 1_000_000
        tokyo.receive([fresh, ttl, login])
        #expect(tokyo.value(session) == hash([("user", "bob")]))
        #expect(tokyo.state(session) == seoul.state(session))
    }

    @Test func setWithoutKeepTTL_clearsExpiry_setWithKeepTTL_keepsIt() throws {
        var seoul = TestSite(1)
        _ = try seoul.commit(session, .setString("a".bytes, keepExpiry: false))
        _ = try seoul.commit(session, .expire(atMilliseconds: 1_500_000))
        _ = try seoul.commit(session, .setString("b".bytes, keepExpiry: true))
        #expect(seoul.state(session).expireAt == 1_500_000)
        _ = try seoul.commit(session, .setString("c".bytes, keepExpiry: false))
        #expect(seoul.state(session).expireAt == nil)
        #expect(seoul.value(session) == .string("c".bytes))
    }

    @Test func expireOrDeleteOnMissingKey_producesNoDelta() {
        var seoul = TestSite(1)
        #expect(seoul.write(session, .expire(atMilliseconds: 2_000_000)) == nil)
        #expect(seoul.write(session, .persist) == nil)
        #expect(seoul.write(session, .delete) == nil)
        #expect(seoul.write(session, .removeFields(["f".bytes])) == nil)
        #expect(seoul.rename(session, to: "other") == nil)
        _ = seoul.write(session, fields([("f", "1")]))
        #expect(seoul.write(session, .persist) == nil, "PERSIST on a key without expiry changes nothing")
        #expect(seoul.write(session, .removeFields(["g".bytes])) == nil)
    }
}

@Suite struct LocalWriteTests {
    @Test func append_toMissingAndExisting_buildsValue() throws {
        var seoul = TestSite(1)
        let first = try seoul.commit("k", .append("ab".bytes))
        _ = try seoul.commit("k", .append("".bytes))
        _ = try seoul.commit("k", .append("cd".bytes))
        #expect(seoul.value("k") == .string("abcd".bytes))
        #expect(first.operations == [.setString("ab".bytes)])
    }

    @Test func removingLastField_keyGone_nextWriteStartsFresh() throws {
        var seoul = TestSite(1)
        _ = try seoul.commit("k", fields([("f", "1")]))
        _ = try seoul.commit("k", .expire(atMilliseconds: 9_000_000))
        _ = try seoul.commit("k", .removeFields(["f".bytes]))
        #expect(seoul.value("k") == nil)
        _ = try seoul.commit("k", fields([("g", "1")]))
        #expect(seoul.state("k").expireAt == nil)
        #expect(seoul.value("k") == .hash([HashField(field: "g".bytes, value: "1".bytes)]))
    }

    @Test func fieldWriteDelta_carriesOnlyThatField_notWholeSession() throws {
        var seoul = TestSite(1)
        let big = (0..<20).map { ("sessionAttr:\($0)", String(repeating: "x", count: 500)) }
        _ = try seoul.commit("s", fields(big))
        let delta = try seoul.commit("s", fields([("lastAccessedTime", "1")]))
        #expect(delta.operations == [.setField("lastAccessedTime".bytes, value: "1".bytes)])
        #expect(delta.context.isEmpty)
        #expect(delta.dot == Dot(site: SiteID(1), counter: 21), "each of the 20 fields took a dot")
    }

    @Test func touchOnlyDelta_recognised() throws {
        var seoul = TestSite(1)
        _ = try seoul.commit("s", fields([("f", "1")]))
        let touch = try seoul.commit("s", .expire(atMilliseconds: 2_000_000))
        #expect(touch.isTouchOnly)
        let write = try seoul.commit("s", fields([("f", "2")]))
        #expect(!write.isTouchOnly)
    }
}

@Suite struct TombstoneAndDigestTests {
    @Test func deletedKey_stableTombstone_onlyWhenEverySiteCovers() throws {
        var seoul = TestSite(1), tokyo = TestSite(2)
        let login = try seoul.commit("s", fields([("f", "1")]))
        tokyo.receive(login)
        let logout = try tokyo.commit("s", .delete)
        seoul.receive(logout)
        var state = seoul.state("s")
        let partial = VersionVector([SiteID(1): 1])
        #expect(state.collectTombstones(stable: partial, now: seoul.now, expiryGraceMilliseconds: 0) == .unchanged)
        let stable = VersionVector.pointwiseMinimum([seoul.state("s").context.vector, tokyo.state("s").context.vector])
        #expect(state.collectTombstones(stable: stable, now: seoul.now, expiryGraceMilliseconds: 0) == .stableTombstone)
        #expect(state == seoul.state("s"))
    }

    @Test func digest_equalStatesEqualDigests_anyChangeDiffers() throws {
        var seoul = TestSite(1), tokyo = TestSite(2)
        let a = try seoul.commit("s", fields([("f", "1"), ("g", "2")]))
        let b = try tokyo.commit("s", .addMembers(["m".bytes]))
        seoul.receive(b)
        tokyo.receive(a)
        #expect(seoul.state("s").digest == tokyo.state("s").digest)
        _ = seoul.write("s", fields([("f", "3")]))
        #expect(seoul.state("s").digest != tokyo.state("s").digest)
        #expect(KeyState().digest == KeyState().digest)
        #expect(KeyState().digest != seoul.state("s").digest)
    }

    @Test func sipHash_matchesReferenceVector() {
        // Reference output of SipHash-2-4 for key 00..0f and the 15-byte message 00..0e (from
        // the test vectors published with the paper).
        let message = (0..<15).map { UInt8($0) }
        #expect(SipHash24.hash(message, key0: 0x0706_0504_0302_0100, key1: 0x0f0e_0d0c_0b0a_0908) == 0xa129_ca61_49be_45e5)
    }
}
