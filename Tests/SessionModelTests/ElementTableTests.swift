import Testing
@testable import SessionModel

/// The compact element buffer against a plain dictionary: every change reads back the same,
/// the encoding is canonical, and a key moves to the dictionary past the limits.
@Suite struct ElementTableTests {
    static let seeds: ClosedRange<UInt64> = 1...120

    @Test func randomChanges_readBackAsADictionaryDoes_andEncodeCanonically() {
        for seed in Self.seeds {
            var random = SeededGenerator(seed: seed)
            var table = ElementTable()
            var reference: [Element: [ElementEntry]] = [:]
            for step in 0..<Int.random(in: 1...120, using: &random) {
                let element = Self.element(&random)
                let entries = Int.random(in: 0..<5, using: &random) == 0 ? [] : Self.entries(&random)
                table.update(element) { $0 = entries }
                reference[element] = entries.isEmpty ? nil : entries
                let context = "seed \(seed), step \(step), \(element)"

                #expect(table[element] == reference[element], "\(context)")
                #expect(table.contains(element) == (reference[element] != nil), "\(context)")
                #expect(table.count == reference.count, "\(context)")
                #expect(table.ordered.map(\.key) == reference.keys.sorted(), "\(context)")
                #expect(table.ordered.map(\.value) == reference.keys.sorted().map { reference[$0]! }, "\(context)")
                var dots: [Dot] = []
                #expect(table.forEachDot(of: element) { dots.append($0) } == (reference[element] != nil), "\(context)")
                #expect(dots == (reference[element] ?? []).map(\.dot), "dots read without the entries, \(context)")
                var allDots: [Dot] = []
                table.forEachDot { allDots.append($0) }
                #expect(allDots.sorted() == reference.values.flatMap { $0.map(\.dot) }.sorted(), "\(context)")
                let rebuilt = ElementTable(reference)
                #expect(rebuilt == table, "\(context)")
                let sorted = reference.sorted { $0.key < $1.key }.map { (key: $0.key, value: $0.value) }
                #expect(ElementTable(sortedPairs: sorted) == table, "\(context)")
                if let only = sorted.first, sorted.count == 1 {
                    #expect(ElementTable(sortedPairs: CollectionOfOne(only)) == table, "one element, \(context)")
                }
                #expect(rebuilt.hashValue == table.hashValue, "\(context)")
                if case .compact(let built) = rebuilt.storage, case .compact(let changed) = table.storage {
                    #expect(built.bytes == changed.bytes, "canonical encoding, \(context)")
                }
            }
            #expect(Set(table.keys) == Set(reference.keys), "seed \(seed)")
        }
    }

    /// `overwrite` (a local write replacing every entry of an element, read in place) against
    /// the same change made through `update`: the same table, and the replaced entries' share
    /// of the summary as the decoded entries give it. Nothing changes when the element is
    /// absent, an entry is not covered, or the table is a dictionary.
    @Test func overwrite_changesAsUpdateDoes_onlyWhenEveryEntryIsCovered() {
        var outgrown = 0
        for seed in Self.seeds {
            var random = SeededGenerator(seed: seed &+ 10_000)
            var table = ElementTable()
            for step in 0..<Int.random(in: 1...100, using: &random) {
                let element = Self.element(&random)
                let context = "seed \(seed), step \(step), \(element)"
                guard Int.random(in: 0..<2, using: &random) == 0 else {
                    let entries = Self.entries(&random)
                    table.update(element) { $0 = entries }
                    continue
                }
                var entry = Self.entries(&random)[0]
                // Now and then a large value, so that an overwrite makes the buffer outgrow its limit.
                if Int.random(in: 0..<4, using: &random) == 0 { entry.payload = .bytes([UInt8](repeating: 7, count: 2_000)) }
                let old = table[element]
                let uncovered = Int.random(in: 0..<3, using: &random) == 0 ? old?.randomElement(using: &random)?.dot : nil
                let wasCompact = table.isCompact
                var expected = table
                let replaced = table.overwrite(element, with: entry, ifCovering: { $0 != uncovered })
                if let old, uncovered == nil, wasCompact {
                    expected.update(element) { $0 = [entry] }
                    #expect(replaced == ElementSummary.bytes(of: element, old) - ElementSummary.bytes(of: element, []), "\(context)")
                } else {
                    #expect(replaced == nil, "\(context)")
                }
                #expect(table == expected, "\(context)")
                #expect(table.isCompact == expected.isCompact, "moved to the dictionary as update moves it, \(context)")
                if replaced != nil && !table.isCompact { outgrown += 1 }
                if case .compact(let built) = ElementTable(sortedPairs: table.ordered).storage, case .compact(let changed) = table.storage {
                    #expect(built.bytes == changed.bytes, "canonical encoding, \(context)")
                }
            }
        }
        #expect(outgrown > 0, "no overwrite made a table outgrow the buffer")
    }

    @Test func aSpringSessionStaysCompact() {
        var table = ElementTable()
        let attribute = [UInt8](repeating: 0x78, count: 200)
        for (name, value) in [
            ("creationTime", Array("1700000000000".utf8)), ("lastAccessedTime", Array("1700000000000".utf8)),
            ("maxInactiveInterval", Array("1800".utf8)), ("sessionAttr:user", attribute),
            ("sessionAttr:cart", attribute), ("sessionAttr:prefs", attribute),
        ] {
            table.update(.field(Array(name.utf8))) { $0 = [Self.entry(counter: 1_700_000_000_000 << 20, payload: .bytes(value))] }
        }
        table.update(.expiry) { $0 = [Self.entry(counter: 1, payload: .expireAt(1_700_003_600_000))] }
        #expect(table.isCompact)
        guard case .compact(let compact) = table.storage else { return }
        // Six values (645 bytes) and their metadata: about 40 bytes per element beyond the data.
        #expect(compact.bytes.count < 645 + 7 * 60, "\(compact.bytes.count) bytes")
    }

    @Test func aKeyMovesToTheDictionary_pastTheElementLimit_andReadsTheSame() {
        var table = ElementTable()
        for index in 0...ElementTable.compactElementLimit {
            #expect(table.isCompact, "compact with \(index) elements")
            table.update(.member(Array("member-\(index)".utf8))) { $0 = [Self.entry(counter: UInt64(index + 1), payload: .present)] }
        }
        #expect(!table.isCompact)
        #expect(table.count == ElementTable.compactElementLimit + 1)
        #expect(table[.member(Array("member-0".utf8))]?.first?.dot.counter == 1)
        #expect(table == ElementTable(Dictionary(uniqueKeysWithValues: table.ordered.map { ($0.key, $0.value) })))
    }

    @Test func aKeyMovesToTheDictionary_pastTheByteLimit() {
        var table = ElementTable()
        table.update(.string) { $0 = [Self.entry(counter: 1, payload: .bytes([UInt8](repeating: 1, count: 100)))] }
        #expect(table.isCompact)
        table.update(.string) { $0 = [Self.entry(counter: 2, payload: .bytes([UInt8](repeating: 2, count: ElementTable.compactByteLimit)))] }
        #expect(!table.isCompact)
        #expect(table[.string]?.first?.payload == .bytes([UInt8](repeating: 2, count: ElementTable.compactByteLimit)))
    }

    // MARK: Generators

    static func element(_ random: inout SeededGenerator) -> Element {
        let name = (0..<Int.random(in: 0...3, using: &random)).map { _ in UInt8.random(in: 0...3, using: &random) }
        switch Int.random(in: 0..<6, using: &random) {
        case 0: return .string
        case 1: return .field(name)
        case 2: return .member(name)
        case 3: return .expiry
        case 4: return .restart
        default: return .sortedMember(name)
        }
    }

    static func entries(_ random: inout SeededGenerator) -> [ElementEntry] {
        var byDot: [Dot: ElementEntry] = [:]
        for _ in 0..<Int.random(in: 1...3, using: &random) {
            let counters: [UInt64] = [1, 127, 128, 1 << 20, Dot.maximumCounter, UInt64.random(in: 1...Dot.maximumCounter, using: &random)]
            let dot = Dot(site: SiteID(UInt32.random(in: 1...4, using: &random)), counter: counters.randomElement(using: &random)!)
            let payloads: [ElementPayload] = [
                .bytes([]), .bytes((0..<Int.random(in: 1...300, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }),
                .present, .persist, .expireAt(UInt64.random(in: 0...UInt64.max, using: &random)),
                .score(-0.0), .score(.infinity), .score(-.infinity), .score(Double.random(in: -1e9...1e9, using: &random)),
            ]
            var seen: [SiteID: UInt64] = [:]
            for _ in 0..<Int.random(in: 0...2, using: &random) {
                seen[SiteID(UInt32.random(in: 1...300, using: &random))] = UInt64.random(in: 1...UInt64.max, using: &random)
            }
            byDot[dot] = ElementEntry(
                dot: dot,
                timestamp: HLCTimestamp(physicalMilliseconds: UInt64.random(in: 0...UInt64.max >> 1, using: &random), logical: UInt32.random(in: 0...UInt32.max, using: &random)),
                payload: payloads.randomElement(using: &random)!,
                deletesSeen: VersionVector(seen)
            )
        }
        return byDot.values.sorted { $0.dot < $1.dot }
    }

    static func entry(counter: UInt64, payload: ElementPayload) -> ElementEntry {
        ElementEntry(
            dot: Dot(site: SiteID(1), counter: counter), timestamp: HLCTimestamp(physicalMilliseconds: 1_700_000_000_000, logical: 0),
            payload: payload, deletesSeen: VersionVector()
        )
    }
}

extension ElementTableTests {
    /// Elements without entries are not elements: a table built with one counts only the
    /// others, and writing it later adds it once.
    @Test func elementsWithoutEntries_areLeftOut_andCountedOnceWhenWritten() {
        let field = Element.field(Array("a".utf8))
        var table = ElementTable([.string: [], field: [Self.entry(counter: 1, payload: .bytes([1]))]])
        #expect(table.isCompact && table.count == 1 && !table.contains(.string))
        table.update(.string) { $0 = [Self.entry(counter: 2, payload: .bytes([2]))] }
        #expect(table.count == 2)
        table.update(.string) { $0 = [] }
        table.update(.expiry) { _ in }
        #expect(table.count == 1 && table == ElementTable([field: [Self.entry(counter: 1, payload: .bytes([1]))]]))
    }

    /// A key past the limits is never encoded: built whole, it is a dictionary at once.
    @Test func aTableBuiltWholePastTheLimits_isADictionary() {
        let many = Dictionary(uniqueKeysWithValues: (0...ElementTable.compactElementLimit).map {
            (Element.member(Array("m\($0)".utf8)), [Self.entry(counter: UInt64($0 + 1), payload: .present)])
        })
        #expect(!ElementTable(many).isCompact)
        let large = [Element.string: [Self.entry(counter: 1, payload: .bytes([UInt8](repeating: 0, count: ElementTable.compactByteLimit)))]]
        #expect(!ElementTable(large).isCompact)
        #expect(ElementTable(large)[.string] == large[.string])
    }
}
