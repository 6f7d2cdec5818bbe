import RESP
import SessionModel
import Testing
@testable import Keyspace

/// Numbered databases share one keyspace through their stored key names.
@Suite struct DatabaseKeysTests {
    static let marker = DatabaseKeys.marker

    @Test func databaseZeroKey_withoutTheMarker_isStoredUnchanged() {
        #expect(DatabaseKeys.stored(Array("sess:1".utf8), database: 0) == Array("sess:1".utf8))
        #expect(DatabaseKeys.stored([], database: 0) == [])
        #expect(DatabaseKeys.stored([0xFE, 1], database: 0) == [0xFE, 1])
    }

    @Test func databaseZeroKey_startingWithTheMarker_isEscaped() {
        #expect(DatabaseKeys.stored([Self.marker], database: 0) == [Self.marker, 0, Self.marker])
        #expect(DatabaseKeys.split([Self.marker, 0, Self.marker])! == (0, [Self.marker]))
        // The key a database-1 key would be stored as, written in database 0, stays apart.
        let lookalike: [UInt8] = [Self.marker, 1] + Array("k".utf8)
        #expect(DatabaseKeys.stored(lookalike, database: 0) != DatabaseKeys.stored(Array("k".utf8), database: 1))
    }

    @Test func namesNoStoringMakes_splitToNothing() {
        #expect(DatabaseKeys.split([Self.marker]) == nil)
        #expect(DatabaseKeys.split([Self.marker, 16, 1]) == nil)
        #expect(DatabaseKeys.split([Self.marker, Self.marker]) == nil)
    }

    /// Random binary keys (many starting with the marker or a database byte) in random
    /// databases: every stored name splits back to its (database, key), and two different
    /// (database, key) pairs never share a stored name.
    @Test(arguments: [1 as UInt64, 2, 3]) func randomKeys_roundTrip_andNeverCollide(seed: UInt64) {
        var generator = SeededGenerator(seed: seed)
        var owners: [[UInt8]: (Int, [UInt8])] = [:]
        for _ in 0..<5_000 {
            let length = Int.random(in: 0...6, using: &generator)
            var key = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            if !key.isEmpty, Bool.random(using: &generator) { key[0] = Self.marker }
            if key.count > 1, Bool.random(using: &generator) { key[1] = UInt8.random(in: 0...16, using: &generator) }
            let database = Int.random(in: 0..<DatabaseKeys.count, using: &generator)
            let stored = DatabaseKeys.stored(key, database: database)
            let split = DatabaseKeys.split(stored)
            #expect(split?.database == database && split?.key == key, "seed \(seed): \(database) \(key)")
            #expect(DatabaseKeys.database(of: stored) == database)
            if let owner = owners[stored] {
                #expect(owner.0 == database && owner.1 == key, "seed \(seed): \(owner) and \((database, key)) share \(stored)")
            }
            owners[stored] = (database, key)
        }
    }

    /// The topology's `policies:` patterns name keys, whatever their database.
    @Test func keyPolicyPattern_matchesItsKeysInEveryDatabase() {
        var configuration = KeyspaceConfiguration(site: SiteID(1), retainTombstones: true, maximumMemoryBytes: 0)
        let ruled = MergePolicy(conflict: .sitePriority([SiteID(2)]), delete: .updateWins)
        configuration.policies = KeyPolicies(rules: [KeyPolicies.Rule(pattern: Array("cart:*".utf8), policy: ruled)])
        let keyspace = Keyspace(configuration: configuration)
        for database in [0, 1, 15] {
            #expect(keyspace.policy(for: DatabaseKeys.stored(Array("cart:7".utf8), database: database)) == ruled)
            #expect(keyspace.policy(for: DatabaseKeys.stored(Array("sess:7".utf8), database: database)) == .default)
        }
        #expect(keyspace.policy(for: DatabaseKeys.stored([DatabaseKeys.marker] + Array("cart:7".utf8), database: 0)) == .default)
    }

    @Test func storedArguments_replaceExactlyTheKeyPositions() {
        func words(_ text: String...) -> [[UInt8]] { text.map { Array($0.utf8) } }
        let one: [UInt8] = [Self.marker, 1]
        let mset = CommandTable.spec(for: "mset")!
        #expect(DatabaseKeys.storedArguments(words("MSET", "a", "1", "b", "2"), spec: mset, database: 1) == [Array("MSET".utf8), one + Array("a".utf8), Array("1".utf8), one + Array("b".utf8), Array("2".utf8)])
        let eval = CommandTable.spec(for: "eval")!
        let script = words("EVAL", "return 1", "1", "lock", "secret")
        #expect(DatabaseKeys.storedArguments(script, spec: eval, database: 1)[3] == one + Array("lock".utf8))
        #expect(DatabaseKeys.storedArguments(script, spec: eval, database: 1)[4] == Array("secret".utf8))
        // A value that starts with the marker is a value, not a key.
        let set = CommandTable.spec(for: "set")!
        let marked = [Array("SET".utf8), Array("k".utf8), [Self.marker]]
        #expect(DatabaseKeys.storedArguments(marked, spec: set, database: 0) == marked)
        #expect(DatabaseKeys.storedArguments(words("DBSIZE"), spec: CommandTable.spec(for: "dbsize")!, database: 3) == words("DBSIZE"))
    }
}

/// The keyless commands on one keyspace: each database's keys only, in its own names.
@Suite struct DatabaseCommandTests {
    var keyspace = Keyspace(configuration: KeyspaceConfiguration(site: SiteID(1), retainTombstones: false, maximumMemoryBytes: 0))
    let now: UInt64 = 1_700_000_000_000

    mutating func run(_ database: Int, _ words: String...) -> RESPValue {
        run(database, words.map { Array($0.utf8) })
    }

    mutating func run(_ database: Int, _ arguments: [[UInt8]]) -> RESPValue {
        let spec = CommandTable.spec(for: String(decoding: arguments[0], as: UTF8.self).lowercased())!
        return keyspace.execute(DatabaseKeys.storedArguments(arguments, spec: spec, database: database), now: now, database: database)!.reply
    }

    @Test mutating func sameKeyInTwoDatabases_holdsTwoValues() {
        #expect(run(0, "SET", "k", "zero") == .ok)
        #expect(run(1, "SET", "k", "one") == .ok)
        #expect(run(0, "GET", "k") == .bulk("zero"))
        #expect(run(1, "GET", "k") == .bulk("one"))
        #expect(run(2, "GET", "k") == .null)
    }

    @Test mutating func keysScanAndDbsize_seeOnlyTheirDatabase() {
        _ = run(0, "SET", "a", "0")
        _ = run(1, "SET", "b", "1")
        _ = run(1, "HSET", "h", "f", "v")
        // A database-0 key that starts with the marker byte is listed under its own name.
        let marked: [UInt8] = [DatabaseKeys.marker] + Array("raw".utf8)
        _ = run(0, [Array("SET".utf8), marked, Array("0".utf8)])
        #expect(run(0, [Array("GET".utf8), marked]) == .bulk("0"))
        #expect(run(0, "DBSIZE") == .integer(2))
        #expect(run(1, "DBSIZE") == .integer(2))
        #expect(run(5, "DBSIZE") == .integer(0))
        #expect(run(1, "KEYS", "*") == .array([.bulk("b"), .bulk("h")]))
        #expect(run(0, "KEYS", "*") == .array([.bulk("a"), .bulkString(marked)]))
        #expect(run(0, [Array("KEYS".utf8), [DatabaseKeys.marker, UInt8(ascii: "*")]]) == .array([.bulkString(marked)]))
        #expect(scanKeys(run(1, "SCAN", "0", "COUNT", "100")) == ["b", "h"])
        #expect(scanKeys(run(1, "SCAN", "0", "TYPE", "hash", "COUNT", "100")) == ["h"])
        #expect(scanKeys(run(0, "SCAN", "0", "MATCH", "a*", "COUNT", "100")) == ["a"])
    }

    @Test mutating func flushdb_clearsItsDatabase_flushallEvery() {
        _ = run(0, "SET", "a", "0")
        _ = run(1, "SET", "a", "1")
        _ = run(2, "SET", "a", "2")
        #expect(run(1, "FLUSHDB") == .ok)
        #expect(run(1, "DBSIZE") == .integer(0))
        #expect(run(0, "GET", "a") == .bulk("0"))
        #expect(run(2, "GET", "a") == .bulk("2"))
        #expect(run(2, "FLUSHALL") == .ok)
        #expect(keyspace.count(now: now) == 0)
    }

    @Test mutating func countsByDatabase_forInfoKeyspace() {
        _ = run(0, "SET", "a", "0")
        _ = run(3, "SET", "a", "3", "EX", "100")
        _ = run(3, "SET", "b", "3")
        let counts = keyspace.countsByDatabase(now: now)
        #expect(counts.keys.sorted() == [0, 3])
        #expect(counts[3]! == (2, 1))
        #expect(counts[0]! == (1, 0))
    }

    @Test mutating func renameWithinADatabase_staysInIt() {
        _ = run(1, "SET", "old", "v")
        #expect(run(1, "RENAME", "old", "new") == .ok)
        #expect(run(1, "GET", "new") == .bulk("v"))
        #expect(run(0, "EXISTS", "new") == .integer(0))
    }

    func scanKeys(_ reply: RESPValue) -> [String] {
        guard case .array(let parts) = reply, parts.count == 2, case .array(let found) = parts[1] else { return [] }
        return found.compactMap { if case .bulkString(let bytes) = $0 { String(decoding: bytes, as: UTF8.self) } else { nil } }.sorted()
    }
}
