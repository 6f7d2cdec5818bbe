/// What `KeyState.collectTombstones` did or found.
public enum TombstoneCollection: Hashable, Sendable {
    /// Nothing to collect.
    case unchanged
    /// The key had been expired for longer than the grace period and every site has seen its
    /// whole context: its data and expiry were released; the compact tombstone remains.
    case releasedExpiredData
    /// The key holds no entries and every site has acknowledged its whole context and deletes.
    case stableTombstone
}

extension KeyState {
    /// Collects what §2.4 and §2.5 allow, given `stable`: a vector every site has acknowledged
    /// (the pointwise minimum of their acknowledged contexts for this key, acknowledgements
    /// travelling behind each site's own deltas so no write concurrent with a covered dot is
    /// still in flight).
    ///
    /// An expired key keeps its full state for `expiryGraceMilliseconds` after its expiry, so a
    /// touch from another site that happened before the expiry revives the whole session rather
    /// than a part of it. After the grace period its entries are released; the context stays, so
    /// none of them can come back, and a write made after that starts a new key.
    ///
    /// Removed hash fields and set members need no tombstone of their own: their dots stay in the
    /// context, which is a version vector plus out-of-order dots. What remains of a deleted or
    /// released key is that context and the delete vector (a few bytes per site). Dropping it
    /// altogether is reported as `.stableTombstone`; it needs a federation-wide agreement on
    /// when to drop (a site that drops it alone would accept a stale concurrent write), which
    /// the federation's collection rounds reach by comparing state digests instead
    /// (`Keyspace.collect`).
    public mutating func collectTombstones(
        stable: VersionVector,
        now: UInt64,
        expiryGraceMilliseconds: UInt64
    ) -> TombstoneCollection {
        guard context.isCovered(by: stable) else { return .unchanged }
        if !elements.isEmpty, isExpiredPastGrace(now: now, expiryGraceMilliseconds: expiryGraceMilliseconds) {
            self = KeyState(context: context, deletes: deletes, elements: [:])
            return .releasedExpiredData
        }
        if elements.isEmpty, stable.covers(deletes) {
            return .stableTombstone
        }
        return .unchanged
    }
}
