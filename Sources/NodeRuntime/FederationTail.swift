import Federation
import SessionModel

/// What a backup keeps so that its promotion resumes the old primary's shipping to the other
/// sites (DESIGN.md §4: "the sender keeps unacknowledged deltas, replicated to its
/// backups"). A primary ships a write's deltas after its backups hold them, and dies with
/// the deltas it had not shipped or not seen acknowledged; the backup keeps the deltas of
/// this site's own writes it applied for `retentionMilliseconds` and, when promoted, ships
/// them again. Repeats are harmless: a site merges a delta it holds as a no-op.
///
/// Bounded by time and count, not by the other sites' acknowledgements (the backup does not
/// see them): a failover while a link lags by more than the retention loses the older
/// unshipped deltas for that site, and says so in the log.
struct FederationTail {
    static let retentionMilliseconds: UInt64 = 30_000
    /// Writes kept per partition: 200,000 over all partitions (about 40 MB of session writes).
    let maximumWrites: Int

    init(partitionCount: Int) {
        maximumWrites = max(256, 200_000 / max(1, partitionCount))
    }

    /// Per partition, in the order applied: when, and the local-origin deltas.
    private(set) var writes: [Int: [(at: UInt64, deltas: [Delta])]] = [:]
    private(set) var dropped: UInt64 = 0
    private(set) var deltaCount = 0

    /// A write this node applied as backup of `partition`; only deltas of `site`'s own
    /// writes are kept (merged remote writes are shipped by their own site).
    mutating func applied(_ deltas: [Delta], partition: Int, site: SiteID, now: UInt64) {
        let own = deltas.filter { $0.dot.site == site }
        guard !own.isEmpty else { return }
        writes[partition, default: []].append((now, own))
        deltaCount += own.count
        trim(partition, now: now)
    }

    mutating func trim(_ partition: Int, now: UInt64) {
        guard var kept = writes[partition] else { return }
        let expired = kept.prefix { $0.at + Self.retentionMilliseconds < now }.count
        let over = max(0, kept.count - expired - maximumWrites)
        guard expired + over > 0 else { return }
        deltaCount -= kept.prefix(expired + over).reduce(0) { $0 + $1.deltas.count }
        kept.removeFirst(expired + over)
        dropped += UInt64(over)
        writes[partition] = kept.isEmpty ? nil : kept
    }

    mutating func trimAll(now: UInt64) {
        for partition in Array(writes.keys) { trim(partition, now: now) }
    }

    /// The copy is gone (dropped, or restarted by a transfer): nothing of it to ship.
    mutating func forget(_ partition: Int) {
        _ = takeOver(partition)
    }

    /// Promoted: every delta kept, oldest first, to ship again.
    mutating func takeOver(_ partition: Int) -> [Delta] {
        let deltas = writes.removeValue(forKey: partition)?.flatMap(\.deltas) ?? []
        deltaCount -= deltas.count
        return deltas
    }
}
