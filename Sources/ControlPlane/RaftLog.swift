/// The log of cluster-map changes a `RaftNode` replicates (etcd's `raftLog`): the entries
/// after the latest snapshot, and that snapshot (its last index and term, and the map it
/// holds). In memory only, like the rest of the node. The one place that knows how an
/// index maps into the entries, so the node never does index arithmetic of its own.
struct RaftLog: Sendable {
    private(set) var entries: [LogEntry] = []
    private(set) var snapshotIndex: UInt64 = 0
    private(set) var snapshotTerm: UInt64 = 0
    private(set) var snapshotMap: ClusterMap

    init(map: ClusterMap) {
        snapshotMap = map
    }

    var lastIndex: UInt64 { entries.last?.index ?? snapshotIndex }
    var lastTerm: UInt64 { entries.last?.term ?? snapshotTerm }
    /// Entries held after the snapshot.
    var count: Int { entries.count }

    /// The term of the entry at `index` (the snapshot's at its last index), or nil when the
    /// log does not hold it (compacted away, or beyond the end).
    func term(at index: UInt64) -> UInt64? {
        if index == snapshotIndex { return snapshotTerm }
        guard index > snapshotIndex, index <= lastIndex else { return nil }
        return entries[position(of: index)].term
    }

    /// The entry at `index`, which the log holds (after the snapshot, not beyond the end).
    func entry(at index: UInt64) -> LogEntry {
        entries[position(of: index)]
    }

    func position(of index: UInt64) -> Int {
        precondition(index > snapshotIndex && index <= lastIndex, "Invalid state: entry \(index) is not in the log (\(snapshotIndex)…\(lastIndex))")
        return Int(index - snapshotIndex - 1)
    }

    /// The entries after `index`, in order (an index before the snapshot gives them all).
    func entries(after index: UInt64) -> ArraySlice<LogEntry> {
        guard index < lastIndex else { return [] }
        return entries[Int(max(index, snapshotIndex) - snapshotIndex)...]
    }

    /// At most `limit` entries from `index` on (for one append message).
    func entries(from index: UInt64, limit: Int) -> [LogEntry] {
        let after = entries(after: index - 1)
        return Array(after.prefix(limit))
    }

    /// Raft's election restriction: a log ending at (`lastLogTerm`, `lastLogIndex`) is at least
    /// as up to date as this one.
    func candidateIsUpToDate(lastLogIndex: UInt64, lastLogTerm: UInt64) -> Bool {
        (lastLogTerm, lastLogIndex) >= (lastTerm, lastIndex)
    }

    /// Appends a new entry of `term` (the leader's).
    mutating func append(term: UInt64, command: ClusterCommand) {
        entries.append(LogEntry(index: lastIndex + 1, term: term, command: command))
    }

    /// Takes a leader's entries that follow a matching previous entry: an entry the log holds
    /// with the same term is kept; one with another term is dropped with everything after it
    /// (never a committed one: `committed`), then the leader's are appended.
    mutating func accept(_ leaderEntries: [LogEntry], committed: UInt64) {
        for entry in leaderEntries where entry.index > snapshotIndex {
            if let existing = term(at: entry.index) {
                if existing == entry.term { continue }
                precondition(entry.index > committed, "Invalid state: a leader overwrote committed entry \(entry.index)")
                entries.removeLast(Int(lastIndex - entry.index + 1))
            }
            precondition(entry.index == lastIndex + 1, "Invalid state: entry \(entry.index) does not follow \(lastIndex)")
            entries.append(entry)
        }
    }

    /// Drops the entries up to `index` (applied into `map`), which becomes the snapshot.
    mutating func compact(through index: UInt64, map: ClusterMap) {
        guard index > snapshotIndex else { return }
        let term = term(at: index)!
        entries.removeFirst(position(of: index) + 1)
        snapshotIndex = index
        snapshotTerm = term
        snapshotMap = map
    }

    /// A leader's snapshot: entries this log holds after it and of the same history are kept
    /// (it matched at its last index), anything else is dropped.
    mutating func install(snapshotIndex index: UInt64, term: UInt64, map: ClusterMap) {
        if self.term(at: index) == term {
            if index > snapshotIndex { entries.removeFirst(position(of: index) + 1) }
        } else {
            entries = []
        }
        snapshotIndex = index
        snapshotTerm = term
        snapshotMap = map
    }
}
