/// A small key's elements in one contiguous buffer, as Redis's listpack keeps a small hash.
///
/// Why: held as a dictionary of arrays, each element of a key cost four heap blocks (its slot
/// in the table, its name, its entry array, its payload) and about 270 bytes beyond its data;
/// a Spring session of six fields took twice the memory Redis takes for it. Here the elements
/// and every entry's federation metadata (dot, HLC timestamp, delete vector) are varints in
/// one buffer of exactly the size they need.
///
/// Records are sorted by `Element` order, and entries within a record by dot, with every
/// integer in its shortest varint: a given set of elements has exactly one encoding, so two
/// buffers hold the same elements exactly when their bytes are equal.
///
/// Record: kind (`Element` rank) · [name length · name] for fields and members · body length ·
/// body. Body: entry count · per entry: site · counter · physical ms · logical · payload tag ·
/// payload · delete-vector length · (site · counter)*. Payload: bytes (length · bytes), nothing
/// (present, persist), a time (varint) or a score (8 bytes, the double's bit pattern).
///
/// Lookups scan the records, skipping each by its lengths: cheap for the sizes kept here
/// (`ElementTable` moves a key to a dictionary before scans would cost more than hashing).
struct CompactElements: Hashable, Sendable {
    private(set) var bytes: [UInt8] = []
    /// How many elements (records) the buffer holds (32 bits: with the buffer's reference it
    /// fits the table's two words).
    private var records: UInt32 = 0

    var count: Int { Int(records) }

    init() {}

    /// Builds the buffer from elements in `Element` order, entries sorted by dot (elements
    /// without entries are left out, as everywhere in a key state).
    init(sorted elements: some Sequence<(key: Element, value: [ElementEntry])>) {
        var total = 0
        var records = 0
        for (element, entries) in elements where !entries.isEmpty {
            total += Self.recordSize(element, entries)
            records += 1
        }
        bytes = [UInt8](unsafeUninitializedCapacity: total) { buffer, initialized in
            var writer = Writer(buffer)
            for (element, entries) in elements where !entries.isEmpty { writer.record(element, entries) }
            precondition(writer.offset == total, "Invalid state: a record's size was miscounted")
            initialized = total
        }
        self.records = UInt32(records)
    }

    // MARK: Reading

    /// The entries of `element`, nil when the buffer does not hold it.
    func entries(of element: Element) -> [ElementEntry]? {
        bytes.withUnsafeBufferPointer { buffer in
            guard case .found(let record) = Self.locate(element, in: buffer) else { return nil }
            var reader = Reader(buffer, at: record.body.lowerBound)
            return reader.entries()
        }
    }

    /// Calls `body` with the dot of each of `element`'s entries; false when the buffer does not
    /// hold it. A write observes what it supersedes by dots alone: decoding the entries would
    /// copy their payloads for nothing.
    func forEachDot(of element: Element, _ body: (Dot) -> Void) -> Bool {
        bytes.withUnsafeBufferPointer { buffer in
            guard case .found(let record) = Self.locate(element, in: buffer) else { return false }
            var reader = Reader(buffer, at: record.body.lowerBound)
            reader.dots(body)
            return true
        }
    }

    /// Calls `body` with the dot of every entry of every element.
    func forEachDot(_ body: (Dot) -> Void) {
        bytes.withUnsafeBufferPointer { buffer in
            var reader = Reader(buffer, at: 0)
            while reader.offset < buffer.count {
                _ = reader.header()
                reader.dots(body)
            }
        }
    }

    func contains(_ element: Element) -> Bool {
        bytes.withUnsafeBufferPointer { buffer in
            if case .found = Self.locate(element, in: buffer) { return true }
            return false
        }
    }

    /// Every element with its entries, in `Element` order.
    func pairs() -> [(key: Element, value: [ElementEntry])] {
        var pairs: [(key: Element, value: [ElementEntry])] = []
        pairs.reserveCapacity(count)
        bytes.withUnsafeBufferPointer { buffer in
            var reader = Reader(buffer, at: 0)
            while reader.offset < buffer.count {
                let header = reader.header()
                pairs.append((Self.element(header, in: buffer), reader.entries()))
            }
        }
        return pairs
    }

    /// Every element, in `Element` order.
    func elements() -> [Element] {
        var elements: [Element] = []
        elements.reserveCapacity(count)
        bytes.withUnsafeBufferPointer { buffer in
            var reader = Reader(buffer, at: 0)
            while reader.offset < buffer.count {
                let header = reader.header()
                elements.append(Self.element(header, in: buffer))
                reader.offset = header.body.upperBound
            }
        }
        return elements
    }

    // MARK: Changing

    /// Changes one element's entries (empty when it is absent); entries left empty remove the
    /// element. The body keeps them sorted by dot, as everywhere in `KeyState`.
    mutating func update(_ element: Element, _ body: (inout [ElementEntry]) -> Void) {
        let (range, old) = bytes.withUnsafeBufferPointer { buffer -> (Range<Int>, [ElementEntry]?) in
            switch Self.locate(element, in: buffer) {
            case .found(let record):
                var reader = Reader(buffer, at: record.body.lowerBound)
                return (record.start..<record.body.upperBound, reader.entries())
            case .absent(let insertAt):
                return (insertAt..<insertAt, nil)
            }
        }
        var entries = old ?? []
        body(&entries)
        guard entries != old ?? [] else { return }
        replace(range, with: element, entries)
        if old == nil && !entries.isEmpty { records += 1 }
        if old != nil && entries.isEmpty { records -= 1 }
    }

    /// Replaces the entries of `element` with `entry` alone when `covered` holds for the dot of
    /// every entry it has, reading the record in place; returns what `ElementSummary` counted
    /// for the entries replaced. Nil, changing nothing, when the element is absent or an entry
    /// is not covered.
    mutating func overwrite(_ element: Element, with entry: ElementEntry, ifCovering covered: (Dot) -> Bool) -> Int? {
        let found = bytes.withUnsafeBufferPointer { buffer -> (range: Range<Int>, replacedBytes: Int)? in
            guard case .found(let record) = Self.locate(element, in: buffer) else { return nil }
            var reader = Reader(buffer, at: record.body.lowerBound)
            guard let replacedBytes = reader.entryBytes(ifCovering: covered) else { return nil }
            assert(reader.offset == record.body.upperBound, "an entry was skipped by the wrong length")
            return (record.start..<record.body.upperBound, replacedBytes)
        }
        guard let found else { return nil }
        replace(found.range, with: element, CollectionOfOne(entry))
        return found.replacedBytes
    }

    /// Replaces the bytes of `range` (one record, or an empty range where one belongs) with
    /// the record of `element` (none when `entries` is empty). A record of the same size is
    /// rewritten in place (a field written again with a value of the same length, the common
    /// session write); otherwise the buffer is rebuilt at its exact new size, so it never
    /// carries the spare capacity an array's growth leaves.
    private mutating func replace(_ range: Range<Int>, with element: Element, _ entries: some Collection<ElementEntry>) {
        let size = entries.isEmpty ? 0 : Self.recordSize(element, entries)
        if size == range.count {
            bytes.withUnsafeMutableBufferPointer { buffer in
                var writer = Writer(UnsafeMutableBufferPointer(rebasing: buffer[range]))
                writer.record(element, entries)
            }
            return
        }
        let total = bytes.count - range.count + size
        bytes = bytes.withUnsafeBufferPointer { old in
            [UInt8](unsafeUninitializedCapacity: total) { buffer, initialized in
                var writer = Writer(buffer)
                writer.copy(UnsafeBufferPointer(rebasing: old[..<range.lowerBound]))
                if !entries.isEmpty { writer.record(element, entries) }
                writer.copy(UnsafeBufferPointer(rebasing: old[range.upperBound...]))
                initialized = total
            }
        }
    }

    // MARK: Layout

    struct Header {
        var start: Int
        var rank: UInt8
        var name: Range<Int>
        var body: Range<Int>
    }

    enum Location {
        case found(Header)
        /// Where its record would go to keep the order.
        case absent(insertAt: Int)
    }

    /// Finds `element`'s record, or where it belongs: records are sorted, so the scan stops at
    /// the first record after it.
    static func locate(_ element: Element, in buffer: UnsafeBufferPointer<UInt8>) -> Location {
        let rank = element.rank
        return element.name.withUnsafeBufferPointer { name in
            var reader = Reader(buffer, at: 0)
            while reader.offset < buffer.count {
                let header = reader.header()
                if header.rank == rank {
                    let order = compare(UnsafeBufferPointer(rebasing: buffer[header.name]), name)
                    if order == 0 { return .found(header) }
                    if order > 0 { return .absent(insertAt: header.start) }
                } else if header.rank > rank {
                    return .absent(insertAt: header.start)
                }
                reader.offset = header.body.upperBound
            }
            return .absent(insertAt: buffer.count)
        }
    }

    /// Lexicographic order of two names (negative, zero, positive), as `Element`'s `<` orders
    /// names of one kind.
    static func compare(_ a: UnsafeBufferPointer<UInt8>, _ b: UnsafeBufferPointer<UInt8>) -> Int {
        let shared = min(a.count, b.count)
        for index in 0..<shared where a[index] != b[index] {
            return Int(a[index]) - Int(b[index])
        }
        return a.count - b.count
    }

    static func element(_ header: Header, in buffer: UnsafeBufferPointer<UInt8>) -> Element {
        let name = { Array(UnsafeBufferPointer(rebasing: buffer[header.name])) }
        switch header.rank {
        case 0: return .string
        case 1: return .field(name())
        case 2: return .member(name())
        case 3: return .expiry
        case 4: return .restart
        case 5: return .sortedMember(name())
        default: preconditionFailure("Invalid state: element kind \(header.rank) in a compact buffer")
        }
    }

    static func recordSize(_ element: Element, _ entries: some Collection<ElementEntry>) -> Int {
        let body = bodySize(entries)
        var size = 1 + varintSize(UInt64(body)) + body
        if element.isNamed { size += varintSize(UInt64(element.name.count)) + element.name.count }
        return size
    }

    static func bodySize(_ entries: some Collection<ElementEntry>) -> Int {
        var size = varintSize(UInt64(entries.count))
        for entry in entries {
            size += varintSize(UInt64(entry.dot.site.rawValue)) + varintSize(entry.dot.counter)
            size += varintSize(entry.timestamp.physicalMilliseconds) + varintSize(UInt64(entry.timestamp.logical))
            size += 1
            switch entry.payload {
            case .bytes(let value): size += varintSize(UInt64(value.count)) + value.count
            case .present, .persist: break
            case .expireAt(let at): size += varintSize(at)
            case .score: size += 8
            }
            size += varintSize(UInt64(entry.deletesSeen.entries.count))
            for seen in entry.deletesSeen.entries {
                size += varintSize(UInt64(seen.site.rawValue)) + varintSize(seen.counter)
            }
        }
        return size
    }

    static func varintSize(_ value: UInt64) -> Int {
        value == 0 ? 1 : (64 - value.leadingZeroBitCount + 6) / 7
    }

    /// Reads records the buffer's own writer produced (never bytes from outside the process:
    /// they arrive as protobuf and are decoded there).
    struct Reader {
        let buffer: UnsafeBufferPointer<UInt8>
        var offset: Int

        init(_ buffer: UnsafeBufferPointer<UInt8>, at offset: Int) {
            self.buffer = buffer
            self.offset = offset
        }

        mutating func byte() -> UInt8 {
            defer { offset += 1 }
            return buffer[offset]
        }

        mutating func varint() -> UInt64 {
            var value: UInt64 = 0
            var shift: UInt64 = 0
            while true {
                let byte = byte()
                value |= UInt64(byte & 0x7f) << shift
                if byte < 0x80 { return value }
                shift += 7
            }
        }

        mutating func length() -> Int { Int(truncatingIfNeeded: varint()) }

        /// The record at `offset`; leaves `offset` at its body.
        mutating func header() -> Header {
            let start = offset
            let rank = byte()
            var name = offset..<offset
            if Element.isNamed(rank: rank) {
                let length = length()
                name = offset..<offset + length
                offset += length
            }
            let bodyLength = length()
            let body = offset..<offset + bodyLength
            return Header(start: start, rank: rank, name: name, body: body)
        }

        /// The dots of the body's entries starting at `offset`, skipping everything else; leaves
        /// `offset` past the body.
        mutating func dots(_ body: (Dot) -> Void) {
            for _ in 0..<length() { body(entryShape().dot) }
        }

        /// What `ElementSummary` counts for the entries of the body starting at `offset`, or
        /// nil as soon as one's dot is not `covered` (the reader is then mid-body).
        mutating func entryBytes(ifCovering covered: (Dot) -> Bool) -> Int? {
            var total = 0
            for _ in 0..<length() {
                let shape = entryShape()
                guard covered(shape.dot) else { return nil }
                total += ElementSummary.entryBytes(payloadBytes: shape.payloadBytes, deletesSeen: shape.deletesSeen)
            }
            return total
        }

        /// One entry read for its dot and its size alone (its payload's share of
        /// `ElementSummary`, how many deletes it saw), skipping the rest.
        mutating func entryShape() -> (dot: Dot, payloadBytes: Int, deletesSeen: Int) {
            let dot = Dot(site: SiteID(UInt32(truncatingIfNeeded: varint())), counter: varint())
            _ = varint()  // the timestamp
            _ = varint()
            var payloadBytes = 0
            switch byte() {
            case 0:
                payloadBytes = length()
                offset += payloadBytes
            case 1, 3: break
            case 2: _ = varint()
            case 4:
                offset += 8
                payloadBytes = ElementSummary.scoreBytes
            case let tag: preconditionFailure("Invalid state: payload tag \(tag) in a compact buffer")
            }
            let deletesSeen = length()
            for _ in 0..<deletesSeen {
                _ = varint()  // a delete seen: site and counter
                _ = varint()
            }
            return (dot, payloadBytes, deletesSeen)
        }

        /// The entries of the body starting at `offset`.
        mutating func entries() -> [ElementEntry] {
            let count = length()
            var entries: [ElementEntry] = []
            entries.reserveCapacity(count)
            for _ in 0..<count {
                let dot = Dot(site: SiteID(UInt32(truncatingIfNeeded: varint())), counter: varint())
                let timestamp = HLCTimestamp(physicalMilliseconds: varint(), logical: UInt32(truncatingIfNeeded: varint()))
                let payload: ElementPayload
                switch byte() {
                case 0:
                    let length = length()
                    payload = .bytes(Array(UnsafeBufferPointer(rebasing: buffer[offset..<offset + length])))
                    offset += length
                case 1: payload = .present
                case 2: payload = .expireAt(varint())
                case 3: payload = .persist
                case 4:
                    var pattern: UInt64 = 0
                    for shift in stride(from: 0, to: 64, by: 8) { pattern |= UInt64(byte()) << UInt64(shift) }
                    payload = .score(Double(bitPattern: pattern))
                case let tag: preconditionFailure("Invalid state: payload tag \(tag) in a compact buffer")
                }
                let seenCount = length()
                var seen: [VersionVector.Entry] = []
                if seenCount > 0 {
                    seen.reserveCapacity(seenCount)
                    for _ in 0..<seenCount { seen.append(VersionVector.Entry(site: SiteID(UInt32(truncatingIfNeeded: varint())), counter: varint())) }
                }
                entries.append(ElementEntry(dot: dot, timestamp: timestamp, payload: payload, deletesSeen: VersionVector(sortedEntries: seen)))
            }
            return entries
        }
    }

    struct Writer {
        let buffer: UnsafeMutableBufferPointer<UInt8>
        var offset = 0

        init(_ buffer: UnsafeMutableBufferPointer<UInt8>) {
            self.buffer = buffer
        }

        mutating func byte(_ value: UInt8) {
            buffer[offset] = value
            offset += 1
        }

        mutating func varint(_ value: UInt64) {
            var rest = value
            while rest >= 0x80 {
                byte(UInt8(truncatingIfNeeded: rest) | 0x80)
                rest >>= 7
            }
            byte(UInt8(rest))
        }

        mutating func copy(_ bytes: UnsafeBufferPointer<UInt8>) {
            guard !bytes.isEmpty else { return }
            UnsafeMutableBufferPointer(rebasing: buffer[offset..<offset + bytes.count]).initialize(fromContentsOf: bytes)
            offset += bytes.count
        }

        mutating func copy(_ bytes: [UInt8]) {
            bytes.withUnsafeBufferPointer { copy($0) }
        }

        mutating func record(_ element: Element, _ entries: some Collection<ElementEntry>) {
            byte(element.rank)
            if element.isNamed {
                varint(UInt64(element.name.count))
                copy(element.name)
            }
            varint(UInt64(bodySize(entries)))
            varint(UInt64(entries.count))
            for entry in entries {
                varint(UInt64(entry.dot.site.rawValue))
                varint(entry.dot.counter)
                varint(entry.timestamp.physicalMilliseconds)
                varint(UInt64(entry.timestamp.logical))
                switch entry.payload {
                case .bytes(let value):
                    byte(0)
                    varint(UInt64(value.count))
                    copy(value)
                case .present: byte(1)
                case .expireAt(let at):
                    byte(2)
                    varint(at)
                case .persist: byte(3)
                case .score(let score):
                    byte(4)
                    let pattern = score.bitPattern
                    for shift in stride(from: 0, to: 64, by: 8) { byte(UInt8(truncatingIfNeeded: pattern >> UInt64(shift))) }
                }
                varint(UInt64(entry.deletesSeen.entries.count))
                for seen in entry.deletesSeen.entries {
                    varint(UInt64(seen.site.rawValue))
                    varint(seen.counter)
                }
            }
        }
    }
}
