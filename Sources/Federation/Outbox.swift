import SessionModel

/// One stream of deltas towards one remote site: the deltas of one origin site's partition,
/// in order, numbered when they are cut into a batch.
public struct StreamID: Hashable, Comparable, Sendable {
    public var origin: SiteID
    public var partition: UInt32

    public init(origin: SiteID, partition: UInt32) {
        self.origin = origin
        self.partition = partition
    }

    public static func < (lhs: StreamID, rhs: StreamID) -> Bool {
        (lhs.origin, lhs.partition) < (rhs.origin, rhs.partition)
    }
}

/// The ordered outbox of one stream (DESIGN.md §4): deltas waiting for a batch, then deltas sent
/// and not yet acknowledged. Deltas are kept until the receiver acknowledges them, so a
/// reconnect resends exactly what may have been lost.
struct Outbox: Sendable {
    struct Entry: Sendable {
        var delta: Delta
        var bytes: Int
        var enqueuedAt: UInt64
        var sequence: UInt64 = 0
    }

    /// Waiting for the next batch; nil where a delta was folded into a later one.
    private(set) var pending: [Entry?] = []
    /// Pending positions per key, for coalescing.
    private var pendingByKey: [[UInt8]: [Int]] = [:]
    private(set) var pendingCount = 0
    private(set) var pendingBytes = 0
    /// Sent (or cut into a batch) and not yet acknowledged, in sequence order.
    private(set) var unacknowledged: [Entry] = []
    private(set) var unacknowledgedBytes = 0
    /// How many of `unacknowledged` went out on the current connection.
    private(set) var sentCount = 0
    private(set) var nextSequence: UInt64 = 1

    var bytes: Int { pendingBytes + unacknowledgedBytes }
    var count: Int { pendingCount + unacknowledged.count }
    /// Unacknowledged deltas wait to be sent again on this connection.
    var isResending: Bool { sentCount < unacknowledged.count }

    /// When the oldest delta still waiting for its acknowledgement was produced.
    var oldestEnqueuedAt: UInt64? {
        if let first = unacknowledged.first { return first.enqueuedAt }
        return pending.lazy.compactMap { $0?.enqueuedAt }.first
    }

    /// Appends a delta. A pending delta of the same key whose every dot the new delta
    /// supersedes is folded into it (its context joins the new one): a repeated touch or a
    /// rewrite of the same field travels once per batch (DESIGN.md §2.4). Returns how many
    /// deltas were folded and their estimated bytes.
    mutating func append(_ delta: Delta, now: UInt64) -> (folded: Int, bytes: Int) {
        var folded = 0
        var foldedBytes = 0
        var entry = Entry(delta: delta, bytes: Self.estimateBytes(delta), enqueuedAt: now)
        if let positions = pendingByKey[delta.key] {
            var kept: [Int] = []
            for position in positions {
                guard let earlier = pending[position] else { continue }
                if Self.supersedes(entry.delta, earlier.delta) {
                    entry.delta.context.formUnion(earlier.delta.context)
                    earlier.delta.insertDots(into: &entry.delta.context)
                    entry.delta.deletes.merge(earlier.delta.deletes)
                    entry.enqueuedAt = min(entry.enqueuedAt, earlier.enqueuedAt)
                    pending[position] = nil
                    pendingCount -= 1
                    pendingBytes -= earlier.bytes
                    folded += 1
                    foldedBytes += earlier.bytes
                } else {
                    kept.append(position)
                }
            }
            pendingByKey[delta.key] = kept
        }
        entry.bytes = Self.estimateBytes(entry.delta)
        pendingByKey[delta.key, default: []].append(pending.count)
        pending.append(entry)
        pendingCount += 1
        pendingBytes += entry.bytes
        return (folded, foldedBytes)
    }

    /// Whether `later` supersedes every element `earlier` stored (its context covers all of
    /// `earlier`'s dots), so sending `later` with `earlier`'s context joined in is the same as
    /// sending both.
    static func supersedes(_ later: Delta, _ earlier: Delta) -> Bool {
        // A delete is never folded: its dot must reach the receiver's delete vector as its own.
        guard later.key == earlier.key, !earlier.operations.contains(.deleteKey) else { return false }
        return later.context.contains(earlier.dots)
    }

    /// The next batch to send: unacknowledged deltas not yet sent on this connection first (a
    /// resend after a reconnect), else pending deltas, numbered now. At most `maximumBytes`
    /// (and always at least one delta). Nil when there is nothing to send.
    mutating func nextBatch(maximumBytes: Int) -> (firstSequence: UInt64, deltas: [Delta])? {
        if isResending {
            var deltas: [Delta] = []
            var bytes = 0
            let first = unacknowledged[sentCount].sequence
            while sentCount < unacknowledged.count, deltas.isEmpty || bytes + unacknowledged[sentCount].bytes <= maximumBytes {
                deltas.append(unacknowledged[sentCount].delta)
                bytes += unacknowledged[sentCount].bytes
                sentCount += 1
            }
            return (first, deltas)
        }
        guard pendingCount > 0 else { return nil }
        let first = nextSequence
        var deltas: [Delta] = []
        var bytes = 0
        var consumed = 0
        for slot in pending {
            if let entry = slot {
                if !deltas.isEmpty && bytes + entry.bytes > maximumBytes { break }
                var numbered = entry
                numbered.sequence = nextSequence
                nextSequence += 1
                unacknowledged.append(numbered)
                unacknowledgedBytes += entry.bytes
                pendingBytes -= entry.bytes
                pendingCount -= 1
                bytes += entry.bytes
                deltas.append(entry.delta)
            }
            consumed += 1
        }
        // Emptied, the storage goes too: a burst must not hold its memory for the link's life.
        if consumed == pending.count { pending = [] } else { pending.removeFirst(consumed) }
        pendingByKey = [:]
        for (position, slot) in pending.enumerated() {
            if let entry = slot { pendingByKey[entry.delta.key, default: []].append(position) }
        }
        sentCount = unacknowledged.count
        return (first, deltas)
    }

    /// The receiver applied everything up to `sequence`. Returns how many deltas that released.
    @discardableResult
    mutating func acknowledge(upTo sequence: UInt64) -> Int {
        let released = unacknowledged.prefix { $0.sequence <= sequence }
        guard !released.isEmpty else { return 0 }
        unacknowledgedBytes -= released.reduce(0) { $0 + $1.bytes }
        if released.count == unacknowledged.count { unacknowledged = [] } else { unacknowledged.removeFirst(released.count) }
        sentCount = max(0, sentCount - released.count)
        return released.count
    }

    /// The connection closed: whatever was sent and not acknowledged is sent again.
    mutating func rewind() {
        sentCount = 0
    }

    /// Drops everything (outbox overflow). Sequence numbers continue, so the receiver sees the
    /// gap. Returns how many deltas were dropped.
    mutating func dropAll() -> Int {
        let dropped = count
        pending = []
        pendingByKey = [:]
        pendingCount = 0
        pendingBytes = 0
        unacknowledged = []
        unacknowledgedBytes = 0
        sentCount = 0
        return dropped
    }

    /// A deterministic estimate of a delta's encoded size (the outbox bound and batch cap use
    /// it; exact sizes would need an encoding per delta).
    static func estimateBytes(_ delta: Delta) -> Int {
        var total = 24 + delta.key.count + (delta.context.vector.entries.count + delta.context.cloud.count + delta.deletes.entries.count) * 8
        for operation in delta.operations {
            switch operation {
            case .setString(let value): total += 4 + value.count
            case .setField(let field, let value): total += 6 + field.count + value.count
            case .removeField(let name), .addMember(let name), .removeMember(let name): total += 4 + name.count
            case .setScore(let member, _): total += 13 + member.count
            case .removeScoredMember(let member): total += 4 + member.count
            case .expire: total += 8
            case .persist, .deleteKey, .restartKey: total += 3
            }
        }
        return total
    }
}
