/// How concurrent writes to one element are decided (§2.3 rule 3).
public enum ConflictPolicy: Hashable, Sendable {
    /// Higher HLC timestamp wins; equal timestamps are ordered by site id (higher wins).
    case lastWriterWins
    /// The site listed first wins; sites not listed rank after the listed ones; equal rank falls
    /// back to last-writer-wins.
    case sitePriority([SiteID])

    /// Whether `candidate` beats `incumbent`. A strict total order on entries with distinct dots.
    public func prefers(_ candidate: ElementEntry, over incumbent: ElementEntry) -> Bool {
        if case .sitePriority(let order) = self {
            let candidateRank = order.firstIndex(of: candidate.dot.site) ?? order.count
            let incumbentRank = order.firstIndex(of: incumbent.dot.site) ?? order.count
            if candidateRank != incumbentRank { return candidateRank < incumbentRank }
        }
        return (candidate.timestamp, candidate.dot) > (incumbent.timestamp, incumbent.dot)
    }

    /// The visible entry among concurrent survivors.
    public func winner(of entries: [ElementEntry]) -> ElementEntry? {
        entries.reduce(nil) { best, entry in
            guard let best else { return entry }
            return prefers(entry, over: best) ? entry : best
        }
    }
}

/// What a delete does to writes concurrent with it (§2.3 rule 7).
public enum DeletePolicy: String, Hashable, Sendable {
    /// A write concurrent with a delete of its key is discarded: a logout anywhere is a logout
    /// everywhere. Only writes that saw the delete create a new incarnation.
    case deleteWins = "delete-wins"
    /// A delete removes what its writer saw; concurrent writes survive (the key may then hold
    /// only the fields written concurrently).
    case updateWins = "update-wins"
}

/// The policies a merge applies to one key (resolved from the topology's per-pattern policies).
public struct MergePolicy: Hashable, Sendable {
    public var conflict: ConflictPolicy
    public var delete: DeletePolicy

    public init(conflict: ConflictPolicy = .lastWriterWins, delete: DeletePolicy = .deleteWins) {
        self.conflict = conflict
        self.delete = delete
    }

    public static let `default` = MergePolicy()
}

/// A concurrent-write resolution the merge made, reported so callers can count and log it
/// with both dots.
public enum MergeEvent: Hashable, Sendable {
    /// Writes to one element were concurrent; both are kept and `winner` is the visible one.
    case concurrentWrites(element: Element, winner: Dot, loser: Dot)
    /// A write concurrent with a delete of its key was discarded (delete-wins).
    case discardedByDelete(element: Element, discarded: Dot, deletes: VersionVector)
}

/// The result of merging a delta or a full state into a key.
public struct MergeOutcome: Hashable, Sendable {
    /// False when everything merged was already known (a duplicate or a stale delta).
    public var changed: Bool
    public var events: [MergeEvent]

    public init(changed: Bool, events: [MergeEvent]) {
        self.changed = changed
        self.events = events
    }
}
