import Testing
@testable import SessionModel

/// A backup in step with its primary takes a write that observed all it holds as the primary
/// applied it (`KeyState.mergeInStep`), without the join; anything else is left to the join.
@Suite struct InStepMergeTests {
    /// Random commands at a primary, each merged at a copy that holds exactly what the primary
    /// held: whenever the in-step path takes a write, it gives the state and events of the
    /// whole-state join, and the kept summary stays what the elements add up to.
    @Test func aCopyInStep_givesWhatTheJoinGives() throws {
        var random = SeededGenerator(seed: 41)
        var primary = TestSite(1)
        var copy = TestSite(1)
        var inStep = 0
        var writes = 0
        for _ in 0..<3_000 {
            for (delta, _) in ConvergencePropertyTests.randomWrite(at: &primary, random: &random) {
                writes += 1
                let before = copy.state(String(decoding: delta.key, as: UTF8.self))
                var whole = before
                let expected = whole.merge(delta.state, policy: copy.policy)
                var state = before
                if let outcome = state.mergeInStep(delta, written: delta.entries, policy: copy.policy) {
                    inStep += 1
                    #expect(state == whole && outcome == expected, "\(delta)")
                    #expect(state.summary == ElementSummary(state.elements))
                } else {
                    #expect(state == before, "a write left to the join changed nothing first")
                }
                copy.receive(delta)
            }
            primary.physicalMilliseconds += random.next() % 50
            copy.physicalMilliseconds = primary.physicalMilliseconds
        }
        #expect(inStep > writes / 2, "in step \(inStep) of \(writes)")
        #expect(copy.keys == primary.keys)
    }

    /// What sessions write, replicated to a copy in step, takes the in-step path: a string
    /// written again with and without an expiry, a field of a hash written again or added,
    /// a field removed, a member added, an expiry moved. A SET over a hash observed entries
    /// of elements it does not name (the fields), and a DEL all of them: the join takes those.
    @Test func whatSessionsWrite_takesTheInStepPath() throws {
        var primary = TestSite(1)
        var copy = TestSite(1)
        func replicate(_ key: String, _ write: KeyWrite) throws -> Bool {
            let delta = try primary.commit(key, write)
            var state = copy.state(key)
            let taken = state.mergeInStep(delta, written: delta.entries, policy: copy.policy) != nil
            copy.receive(delta)
            #expect(copy.state(key) == primary.state(key), "\(write)")
            return taken
        }
        let value = Array("v".utf8), ttl = primary.now + 60_000
        for _ in 0..<3 {
            #expect(try replicate("flask:1", .setString(value, keepExpiry: false)))
            #expect(try replicate("flask:2", .replace(.string(value), expireAtMilliseconds: ttl)))
            #expect(try replicate("spring:1", fields([("lastAccessedTime", "1"), ("maxInactiveInterval", "1800")])))
            #expect(try replicate("spring:1", fields([("sessionAttr:user", "alice")])))
            #expect(try replicate("spring:1", .expire(atMilliseconds: ttl)))
            #expect(try replicate("spring:index", .addMembers([Array("spring:1".utf8)])))
        }
        #expect(try replicate("spring:1", .removeFields([Array("sessionAttr:user".utf8)])))
        #expect(try !replicate("spring:1", .setString(value, keepExpiry: false)), "observed the fields it does not name")
        #expect(try !replicate("flask:1", .delete), "observed the string it does not name")
        #expect(try replicate("flask:1", .setString(value, keepExpiry: false)), "a key started again after a delete")
    }

    /// A delta seen before (or its dot again), a write concurrent with one made here, and writes
    /// that did not see a delete made here: each is left to the join, which keeps or discards
    /// what it must.
    @Test func aCopyOutOfStep_leavesTheWriteToTheJoin() throws {
        let key = "session:1"
        var primary = TestSite(1)
        var copy = TestSite(2)
        let first = try primary.commit(key, .setString(Array("a".utf8), keepExpiry: false))
        copy.receive(first)

        var again = copy.state(key)
        #expect(again.mergeInStep(first, written: first.entries, policy: .default) == nil, "a delta merged before")
        #expect(again == copy.state(key))
        // The same dot again with another value, claiming to have observed itself (no correct
        // peer sends one): the join keeps what is here.
        var replayed = first
        replayed.context = copy.state(key).context
        replayed.operations = [.setString(Array("replayed".utf8))]
        #expect(again.mergeInStep(replayed, written: replayed.entries, policy: .default) == nil, "a delta whose dot is known here")
        copy.receive(replayed)
        #expect(copy.value(key) == .string(Array("a".utf8)))

        let there = try copy.commit(key, .setString(Array("there".utf8), keepExpiry: false))
        let here = try primary.commit(key, .setString(Array("here".utf8), keepExpiry: false))
        var concurrent = copy.state(key)
        #expect(concurrent.mergeInStep(here, written: here.entries, policy: .default) == nil, "a write that did not see one made here")
        copy.receive(here)
        primary.receive(there)
        #expect(copy.state(key).elements[.string]?.count == 2, "both concurrent entries are kept")
        #expect(copy.state(key) == primary.state(key))

        let deleted = try copy.commit(key, .delete)
        let written = try primary.commit(key, .setString(Array("after".utf8), keepExpiry: false))
        var afterDelete = copy.state(key)
        #expect(afterDelete.mergeInStep(written, written: written.entries, policy: .default) == nil, "a write that did not see a delete made here")
        copy.receive(written)
        primary.receive(deleted)
        #expect(copy.value(key) == nil && primary.value(key) == nil, "delete-wins discards the concurrent write")
        #expect(copy.state(key) == primary.state(key))

        // A peer's write that claims to have observed everything here but not the delete (no
        // correct peer sends one): delete-wins still discards it.
        let state = copy.state(key)
        #expect(!state.deletes.isEmpty)
        let forged = Delta(
            key: key.bytes, dot: Dot(site: SiteID(3), counter: 1), timestamp: written.timestamp, context: state.context,
            deletes: VersionVector(), operations: [.setString(Array("forged".utf8))]
        )
        var forgedInto = state
        #expect(forgedInto.mergeInStep(forged, written: forged.entries, policy: .default) == nil, "a write that did not see the key's deletes")
        copy.receive(forged)
        #expect(copy.value(key) == nil)
    }
}
