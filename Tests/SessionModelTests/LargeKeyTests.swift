import Testing
@testable import SessionModel

/// Collections of any size: a write replicated to a copy that holds the same key joins where
/// it lands (only the elements it names), and type checks read the kept summary.
@Suite struct LargeKeyTests {
    let key = "spring:session:index:principal"

    /// A primary and an in-sync copy of one hash of `size` fields.
    func hashAtTwoCopies(size: Int) throws -> (primary: TestSite, copy: TestSite) {
        var primary = TestSite(1), copy = TestSite(1)
        for index in 0..<size {
            let written = primary.write(key, .setFields([HashField(field: Array("f\(index)".utf8), value: [1])]))
            let delta = try #require(written)
            copy.receive(delta)
        }
        return (primary, copy)
    }

    @Test func aWriteToOneField_joinsACopyOfTheKeyByTheElementsItNames() throws {
        var (primary, copy) = try hashAtTwoCopies(size: 500)
        for write in [
            KeyWrite.setFields([HashField(field: Array("f7".utf8), value: [2])]),  // overwrite
            .setFields([HashField(field: Array("new".utf8), value: [3])]),        // add
            .removeFields([Array("f9".utf8)]),                                      // remove
            .expire(atMilliseconds: 9_999_999),                                     // touch
        ] {
            let written = primary.write(key, write)
            let delta = try #require(written)
            var state = copy.state(key)
            var whole = state
            let expected = whole.merge(delta.state, policy: .default)
            var named = Set(delta.state.elements.keys)
            if case .removeFields(let names) = write { for name in names { named.insert(.field(name)) } }
            var inPlace = state
            let joined = state.joinTouching(delta.state, named: named, policy: .default)
            let outcome = try #require(joined, "joined by its elements: \(write)")
            #expect(state == whole && outcome == expected)
            // The delta read in place, without its state, joins to the same.
            let joinedInPlace = inPlace.joinTouching(DeltaSide(delta), named: named, policy: .default)
            #expect(inPlace == whole && joinedInPlace == expected, "\(write)")
            copy.receive(delta)
        }
        #expect(copy.state(key) == primary.state(key))
        #expect(copy.state(key).summary.fields == 500)
    }

    @Test func aDeleteOfTheWholeKey_takesTheWholeJoin() throws {
        var (primary, copy) = try hashAtTwoCopies(size: 50)
        let written = primary.write(key, .delete)
        let delta = try #require(written)
        var state = copy.state(key)
        let joined = state.joinTouching(delta.state, named: [], policy: .default)
        #expect(joined == nil, "a delete observed every field")
        copy.receive(delta)
        #expect(copy.state(key) == primary.state(key) && copy.state(key).isEmpty)
        #expect(copy.state(key).summary == ElementSummary())
    }

    /// HSET of a field a compact hash holds, with a value longer, shorter or as long as the one
    /// it replaces: the record is rewritten without decoding it, and the summary stays what
    /// the elements add up to; a copy that merges the write holds the same state.
    @Test func overwritingAFieldOfACompactHash_keepsTheSummary() throws {
        var (primary, copy) = try hashAtTwoCopies(size: 10)
        for value in ["a", "a value much longer than the one before", "b", "c", ""] {
            let written = primary.write(key, .setFields([HashField(field: Array("f1".utf8), value: Array(value.utf8))]))
            let delta = try #require(written)
            copy.receive(delta)
            let state = primary.state(key)
            #expect(state.elements.isCompact)
            #expect(state.summary == ElementSummary(state.elements), "\(value)")
            #expect(copy.state(key) == state, "\(value)")
            #expect(state.summary.fields == 10)
        }
    }

    /// A SET over a string key rewrites its record in place: the same state and summary as a
    /// table built anew, at the copy that merges the same writes too; a SET over a key of
    /// another shape (a hash) still replaces everything.
    @Test func settingAStringAgain_keepsTheSummary() throws {
        var primary = TestSite(1), copy = TestSite(1)
        for value in ["a", "a value much longer than the one before", "b", "", String(repeating: "x", count: 5_000), "c"] {
            let written = primary.write(key, .setString(Array(value.utf8), keepExpiry: false))
            let delta = try #require(written)
            copy.receive(delta)
            let state = primary.state(key)
            #expect(state.summary == ElementSummary(state.elements), "\(value.prefix(20))")
            #expect(copy.state(key) == state, "\(value.prefix(20))")
            #expect(state.elements.count == 1)
        }
        let hash = primary.write(key, .setFields([HashField(field: Array("f".utf8), value: Array("v".utf8))]))
        copy.receive(try #require(hash))
        let overHash = primary.write(key, .setString(Array("s".utf8), keepExpiry: false))
        copy.receive(try #require(overHash))
        let state = primary.state(key)
        #expect(state.elements.count == 1 && state.summary == ElementSummary(state.elements) && state.summary.fields == 0)
        #expect(copy.state(key) == state)
    }

    /// A field two sites wrote concurrently holds both entries; the next write at either covers
    /// both and replaces them together, and the other site reaches the same state.
    @Test func overwritingAFieldWithConcurrentEntries_replacesThemAll() throws {
        var (primary, copy) = try hashAtTwoCopies(size: 10)
        var other = TestSite(2)
        other.keys = copy.keys
        let field = Array("f1".utf8)
        let writtenHere = primary.write(key, .setFields([HashField(field: field, value: Array("here".utf8))]))
        let writtenThere = other.write(key, .setFields([HashField(field: field, value: Array("there".utf8))]))
        let here = try #require(writtenHere), there = try #require(writtenThere)
        primary.receive(there)
        other.receive(here)
        #expect(primary.state(key).elements[.field(field)]?.count == 2, "both concurrent entries are kept")
        let writtenAfter = primary.write(key, .setFields([HashField(field: field, value: Array("after".utf8))]))
        let after = try #require(writtenAfter)
        other.receive(after)
        let state = primary.state(key)
        #expect(state.elements[.field(field)]?.count == 1)
        #expect(state.summary == ElementSummary(state.elements))
        #expect(other.state(key) == state)
    }

    @Test func theSummary_followsEveryChange() throws {
        var (primary, _) = try hashAtTwoCopies(size: 20)
        var state = primary.state(key)
        #expect(state.summary.fields == 20 && state.summary.onlyType == .hash && state.visibleType(policy: .lastWriterWins) == .hash)
        #expect(state.summary == ElementSummary(state.elements))
        _ = primary.write(key, .removeFields([Array("f1".utf8), Array("f2".utf8)]))
        state = primary.state(key)
        #expect(state.summary.fields == 18 && state.summary == ElementSummary(state.elements))
        #expect(state.visibleElementCount(of: .hash) == 18)
        _ = primary.write(key, .setString(Array("flat".utf8), keepExpiry: false))
        state = primary.state(key)
        #expect(state.summary.fields == 0 && state.summary.strings == 1 && state.summary == ElementSummary(state.elements))
        #expect(state.visibleType(policy: .lastWriterWins) == .string)
    }
}
