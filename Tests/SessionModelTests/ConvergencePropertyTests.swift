import Testing
import Wire
@testable import SessionModel

/// §2.3 rule 8 and the causality guarantee, over random histories: writes of every kind at three
/// sites, delivered to every site in random orders with random duplicates.
///
/// Replay one history: `SESSIONFED_PROPERTY_SEED=<seed> swift test --filter ConvergencePropertyTests`.
/// More histories: `SESSIONFED_PROPERTY_HISTORIES=20000 swift test --filter ConvergencePropertyTests`.
@Suite struct ConvergencePropertyTests {
    static let keys = ["s:a", "s:b", "s:c"]
    static let fieldNames = ["creationTime", "lastAccessedTime", "sessionAttr:cart"]
    static let memberNames = ["m1", "m2", "m3"]

    /// What the oracle remembers of a write: which elements it overwrote or removed, judged from
    /// the command's meaning (not from the delta the model built), and what its writer had seen.
    struct WriteRecord {
        var key: [UInt8]
        var firstDot: Dot
        var lastDot: Dot
        var writerContext: CausalContext
        /// nil: the write replaced the whole key.
        var elements: Set<Element>?
        /// HSET or SADD on an expired key: unless a touch revives the key, no entry the write
        /// saw may stay visible.
        var restart: KeyRestart?
    }

    @Test func randomHistories_everySiteConverges_noCausallyLaterWriteLost() throws {
        let environment = ProcessInfoEnvironment()
        let histories = environment.integer("SESSIONFED_PROPERTY_HISTORIES") ?? 2_000
        let seeds: [UInt64]
        if let seed = environment.integer("SESSIONFED_PROPERTY_SEED") {
            seeds = [UInt64(seed)]
        } else {
            seeds = (0..<UInt64(histories)).map { 0x5E55_1010 &+ $0 }
        }
        for seed in seeds {
            if let failure = Self.run(seed: seed) {
                Issue.record("""
                    seed \(seed): \(failure)
                    replay: SESSIONFED_PROPERTY_SEED=\(seed) swift test --filter ConvergencePropertyTests
                    """)
                return
            }
        }
    }

    /// Runs one history; returns a description of the first violated property.
    static func run(seed: UInt64) -> String? {
        var random = SeededGenerator(seed: seed)
        let deletePolicy: DeletePolicy = random.next() % 4 == 0 ? .updateWins : .deleteWins
        let conflict: ConflictPolicy = random.next() % 3 == 0 ? .sitePriority([SiteID(2)]) : .lastWriterWins
        let policy = MergePolicy(conflict: conflict, delete: deletePolicy)
        var sites = (1...3).map { TestSite(UInt32($0), physicalMilliseconds: 1_000_000 + random.next() % 50, policy: policy) }
        var log: [Delta] = []
        var records: [WriteRecord] = []
        var undelivered: [[Int]] = [[], [], []]

        let steps = 20 + Int(random.next() % 40)
        for _ in 0..<steps {
            let siteIndex = Int(random.next() % 3)
            switch random.next() % 10 {
            case 0...4:
                for (delta, record) in randomWrite(at: &sites[siteIndex], random: &random) {
                    log.append(delta)
                    records.append(record)
                    for other in 0..<3 where other != siteIndex {
                        undelivered[other].append(log.count - 1)
                    }
                }
            case 5...8:
                guard !undelivered[siteIndex].isEmpty else { continue }
                let pick = Int(random.next() % UInt64(undelivered[siteIndex].count))
                let index = undelivered[siteIndex][pick]
                if random.next() % 4 != 0 { undelivered[siteIndex].remove(at: pick) }  // else: a duplicate follows
                sites[siteIndex].receive(log[index])
            default:
                sites[siteIndex].physicalMilliseconds += random.next() % 800
            }
        }
        // Quiescence: every site gets every delta, in a random order, some twice.
        for siteIndex in 0..<3 {
            var remaining = Array(log.indices)
            remaining.shuffle(using: &random)
            remaining += remaining.filter { _ in random.next() % 5 == 0 }
            for index in remaining { sites[siteIndex].receive(log[index]) }
        }

        for key in keys.map(\.bytes) {
            let encoded = sites.map { WireMessage.encode(key: key, state: $0.keys[key] ?? KeyState()) }
            if encoded[0] != encoded[1] || encoded[0] != encoded[2] {
                return "key \(String(decoding: key, as: UTF8.self)) differs between sites: \(sites.map { $0.keys[key] ?? KeyState() })"
            }
            // The sorted index each copy kept through its merges is the one its entries imply.
            for site in sites {
                let kept = site.keys[key] ?? KeyState()
                let rebuilt = KeyState(context: kept.context, deletes: kept.deletes, elements: kept.elements)
                if rebuilt.sortedIndex != kept.sortedIndex {
                    return "key \(String(decoding: key, as: UTF8.self)) at site \(site.id): sorted index \(kept.sortedIndex.items) differs from its entries' \(rebuilt.sortedIndex.items)"
                }
            }
            // No write that causally followed another is lost to it.
            let state = sites[0].keys[key] ?? KeyState()
            let expiries = state.elements[.expiry] ?? []
            for (element, entries) in state.elements {
                for entry in entries {
                    for record in records where record.key == key && record.writerContext.contains(entry.dot) {
                        if record.elements == nil || record.elements!.contains(element) {
                            return "entry \(entry.dot) of \(element) survived the later write \(record.firstDot) that saw it"
                        }
                        if let restart = record.restart, !expiries.contains(where: { restart.isRevived(by: $0) }), !restart.hides(entry) {
                            return "entry \(entry.dot) of \(element) stayed visible after the restart \(restart) that saw it"
                        }
                    }
                }
            }
        }
        return nil
    }

    /// One random command at `site`, skipped where Redis would answer WRONGTYPE.
    static func randomWrite(at site: inout TestSite, random: inout SeededGenerator) -> [(Delta, WriteRecord)] {
        let keyName = keys[Int(random.next() % UInt64(keys.count))]
        let key = keyName.bytes
        let before = site.state(keyName)
        let visible = before.value(now: site.now, policy: site.policy.conflict)
        let live = visible != nil
        func pick(_ names: [String]) -> [[UInt8]] {
            let chosen = names.filter { _ in random.next() % 2 == 0 }
            return (chosen.isEmpty ? [names[Int(random.next() % UInt64(names.count))]] : chosen).map(\.bytes)
        }
        func value() -> [UInt8] { Array("v\(random.next() % 100)".utf8) }

        var write: KeyWrite
        var elements: Set<Element>?
        switch random.next() % 13 {
        case 0:
            let keep = random.next() % 2 == 0
            write = .setString(value(), keepExpiry: keep)
            elements = keep && live ? [.string, .field([]), .member([])] : nil
        case 1:
            guard visible == nil || visible?.type == .string else { return [] }
            write = .append(value())
            elements = live ? [.string] : nil
        case 2, 3:
            guard visible == nil || visible?.type == .hash else { return [] }
            let names = pick(fieldNames)
            write = .setFields(names.map { HashField(field: $0, value: value()) })
            elements = Set(names.map { Element.field($0) }).union(before.elements.keys.filter { $0.keyType != nil && $0.keyType != .hash })
        case 4:
            let names = pick(fieldNames)
            write = .removeFields(names)
            elements = Set(names.map { Element.field($0) })
        case 5:
            guard visible == nil || visible?.type == .set else { return [] }
            let names = pick(memberNames)
            write = .addMembers(names)
            elements = Set(names.map { Element.member($0) }).union(before.elements.keys.filter { $0.keyType != nil && $0.keyType != .set })
        case 6:
            let names = pick(memberNames)
            write = .removeMembers(names)
            elements = Set(names.map { Element.member($0) })
        case 7:
            let at = site.now + random.next() % 3_000
            write = .expire(atMilliseconds: at > 400 ? at - 400 : at)
            elements = [.expiry]
        case 8:
            write = .persist
            elements = [.expiry]
        case 9:
            write = .delete
            elements = nil
        case 10:
            guard visible == nil || visible?.type == .zset else { return [] }
            let names = pick(memberNames)
            // Few distinct scores: concurrent ZADDs often tie on a score or differ only in it.
            write = .addScoredMembers(names.map { ScoredMember(member: $0, score: Double(Int(random.next() % 5)) - 2) })
            elements = Set(names.map { Element.sortedMember($0) }).union(before.elements.keys.filter { $0.keyType != nil && $0.keyType != .zset })
        case 11:
            let names = pick(memberNames)
            write = .removeScoredMembers(names)
            elements = Set(names.map { Element.sortedMember($0) })
        default:
            let destination = keys[Int(random.next() % UInt64(keys.count))]
            guard destination != keyName, let deltas = site.rename(keyName, to: destination) else { return [] }
            let destinationBefore = before  // only the source's context matters for its record
            _ = destinationBefore
            return [
                (deltas.source, record(deltas.source, before: before)),
                (deltas.destination, WriteRecord(
                    key: destination.bytes,
                    firstDot: deltas.destination.dot,
                    lastDot: deltas.destination.lastDot,
                    writerContext: site.state(destination).context.removing(from: deltas.destination),
                    elements: nil
                )),
            ]
        }
        if case .setString(_, true) = write, live {
            // SET … KEEPTTL replaces every data element but not the expiry.
            elements = Set(before.elements.keys.filter(\.isData))
        }
        guard let delta = site.write(keyName, write) else { return [] }
        var record = record(delta, before: before)
        record.elements = elements
        if delta.startsNewKey {
            #expect(before.isExpired(now: site.now), "only a write to an expired key restarts it")
            record.restart = KeyRestart(timestamp: delta.timestamp, dot: delta.dot)
        }
        return [(delta, record)]
    }

    static func record(_ delta: Delta, before: KeyState) -> WriteRecord {
        WriteRecord(key: delta.key, firstDot: delta.dot, lastDot: delta.lastDot, writerContext: before.context, elements: nil)
    }
}

extension CausalContext {
    /// The context as it was before `delta` was applied locally (its own dots removed).
    func removing(from delta: Delta) -> CausalContext {
        var result = CausalContext()
        for dot in dots where !(dot.site == delta.dot.site && dot.counter >= delta.dot.counter && dot.counter <= delta.lastDot.counter) {
            result.insert(dot)
        }
        return result
    }
}
