/// What a key state's elements add up to, kept as they change: how many data elements of each
/// type it holds, and an estimate of the bytes they take. Type checks (WRONGTYPE, the visible
/// type), "does the key hold data" and memory accounting then cost O(1) however many fields a
/// hash has; counting them on every command made a hash growing to 100,000 fields quadratic.
public struct ElementSummary: Hashable, Sendable {
    // Counts as 32 bits: a summary lives in every key's slot of the keyspace's table.
    private var stringCount: Int32 = 0
    private var fieldCount: Int32 = 0
    private var memberCount: Int32 = 0
    private var sortedMemberCount: Int32 = 0
    private var expiryCount: Int32 = 0
    private var restartCount: Int32 = 0
    /// The elements' share of `Keyspace.estimateBytes`: names, entries, payloads.
    public private(set) var bytes = 0

    public var strings: Int { Int(stringCount) }
    public var fields: Int { Int(fieldCount) }
    public var members: Int { Int(memberCount) }
    public var sortedMembers: Int { Int(sortedMemberCount) }
    /// Whether the key holds an expiry or restart element: most keys hold neither, and reading
    /// them is then free of a dictionary lookup (hashing an element cost a tenth of a SET).
    public var expiryElements: Int { Int(expiryCount) }
    public var restartElements: Int { Int(restartCount) }

    public init() {}

    init(_ elements: some Sequence<(key: Element, value: [ElementEntry])>) {
        for (element, entries) in elements { add(element, entries) }
    }

    /// Data elements (strings, fields, members) of every type.
    public var dataElements: Int { strings + fields + members + sortedMembers }

    /// The one type the key's data has, or nil when it has none or several (a concurrent type
    /// change at two sites left entries of two types).
    public var onlyType: KeyType? {
        switch (strings > 0, fields > 0, members > 0, sortedMembers > 0) {
        case (true, false, false, false): return .string
        case (false, true, false, false): return .hash
        case (false, false, true, false): return .set
        case (false, false, false, true): return .zset
        default: return nil
        }
    }

    /// Data elements of types other than `type` (all of them for nil).
    public func dataElements(notOf type: KeyType?) -> Int {
        switch type {
        case .string: return fields + members + sortedMembers
        case .hash: return strings + members + sortedMembers
        case .set: return strings + fields + sortedMembers
        case .zset: return strings + fields + members
        case nil: return dataElements
        }
    }

    mutating func add(_ element: Element, _ entries: [ElementEntry]) {
        count(element, by: 1)
        bytes += Self.bytes(of: element, entries)
    }

    mutating func remove(_ element: Element, _ entries: [ElementEntry]) {
        count(element, by: -1)
        bytes -= Self.bytes(of: element, entries)
    }

    private mutating func count(_ element: Element, by change: Int32) {
        switch element {
        case .string: stringCount += change
        case .field: fieldCount += change
        case .member: memberCount += change
        case .sortedMember: sortedMemberCount += change
        case .expiry: expiryCount += change
        case .restart: restartCount += change
        }
    }

    /// A deterministic estimate with the per-allocation overheads of Swift arrays and
    /// dictionaries.
    static func bytes(of element: Element, _ entries: [ElementEntry]) -> Int {
        var total: Int
        switch element {
        case .field(let name), .member(let name), .sortedMember(let name): total = 48 + name.count
        case .string, .expiry, .restart: total = 16
        }
        for entry in entries { total += entryBytes(entry) }
        return total
    }

    static func entryBytes(_ entry: ElementEntry) -> Int {
        entryBytes(payloadBytes: payloadBytes(entry.payload), deletesSeen: entry.deletesSeen.entries.count)
    }

    /// One entry's share of `bytes`: the entry, its delete vector and its payload's
    /// (`CompactElements` counts a record's entries with it without decoding them).
    static func entryBytes(payloadBytes: Int, deletesSeen: Int) -> Int {
        64 + deletesSeen * 16 + payloadBytes
    }

    static func payloadBytes(_ payload: ElementPayload) -> Int {
        switch payload {
        case .bytes(let bytes): return bytes.count
        case .score: return scoreBytes
        case .present, .expireAt, .persist: return 0
        }
    }

    /// A score's item in the sorted index (the name's bytes are shared).
    static let scoreBytes = 40

    /// One element's entries, counted as `replacedEntryBytes`, replaced by `entry` alone.
    mutating func replaceEntries(replacedEntryBytes: Int, with entry: ElementEntry) {
        bytes += Self.entryBytes(entry) - replacedEntryBytes
    }
}
