/// A write that found its key expired and so started a new key (HSET, SADD or ZADD on an expired
/// key: in Redis the old fields are gone). DESIGN.md §2.4 keeps an expired key's state for its
/// grace period so that a touch another site made *before* the expiry revives the whole key;
/// the restart therefore hides the old key's entries only while no such touch exists, instead
/// of removing them for good (which made the write act as a delete: under delete-wins the
/// concurrent touch was discarded and the other fields vanished at every site).
///
/// A restart hides every entry ordered before it, by (timestamp, dot): the old key's data,
/// its expiry, and writes other sites made to the old key concurrently. It is *revived* when
/// the state holds an expiry entry ordered before it that keeps the key alive past the
/// restart's time (a touch or PERSIST the restarting site had not seen: every expiry it had
/// seen had passed, or it would not have restarted). A revived restart hides nothing and the
/// write counts as an ordinary write to the live key.
///
/// Whether a restart is revived is a function of the state alone, so every site holding the
/// same writes shows the same key. The hidden entries stay in the state until a write that
/// observes them (SET, DEL, a write of the same field) removes them, or the key is collected.
public struct KeyRestart: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var timestamp: HLCTimestamp
    public var dot: Dot

    public init(timestamp: HLCTimestamp, dot: Dot) {
        self.timestamp = timestamp
        self.dot = dot
    }

    public static func < (lhs: KeyRestart, rhs: KeyRestart) -> Bool {
        (lhs.timestamp, lhs.dot) < (rhs.timestamp, rhs.dot)
    }

    /// Whether `entry` is ordered before this restart: part of the key as it was before.
    func hides(_ entry: ElementEntry) -> Bool {
        (entry.timestamp, entry.dot) < (timestamp, dot)
    }

    /// Whether an expiry entry revives the key over this restart: written before it and
    /// keeping the key alive past it.
    func isRevived(by expiry: ElementEntry) -> Bool {
        guard hides(expiry) else { return false }
        switch expiry.payload {
        case .persist: return true
        case .expireAt(let at): return at > timestamp.physicalMilliseconds
        case .bytes, .present, .score: return false
        }
    }

    public var description: String { "restart \(dot) at \(timestamp)" }
}

extension KeyState {
    /// The restart in force: the latest one no touch revived. Entries ordered before it are
    /// hidden from reads. Nil (the common case) when the key never restarted or every restart
    /// was revived.
    public var restartInForce: KeyRestart? {
        guard summary.restartElements > 0, let entries = elements[.restart] else { return nil }
        let expiries = elements[.expiry] ?? []
        return entries.lazy
            .map { KeyRestart(timestamp: $0.timestamp, dot: $0.dot) }
            .filter { restart in !expiries.contains { restart.isRevived(by: $0) } }
            .max()
    }

    /// The key's restarts, oldest first.
    public var restarts: [KeyRestart] {
        guard let entries = elements[.restart] else { return [] }
        return entries.map { KeyRestart(timestamp: $0.timestamp, dot: $0.dot) }.sorted()
    }

    /// The entries of `element` a reader sees: those not hidden by the restart in force.
    func visibleEntries(of element: Element, after restart: KeyRestart?) -> [ElementEntry] {
        let entries = elements[element] ?? []
        guard let restart else { return entries }
        return entries.filter { !restart.hides($0) }
    }
}
