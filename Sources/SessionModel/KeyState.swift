/// The replicated state of one key: an observed-remove map of multi-value registers, one per
/// element, with a causal context and a delete vector (DESIGN.md §2.3). Every site holding the
/// same set of writes holds an identical `KeyState`, whatever the order they arrived in.
///
/// State = (entries, context, deletes):
/// - `context`: every dot seen for this key, including removed and superseded writes, so a late
///   or duplicated delta never brings them back (rule 1).
/// - `elements`: the surviving entries per element; more than one only for concurrent writes.
/// - `deletes`: per site, the latest delete of the key that site issued. Under delete-wins an
///   entry survives only if its writer had seen all of them (rule 7).
///
/// A deleted key is a state with no entries: its context and delete vector are the key's
/// tombstone, so a write concurrent with the delete that arrives later is discarded.
///
/// The `.restart` element records writes that found the key expired and started a new key;
/// reads skip the entries the restart in force hides (see `KeyRestart`).
public struct KeyState: Hashable, Sendable {
    public private(set) var context: CausalContext
    public private(set) var deletes: VersionVector
    /// Entries of each element sorted by dot; no element maps to an empty array.
    public private(set) var elements: ElementTable
    /// The elements' counts per type and their estimated bytes, kept as they change (derived
    /// from `elements`: two states with the same elements have the same summary).
    public private(set) var summary: ElementSummary
    /// The sorted-set members' entries in Redis's order, kept as they change (derived from
    /// `elements`, like `summary`).
    public private(set) var sortedIndex: SortedSetIndex

    public init() {
        context = CausalContext()
        deletes = VersionVector()
        elements = ElementTable()
        summary = ElementSummary()
        sortedIndex = SortedSetIndex()
    }

    /// Builds a state from decoded parts, restoring the invariants: entries sorted by dot, one
    /// entry per dot and element, every entry's dot in the context.
    public init(context: CausalContext, deletes: VersionVector, elements: [Element: [ElementEntry]]) {
        self.init(context: context, deletes: deletes, elements: elements, compact: true)
    }

    /// `compact: false` for a state about to be joined and dropped (a delta's): encoding its
    /// elements into a buffer would only cost the join a decode.
    init(context: CausalContext, deletes: VersionVector, elements: [Element: [ElementEntry]], compact: Bool) {
        var context = context
        var normalized: [Element: [ElementEntry]] = [:]
        for (element, entries) in elements where !entries.isEmpty {
            var byDot: [Dot: ElementEntry] = [:]
            for entry in entries {
                byDot[entry.dot] = entry
                context.insert(entry.dot)
            }
            normalized[element] = byDot.values.sorted { $0.dot < $1.dot }
        }
        self.context = context
        self.deletes = deletes
        self.elements = compact ? ElementTable(normalized) : ElementTable(hashing: normalized)
        summary = ElementSummary(normalized)
        sortedIndex = SortedSetIndex(normalized)
    }

    /// Builds a state from another's table (restoring the same invariants).
    public init(context: CausalContext, deletes: VersionVector, elements: ElementTable) {
        self.init(context: context, deletes: deletes, elements: Dictionary(uniqueKeysWithValues: elements.ordered.lazy.map { ($0.key, $0.value) }))
    }

    /// Changes one element's entries where they lie in the table (one lookup when the element
    /// is there), keeping the summary and the sorted index; an element left without entries
    /// leaves the table.
    private mutating func updateEntries(of element: Element, _ body: (inout [ElementEntry]) -> Void) {
        let sorted = element.isSortedMember
        // Kept in locals while the table changes (the closure may not reach into `self`); the
        // index is swapped out so that its array stays uniquely held and changes in place.
        var summary = self.summary
        var sortedIndex = SortedSetIndex()
        if sorted { swap(&sortedIndex, &self.sortedIndex) }
        elements.update(element) { entries in
            if !entries.isEmpty {
                summary.remove(element, entries)
                if sorted { sortedIndex.remove(element, entries) }
            }
            body(&entries)
            if !entries.isEmpty {
                summary.add(element, entries)
                if sorted { sortedIndex.add(element, entries) }
            }
        }
        self.summary = summary
        if sorted { swap(&sortedIndex, &self.sortedIndex) }
    }

    /// Sets (nil: removes) one element's entries, keeping the summary and the sorted index.
    private mutating func setEntries(_ entries: [ElementEntry]?, of element: Element) {
        updateEntries(of: element) { $0 = entries ?? [] }
    }

    /// True when the state has no entries (a tombstone, or never written).
    public var isEmpty: Bool { elements.isEmpty }

    // MARK: - Merge

    /// Merges a delta from another site (or a replayed one). Duplicates and stale deltas change
    /// nothing (rule 1); the result is independent of arrival order (rule 8).
    /// The delta is read in place (`DeltaSide`); `delta.state` is built only when the join
    /// must visit the whole key.
    @discardableResult
    public mutating func merge(_ delta: Delta, policy: MergePolicy) -> MergeOutcome {
        let written = delta.entries
        if let outcome = mergeInStep(delta, written: written, policy: policy) { return outcome }
        let side = DeltaSide(delta, written: written)
        var named = Set(side.written.all.lazy.map(\.element))
        named.formUnion(delta.removedElements)
        return joinTouching(side, named: named, policy: policy) ?? join(delta.state, policy: policy)
    }

    /// A write made on a copy of the key that held what this one holds: a backup in step with
    /// its primary, the common case of replication. Each entry here the write observed is an
    /// entry of an element it names, every entry of an element it writes was observed, and
    /// none of its dots is known here; so the join replaces exactly the entries the write
    /// replaced, adds its own and reports nothing. It is then applied as where it was made
    /// (a record rewritten in place), without the join's sets and tables. Nil when the copy may
    /// be out of step, or the join might discard or report anything: the join decides.
    /// `written`: `delta.entries`.
    mutating func mergeInStep(_ delta: Delta, written: [Delta.Written], policy: MergePolicy) -> MergeOutcome? {
        guard context.isDisjoint(with: delta.dots) else { return nil }
        // Under delete-wins the join drops an entry whose write did not see every delete it
        // joins with: the deletes must not change, and the write's own entries saw them all.
        if policy.delete == .deleteWins, !deletes.covers(delta.deletesAfter) || !written.isEmpty && !delta.deletes.covers(deletes) {
            return nil
        }
        // One data type after the write, or the join reports a type conflict.
        var writtenType: KeyType?
        for written in written {
            guard let type = written.element.keyType else { continue }
            if let writtenType, writtenType != type { return nil }
            writtenType = type
        }
        if let writtenType, summary.dataElements > 0, summary.onlyType != writtenType { return nil }

        // The elements the write names (writes or removes): it must have observed every entry
        // they hold. An entry it did not see stays: beside a written one, a conflict the join
        // reports; in a removed element, one the join would check against the deletes again.
        let removed = delta.removedElements
        guard written.count + removed.count <= Self.inStepLimit else { return nil }
        var namedDots: [Dot] = []
        var unobserved = false
        let coverage = delta.coverage
        func visit(_ element: Element) {
            _ = elements.forEachDot(of: element) { dot in
                namedDots.append(dot)
                if !coverage.contains(dot) { unobserved = true }
            }
        }
        for written in written { visit(written.element) }
        for element in removed { visit(element) }
        guard !unobserved else { return nil }
        // A dot observed and known here that no named element holds may be another element's
        // entry, which the join would drop. (The limit also bounds this search.)
        var foreign = false
        let small = delta.context.forEachDot(atMost: Self.inStepLimit) { dot in
            if !foreign, context.contains(dot), !namedDots.contains(dot) { foreign = true }
        }
        guard small, !foreign else { return nil }

        applyLocal(delta, written: written, touched: removed, policy: policy)
        // The write's dots were not known here: the context grew.
        return MergeOutcome(changed: true, events: [])
    }

    /// The most elements, and observed dots, a write merged in step may name.
    static let inStepLimit = 64

    /// Merges another replica's full state (anti-entropy): the same join as for a delta.
    @discardableResult
    public mutating func merge(_ other: KeyState, policy: MergePolicy) -> MergeOutcome {
        join(other, policy: policy)
    }

    /// The lattice join: keep an entry present on both sides, or on one side when the other side
    /// has not seen its dot; union the contexts and delete vectors; then, under delete-wins,
    /// discard entries concurrent with a delete.
    private mutating func join(_ other: KeyState, policy: MergePolicy) -> MergeOutcome {
        let before = self
        var joined: [Element: [ElementEntry]] = [:]
        var added: [Element: [Dot]] = [:]
        for element in Set(elements.keys).union(other.elements.keys) {
            let kept = joinedEntries(of: element, with: other, added: &added)
            if !kept.isEmpty {
                joined[element] = kept
            }
        }
        context.formUnion(other.context)
        deletes.merge(other.deletes)

        var events: [MergeEvent] = []
        if policy.delete == .deleteWins, !deletes.isEmpty {
            for (element, entries) in joined {
                let survivors = entries.filter { $0.deletesSeen.covers(deletes) }
                guard survivors.count != entries.count else { continue }
                for entry in entries where !entry.deletesSeen.covers(deletes) {
                    events.append(.discardedByDelete(element: element, discarded: entry.dot, deletes: deletes))
                }
                joined[element] = survivors.isEmpty ? nil : survivors
            }
        }
        elements = ElementTable(joined)
        summary = ElementSummary(joined)
        sortedIndex = SortedSetIndex(joined)

        events += conflictEvents(added: added, policy: policy.conflict)
        events.sort { "\($0)" < "\($1)" }
        return MergeOutcome(changed: self != before, events: events)
    }

    /// A delta joined where it lands: only the elements it names (`named`: its entries' and
    /// those its operations removed) are visited, so a write replicated to a backup or merged
    /// at another site costs what it touches, not the size of the key. Gives exactly what
    /// `join` gives; nil (use `join`) whenever the delta may reach further: its context covers
    /// a dot this state knows outside those elements (a delete observed the whole key, or this
    /// copy's history differs), it brings a delete under delete-wins, or it is too large to
    /// check cheaply.
    mutating func joinTouching(_ other: some JoinSide, named: Set<Element>, policy: MergePolicy) -> MergeOutcome? {
        guard named.count <= Self.touchingJoinLimit, let otherDots = other.context.dots(atMost: Self.touchingJoinLimit * 4) else { return nil }
        if policy.delete == .deleteWins, !deletes.covers(other.deletes) { return nil }
        // Each named element read once (a compact table decodes it on every read).
        let mine = named.map { (element: $0, entries: elements[$0] ?? []) }
        var namedDots = Set<Dot>()
        for (_, entries) in mine {
            for entry in entries { namedDots.insert(entry.dot) }
        }
        // Every entry holds a dot of the context: a dot known here that no named element holds
        // may be an entry of another element, which the full join would drop.
        for dot in otherDots where context.contains(dot) && !namedDots.contains(dot) { return nil }

        var changed = false
        var added: [Element: [Dot]] = [:]
        var events: [MergeEvent] = []
        for (element, mine) in mine {
            var kept = joinedEntries(of: element, mine: mine, with: other, added: &added)
            if policy.delete == .deleteWins, !deletes.isEmpty {
                // The deletes did not change: only what arrives can be concurrent with one.
                for entry in kept where !entry.deletesSeen.covers(deletes) {
                    events.append(.discardedByDelete(element: element, discarded: entry.dot, deletes: deletes))
                }
                kept.removeAll { !$0.deletesSeen.covers(deletes) }
            }
            if kept != mine {
                setEntries(kept, of: element)
                changed = true
            }
        }
        let contextBefore = context
        let deletesBefore = deletes
        context.formUnion(other.context)
        deletes.merge(other.deletes)
        changed = changed || context != contextBefore || deletes != deletesBefore

        events += conflictEvents(added: added, policy: policy.conflict)
        events.sort { "\($0)" < "\($1)" }
        return MergeOutcome(changed: changed, events: events)
    }

    /// One element's entries joined with `other`'s, sorted by dot: an entry stays on both sides,
    /// or on one side when the other has not seen its dot. Records the dots it added.
    private func joinedEntries(of element: Element, mine: [ElementEntry]? = nil, with other: some JoinSide, added: inout [Element: [Dot]]) -> [ElementEntry] {
        let theirs = other.entries(of: element)
        var kept = (mine ?? elements[element] ?? []).filter { entry in
            !other.context.contains(entry.dot) || theirs.contains { $0.dot == entry.dot }
        }
        for entry in theirs where !context.contains(entry.dot) {
            kept.append(entry)
            added[element, default: []].append(entry.dot)
        }
        if kept.count > 1 { kept.sort { $0.dot < $1.dot } }
        return kept
    }

    /// The concurrent writes a join brought (`added`: per element, the dots it added): each
    /// element's losers against its winner, then the type conflicts.
    private func conflictEvents(added: [Element: [Dot]], policy: ConflictPolicy) -> [MergeEvent] {
        var events: [MergeEvent] = []
        for (element, newDots) in added {
            guard case let entries? = elements[element], entries.count > 1 else { continue }
            if case .member = element { continue }  // add-wins: concurrent adds agree
            // (A sorted-set member's concurrent scores do not agree: reported as a field's are.)
            guard let winner = Self.visibleEntry(of: element, in: entries, policy: policy) else { continue }
            for entry in entries where entry.dot != winner.dot {
                if newDots.contains(entry.dot) || newDots.contains(winner.dot) {
                    events.append(.concurrentWrites(element: element, winner: winner.dot, loser: entry.dot))
                }
            }
        }
        return events + typeConflicts(added: added, policy: policy)
    }

    /// The largest delta `joinTouching` takes (elements; four times as many context dots).
    static let touchingJoinLimit = 256

    /// Concurrent writes that gave the key two types (SET at one site, HSET at another): every
    /// entry of a type other than the winner's is hidden, and reported against the winner.
    private func typeConflicts(added: [Element: [Dot]], policy: ConflictPolicy) -> [MergeEvent] {
        // Data of one type (or none) has nothing to conflict with.
        guard !added.isEmpty, summary.onlyType == nil, summary.dataElements > 0 else { return [] }
        var best: (element: Element, entry: ElementEntry)?
        for (element, entries) in elements where element.keyType != nil {
            for entry in entries where best == nil || policy.prefers(entry, over: best!.entry) {
                best = (element, entry)
            }
        }
        guard let best, let winnerType = best.element.keyType else { return [] }
        let winnerAdded = added[best.element]?.contains(best.entry.dot) ?? false
        var events: [MergeEvent] = []
        for (element, entries) in elements where element.keyType != nil && element.keyType != winnerType {
            for entry in entries where winnerAdded || (added[element]?.contains(entry.dot) ?? false) {
                events.append(.concurrentWrites(element: element, winner: best.entry.dot, loser: entry.dot))
            }
        }
        return events
    }

    // MARK: - Local writes

    /// Applies a write accepted at `site` and returns the delta to replicate, or nil when the
    /// write changes nothing (removing absent fields, expiring or deleting a missing key).
    ///
    /// `lifeStart` (milliseconds; 0: the copy has always been here) is when this copy's current
    /// life began: the copy may lack dots this site issued before (a node restarted empty, a
    /// partition re-created, a collected tombstone). A write to a key holding no dot of this
    /// site issued in this life jumps to `Dot.lineageFloor` of its timestamp, so no dot ever
    /// names two writes (issue: dots reused after a restart made sites diverge for good).
    ///
    /// `now` decides whether the key is live: a write to an expired key starts a new key, as in
    /// Redis. SET-like writes supersede everything of the old key; HSET, SADD and ZADD record a
    /// restart, which a touch made elsewhere before the expiry can still revive (§2.4).
    public mutating func write(
        _ write: KeyWrite,
        key: [UInt8],
        site: SiteID,
        timestamp: HLCTimestamp,
        now: UInt64,
        policy: MergePolicy = .default,
        lifeStart: UInt64 = 0
    ) -> Delta? {
        let live = isLive(now: now)
        var observed = CausalContext()
        var touched: [Element] = []
        /// Every entry was observed (SET, a write to a key with nothing visible, DEL): the key
        /// then holds the write's entries alone, and `touched` is not needed.
        var observedAll = false
        var writeDeletes = deletes
        let issuedThisLife = context.maxCounter(of: site) >= Dot.lineageFloor(physicalMilliseconds: lifeStart)
        let dot = context.nextDot(for: site, floor: issuedThisLife ? 0 : Dot.lineageFloor(physicalMilliseconds: timestamp.physicalMilliseconds))

        func observe(_ element: Element) {
            if elements.forEachDot(of: element, { observed.insert($0) }) { touched.append(element) }
        }
        func observeAll() {
            elements.forEachDot { observed.insert($0) }
            observedAll = true
        }
        func observeData(notOf type: KeyType?) {
            // Usually the key holds data of the written type only: nothing to visit.
            guard summary.dataElements(notOf: type) > 0 else { return }
            for element in elements.keys where element.keyType != nil && element.keyType != type {
                observe(element)
            }
        }
        /// A write of `type` supersedes data of other types (on a live key a hidden leftover of a
        /// concurrent type change). On an expired key the write restarts the key: the rest of
        /// the old key is hidden by the restart rather than superseded, so a concurrent touch
        /// made before the expiry can still revive it.
        /// A key emptied of data (its last field removed) is gone as in Redis, expiry included.
        var startsNewKey = false
        func prepareWrite(of type: KeyType) {
            if live || isExpired(now: now) {
                observeData(notOf: type)
                startsNewKey = !live
            } else {
                observeAll()
            }
        }

        var operations: [Operation] = []
        switch write {
        case .setString(let value, let keepExpiry):
            if live && keepExpiry { observeData(notOf: nil) } else { observeAll() }
            operations = [.setString(value)]
        case .append(let suffix):
            var base: [UInt8] = []
            if live, case .string(let current)? = value(now: now, policy: policy.conflict) { base = current }
            if live { observeData(notOf: nil) } else { observeAll() }
            operations = [.setString(base + suffix)]
        case .setFields(let fields):
            precondition(!fields.isEmpty, "HSET needs at least one field")
            prepareWrite(of: .hash)
            for field in fields {
                observe(.field(field.field))
                operations.append(.setField(field.field, value: field.value))
            }
        case .removeFields(let names):
            guard live else { return nil }
            observeData(notOf: .hash)
            for name in names where elements.contains(.field(name)) {
                observe(.field(name))
                operations.append(.removeField(name))
            }
        case .addMembers(let members):
            precondition(!members.isEmpty, "SADD needs at least one member")
            prepareWrite(of: .set)
            for member in members {
                observe(.member(member))
                operations.append(.addMember(member))
            }
        case .removeMembers(let members):
            guard live else { return nil }
            observeData(notOf: .set)
            for member in members where elements.contains(.member(member)) {
                observe(.member(member))
                operations.append(.removeMember(member))
            }
        case .addScoredMembers(let members):
            precondition(!members.isEmpty, "ZADD needs at least one member")
            prepareWrite(of: .zset)
            for member in members {
                precondition(!member.score.isNaN, "a sorted-set score is never NaN")
                observe(.sortedMember(member.member))
                operations.append(.setScore(member.member, score: member.score))
            }
        case .removeScoredMembers(let members):
            guard live else { return nil }
            observeData(notOf: .zset)
            for member in members where elements.contains(.sortedMember(member)) {
                observe(.sortedMember(member))
                operations.append(.removeScoredMember(member))
            }
        case .expire(let at):
            guard live else { return nil }
            observe(.expiry)
            operations = [.expire(atMilliseconds: at)]
        case .persist:
            guard live, expireAt != nil else { return nil }
            observe(.expiry)
            operations = [.persist]
        case .delete:
            // An expired key kept for its grace period is deleted too: the logout must reach the
            // sites where a touch kept it alive (the caller still answers 0, as for a missing key).
            guard !elements.isEmpty else { return nil }
            observed = context
            observedAll = true
            writeDeletes[site] = dot.counter
            operations = [.deleteKey]
        case .replace(let newValue, let expireAt):
            observeAll()
            switch newValue {
            case .string(let bytes):
                operations = [.setString(bytes)]
            case .hash(let fields):
                operations = fields.map { .setField($0.field, value: $0.value) }
            case .set(let members):
                operations = members.map { .addMember($0) }
            case .zset(let members):
                operations = members.map { .setScore($0.member, score: $0.score) }
            }
            if let expireAt { operations.append(.expire(atMilliseconds: expireAt)) }
        }
        guard !operations.isEmpty else { return nil }

        let delta = Delta(
            key: key,
            dot: dot,
            timestamp: timestamp,
            context: observed,
            deletes: writeDeletes,
            operations: startsNewKey ? [.restartKey] + operations : operations
        )
        applyLocal(delta, written: delta.entries, touched: observedAll ? nil : touched, policy: policy)
        return delta
    }

    /// Applies a delta this replica just produced. Equivalent to `join(delta.state)`, but it
    /// only visits the elements the write observed, so a write costs what it touches rather
    /// than the size of the key.
    /// It reads the delta's entries directly rather than building `delta.state` (a whole
    /// normalised key state per write).
    /// An element both observed and written is changed once, in place: its covered entries
    /// go and the new one comes (taking it out of the table and putting it back looked it up
    /// five times, most of an HSET's cost). Only observed elements hold covered entries.
    /// `touched`: the elements the write observed; nil when it observed every entry, which
    /// then are all covered: the key holds the written entries alone, built at once instead of
    /// emptying each element (a SET on a key of several elements visited each).
    /// `written`: `delta.entries`, computed once by the caller.
    private mutating func applyLocal(_ delta: Delta, written: [Delta.Written], touched: [Element]?, policy: MergePolicy) {
        let coverage = delta.coverage
        func covered(_ dot: Dot) -> Bool { coverage.contains(dot) }
        if let touched {
            let writtenEntries = Delta.WrittenEntries(written)
            for element in touched where writtenEntries.entry(of: element) == nil {
                updateEntries(of: element) { entries in entries.removeAll { covered($0.dot) } }
            }
            for written in written {
                // A write observed the element it writes, so it usually covers every entry the
                // element has: a compact key then rewrites the record without decoding what it
                // replaces (the entries and the old value were two allocations of every HSET of
                // a field the hash holds). An element absent, or an entry not covered, takes the
                // general path (a new field's record is then located twice, in a buffer of at
                // most 4 KB), as does a sorted-set member (its index needs the entries dropped).
                if !written.element.isSortedMember,
                    let replaced = elements.overwrite(written.element, with: written.entry, ifCovering: covered)
                {
                    summary.replaceEntries(replacedEntryBytes: replaced, with: written.entry)
                    continue
                }
                updateEntries(of: written.element) { entries in
                    entries.removeAll { covered($0.dot) }
                    entries.append(written.entry)
                    if entries.count > 1 { entries.sort { $0.dot < $1.dot } }
                }
            }
        } else if written.count == 1 {
            // A SET. Over a key that holds just the element it writes (a string written again,
            // the common case of a session's SET), the record is rewritten where it lies, as
            // for an HSET of a field the hash holds: every entry is covered, so the key then
            // holds the written entry alone, as it would from a table built anew. Otherwise one
            // element, without building an array of pairs.
            let only = written[0]
            if elements.count == 1, !only.element.isSortedMember,
                let replaced = elements.overwrite(only.element, with: only.entry, ifCovering: covered)
            {
                summary.replaceEntries(replacedEntryBytes: replaced, with: only.entry)
            } else {
                replaceElements(with: CollectionOfOne((key: only.element, value: [only.entry])))
            }
        } else {
            replaceElements(with: written.map { (key: $0.element, value: [$0.entry]) }.sorted { $0.key < $1.key })
        }
        context.formUnion(delta.context)
        delta.insertDots(into: &context)
        let deletesBefore = deletes
        deletes.merge(delta.deletesAfter)
        if policy.delete == .deleteWins, deletes != deletesBefore {
            for (element, entries) in elements {
                let survivors = entries.filter { $0.deletesSeen.covers(deletes) }
                if survivors.count != entries.count { setEntries(survivors, of: element) }
            }
        }
    }

    /// The key holds `pairs` alone (in `Element` order, each element once, none empty).
    private mutating func replaceElements(with pairs: some Collection<(key: Element, value: [ElementEntry])>) {
        elements = ElementTable(sortedPairs: pairs)
        summary = ElementSummary(pairs)
        sortedIndex = SortedSetIndex(pairs)
    }

    /// Whether a client sees the key at `now`: not expired and holding data.
    public func isLive(now: UInt64) -> Bool {
        guard !isExpired(now: now) else { return false }
        guard let restart = restartInForce else { return summary.dataElements > 0 }
        return elements.contains { element, entries in element.isData && entries.contains { !restart.hides($0) } }
    }

    /// Whether the key expired at least `expiryGraceMilliseconds` before `now` (§2.4: a touch
    /// made before its expiry has reached every site by then).
    public func isExpiredPastGrace(now: UInt64, expiryGraceMilliseconds: UInt64) -> Bool {
        guard let expireAt, now > expireAt else { return false }
        return now - expireAt >= expiryGraceMilliseconds
    }

    /// Whether `element` holds an entry a reader sees (the key may still be expired).
    public func isVisible(_ element: Element) -> Bool {
        // Without a restart in force every entry is visible, and the table holds no element
        // without entries: a lookup, not a decode (HSET asks this of every field it writes).
        guard let restart = restartInForce else { return elements.contains(element) }
        return !visibleEntries(of: element, after: restart).isEmpty
    }

    /// RENAME: deletes `source` and writes its value and expiry to `destination` (replacing
    /// whatever it held). Returns nil when the source is missing (`-ERR no such key`). Callers
    /// handle renaming a key to itself, which Redis treats as a no-op.
    public static func rename(
        source: inout KeyState,
        sourceKey: [UInt8],
        destination: inout KeyState,
        destinationKey: [UInt8],
        site: SiteID,
        timestamp: HLCTimestamp,
        now: UInt64,
        sourcePolicy: MergePolicy = .default,
        destinationPolicy: MergePolicy = .default,
        sourceLifeStart: UInt64 = 0,
        destinationLifeStart: UInt64 = 0
    ) -> (source: Delta, destination: Delta)? {
        // Each key by its own policy: the value read is the one GET of the source shows.
        guard let value = source.value(now: now, policy: sourcePolicy.conflict) else { return nil }
        let expireAt = source.expireAt
        guard
            let sourceDelta = source.write(.delete, key: sourceKey, site: site, timestamp: timestamp, now: now, policy: sourcePolicy, lifeStart: sourceLifeStart),
            let destinationDelta = destination.write(
                .replace(value, expireAtMilliseconds: expireAt),
                key: destinationKey,
                site: site,
                timestamp: timestamp,
                now: now,
                policy: destinationPolicy,
                lifeStart: destinationLifeStart
            )
        else { preconditionFailure("Invalid state: a live key refused a delete or replace") }
        return (sourceDelta, destinationDelta)
    }

    // MARK: - Reading

    /// The merged expiry time (rule 6): PERSIST beats any time, otherwise the latest time of the
    /// surviving (concurrent) expiry writes; nil when the key never expires.
    public var expireAt: UInt64? {
        guard summary.expiryElements > 0 else { return nil }
        let entries = visibleEntries(of: .expiry, after: restartInForce)
        guard case let entry? = Self.visibleEntry(of: .expiry, in: entries, policy: .lastWriterWins),
            case .expireAt(let at) = entry.payload
        else { return nil }
        return at
    }

    /// Redis's rule: a key is expired once the current time has passed its expiry time.
    public func isExpired(now: UInt64) -> Bool {
        guard let expireAt else { return false }
        return now > expireAt
    }

    /// The visible type: the type of the winning data entry, should concurrent writes have given
    /// the key two types (SET at one site, HSET at another).
    public func visibleType(policy: ConflictPolicy) -> KeyType? {
        let restart = restartInForce
        if restart == nil, summary.dataElements == 0 || summary.onlyType != nil {
            // Data of one type: the winner is of it, whichever entry wins.
            return summary.onlyType
        }
        var best: (entry: ElementEntry, type: KeyType)?
        for (element, entries) in elements {
            guard let type = element.keyType else { continue }
            for entry in entries where restart.map({ !$0.hides(entry) }) ?? true
                && (best == nil || policy.prefers(entry, over: best!.entry)) {
                best = (entry, type)
            }
        }
        return best?.type
    }

    /// How many elements of `type` a client sees (fields, members; 1 for a string). O(1) unless
    /// a restart in force hides some of them.
    public func visibleElementCount(of type: KeyType) -> Int {
        guard let restart = restartInForce else {
            switch type {
            case .string: return summary.strings
            case .hash: return summary.fields
            case .set: return summary.members
            case .zset: return summary.sortedMembers
            }
        }
        return elements.keys.count { $0.keyType == type && !visibleEntries(of: $0, after: restart).isEmpty }
    }

    /// The visible value of one hash field (nil when the key is not a visible hash).
    public func fieldValue(_ field: [UInt8], now: UInt64, policy: ConflictPolicy) -> [UInt8]? {
        guard !isExpired(now: now), visibleType(policy: policy) == .hash,
            case .bytes(let value)? = policy.winner(of: visibleEntries(of: .field(field), after: restartInForce))?.payload
        else { return nil }
        return value
    }

    /// What a client sees at `now`: nil when the key is missing, deleted or expired.
    public func value(now: UInt64, policy: ConflictPolicy) -> KeyValue? {
        guard !isExpired(now: now), let type = visibleType(policy: policy) else { return nil }
        let restart = restartInForce
        switch type {
        case .string:
            guard case .bytes(let bytes)? = policy.winner(of: visibleEntries(of: .string, after: restart))?.payload else { return nil }
            return .string(bytes)
        case .hash:
            var fields: [HashField] = []
            for element in elements.keys {
                guard case .field(let name) = element,
                    case .bytes(let value)? = policy.winner(of: visibleEntries(of: element, after: restart))?.payload
                else { continue }
                fields.append(HashField(field: name, value: value))
            }
            return .hash(fields.sorted { $0.field.lexicographicallyPrecedes($1.field) })
        case .set:
            let members = elements.keys.compactMap { element -> [UInt8]? in
                guard case .member(let name) = element, restart == nil || !visibleEntries(of: element, after: restart).isEmpty else { return nil }
                return name
            }
            return .set(members.sorted { $0.lexicographicallyPrecedes($1) })
        case .zset:
            return .zset(sortedMembers(now: now, policy: policy).map { ScoredMember(member: $0.member, score: $0.score) })
        }
    }

    /// The visible score of a sorted-set member (nil when the key is not a visible sorted set
    /// or lacks the member). O(1) in the set's size.
    public func score(of member: [UInt8], now: UInt64, policy: ConflictPolicy) -> Double? {
        guard !isExpired(now: now), visibleType(policy: policy) == .zset,
            case .score(let score)? = policy.winner(of: visibleEntries(of: .sortedMember(member), after: restartInForce))?.payload
        else { return nil }
        return score
    }

    /// The visible sorted-set members in Redis's order (score, then member), each once with its
    /// visible score; empty when the key is not a visible sorted set. Usually the kept index
    /// itself (O(1)); a copy without the entries a conflict lost or a restart hides while
    /// there are any.
    public func sortedMembers(now: UInt64, policy: ConflictPolicy) -> [SortedSetIndex.Item] {
        guard !isExpired(now: now), visibleType(policy: policy) == .zset else { return [] }
        let restart = restartInForce
        guard restart != nil || sortedIndex.items.count != summary.sortedMembers else { return sortedIndex.items }
        return sortedIndex.items.filter { item in
            policy.winner(of: visibleEntries(of: .sortedMember(item.member), after: restart))?.dot == item.dot
        }
    }

    /// The entry that decides an element: the conflict policy's winner for values; for the
    /// expiry, PERSIST and then the latest time (rule 6), ties by dot.
    static func visibleEntry(of element: Element, in entries: [ElementEntry], policy: ConflictPolicy) -> ElementEntry? {
        guard element == .expiry else { return policy.winner(of: entries) }
        func rank(_ entry: ElementEntry) -> (UInt64, Dot) {
            switch entry.payload {
            case .persist: return (UInt64.max, entry.dot)
            case .expireAt(let at): return (at, entry.dot)
            case .bytes, .present, .score: return (0, entry.dot)
            }
        }
        return entries.max { rank($0) < rank($1) }
    }
}
