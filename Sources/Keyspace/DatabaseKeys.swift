import RESP

/// Numbered databases (SELECT 0–15) as one keyspace: a key of database n is stored under a
/// name that says n, so partitioning, replication, federation, anti-entropy, tombstone
/// collection and expiry serve every database without knowing of them.
///
/// The stored name of a key of database 0 is the key itself, unless its first byte is the
/// marker (0xFF): then it is [marker, 0] + key. A key of database n (1…15) is stored as
/// [marker, n] + key. Every stored name splits back into exactly one (database, key), so
/// the same key in two databases never shares a stored name, and database 0's keys are
/// stored as they always were.
public enum DatabaseKeys {
    /// SELECT's range, as Redis's default `databases 16`.
    public static let count = 16
    public static let marker: UInt8 = 0xFF

    public static func isValid(_ database: Int) -> Bool {
        database >= 0 && database < count
    }

    /// The name under which `key` of `database` is stored.
    public static func stored(_ key: [UInt8], database: Int) -> [UInt8] {
        precondition(isValid(database), "database \(database) outside 0..<\(count)")
        if database == 0 && key.first != marker { return key }
        var name: [UInt8] = []
        name.reserveCapacity(key.count + 2)
        name.append(marker)
        name.append(UInt8(database))
        name.append(contentsOf: key)
        return name
    }

    /// The database of a stored name and the key within it. Nil for a name `stored` never
    /// makes (the marker alone, or followed by no valid database).
    public static func split(_ name: [UInt8]) -> (database: Int, key: [UInt8])? {
        guard name.first == marker else { return (0, name) }
        guard name.count >= 2, isValid(Int(name[1])) else { return nil }
        return (Int(name[1]), Array(name[2...]))
    }

    /// The database of a stored name (nil as for `split`), without copying the key.
    public static func database(of name: [UInt8]) -> Int? {
        guard name.first == marker else { return 0 }
        guard name.count >= 2, isValid(Int(name[1])) else { return nil }
        return Int(name[1])
    }

    /// The key a stored name holds, without its database: what the topology's `policies:`
    /// patterns match, so that a rule applies to its keys in every database.
    public static func unscoped(_ name: [UInt8]) -> [UInt8] {
        guard name.first == marker else { return name }
        return split(name)?.key ?? name
    }

    /// A command's arguments with its keys (the positions its command table entry names)
    /// replaced by their stored names in `database`.
    public static func storedArguments(_ arguments: [[UInt8]], spec: CommandSpec, database: Int) -> [[UInt8]] {
        guard spec.firstKey > 0, spec.firstKey < arguments.count else { return arguments }
        if database == 0 && !arguments.contains(where: { $0.first == marker }) { return arguments }
        let last = spec.lastKey < 0 ? arguments.count + spec.lastKey : min(spec.lastKey, arguments.count - 1)
        guard last >= spec.firstKey else { return arguments }
        var stored = arguments
        for index in stride(from: spec.firstKey, through: last, by: max(1, spec.step)) {
            stored[index] = Self.stored(arguments[index], database: database)
        }
        return stored
    }
}
