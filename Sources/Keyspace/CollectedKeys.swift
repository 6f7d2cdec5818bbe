import SessionModel

/// What a keyspace remembers of a key after federation-wide collection dropped it (DESIGN.md
/// §2.5): its context, for `collectionHorizonMilliseconds`. A key state still on its way when
/// the key was collected (sent by anti-entropy before the sites agreed) holds nothing but dots
/// of that context and is discarded rather than bringing the key back; a write made after the
/// collection carries dots the context never saw and starts the key again from nothing, as
/// at the site that made it (which may not remember the key: a write there starts afresh too).
struct CollectedKey: Sendable {
    var context: CausalContext
    var collectedAt: UInt64
}

extension KeyState {
    /// Whether every site agreeing on this state lets it go: a tombstone (no entries), or a
    /// key expired for longer than the grace period (a touch made before its expiry would
    /// have reached every site by then).
    public func isCollectable(now: UInt64, expiryGraceMilliseconds: UInt64) -> Bool {
        // Most keys a scan reads are live sessions with no expiry entry at all: they are
        // answered without working out the visible expiry (a few microseconds a key).
        elements.isEmpty || (elements[.expiry] != nil && isExpiredPastGrace(now: now, expiryGraceMilliseconds: expiryGraceMilliseconds))
    }
}

extension Keyspace {
    /// Keys that could be collected once every site holds the same state, with their digests:
    /// at most `limit`, found among at most about `scanBudget` keys read, partition after
    /// partition from where the previous call stopped (a call never reads the whole keyspace).
    /// With `partitioning`, only partitions in `partitions` (nil: all): those this node leads.
    public mutating func collectionCandidates(now: UInt64, limit: Int, scanBudget: Int, partitions: Set<UInt32>? = nil) -> [([UInt8], StateDigest)] {
        let grace = configuration.expiryGraceMilliseconds
        var found: [([UInt8], StateDigest)] = []
        func check(_ candidates: some Sequence<[UInt8]>) {
            for key in candidates where found.count < limit {
                guard let index = keys.index(forKey: key), keys.values[index].state.isCollectable(now: now, expiryGraceMilliseconds: grace) else { continue }
                found.append((key, digest(at: index)))
            }
        }
        guard !partitionKeys.isEmpty else {
            check(Array(keys.keys))
            return found
        }
        // Keys are read from a copy of one partition's key list at a time, `scanBudget` of them
        // per call whatever the partition's size (working out a session's expiry takes a few
        // microseconds: a partition of a large keyspace read at once held the loop for 30 ms).
        var scanned = 0
        var partitionsStarted = 0
        while scanned < scanBudget {
            if collectionScanHead == collectionScanKeys.count {
                guard partitionsStarted < partitionKeys.count else { break }
                partitionsStarted += 1
                let partition = collectionCursor
                collectionCursor = (collectionCursor + 1) % partitionKeys.count
                collectionScanKeys = (partitions?.contains(UInt32(partition)) ?? true) ? Array(partitionKeys[partition]) : []
                collectionScanHead = 0
                continue
            }
            let slice = collectionScanKeys[collectionScanHead..<min(collectionScanKeys.count, collectionScanHead + scanBudget - scanned)]
            collectionScanHead += slice.count
            scanned += slice.count
            check(slice)
            // Read to the end: the copy goes, so it keeps no dropped key's memory.
            if collectionScanHead == collectionScanKeys.count {
                collectionScanKeys = []
                collectionScanHead = 0
            }
        }
        return found
    }

    /// Drops `key` if its state still has `digest` (every site agreed on that state) and
    /// remembers its tombstone until `forgetCollected`. False when the key changed meanwhile.
    @discardableResult
    public mutating func collect(_ key: [UInt8], digest: StateDigest, now: UInt64) -> Bool {
        guard let index = keys.index(forKey: key), self.digest(at: index) == digest else { return false }
        guard keys.values[index].state.isCollectable(now: now, expiryGraceMilliseconds: configuration.expiryGraceMilliseconds) else { return false }
        dropCollected(key, now: now)
        return true
    }

    /// Drops `key` as its partition's primary collected it (a backup follows the primary's
    /// decision, whatever its own clock says) and remembers its tombstone as the primary does.
    public mutating func dropCollected(_ key: [UInt8], now: UInt64) {
        guard let state = keys[key]?.state else { return }
        release(key)
        collected[key] = CollectedKey(context: state.context, collectedAt: now)
        collectedOrder.append((now, key))
        statistics.keysCollected += 1
    }

    /// Forgets the tombstones of keys collected before `horizon`: by then nothing sent before
    /// their collection can still be on its way.
    public mutating func forgetCollected(before horizon: UInt64) {
        // Oldest first: a call costs what it forgets, not what is remembered.
        while collectedOrderHead < collectedOrder.count, collectedOrder[collectedOrderHead].at < horizon {
            let key = collectedOrder[collectedOrderHead].key
            if collected[key]?.collectedAt == collectedOrder[collectedOrderHead].at { collected[key] = nil }
            collectedOrderHead += 1
        }
        if collectedOrderHead > 1_024 && collectedOrderHead * 2 > collectedOrder.count {
            collectedOrder.removeFirst(collectedOrderHead)
            collectedOrderHead = 0
        }
    }

    public func wasCollected(_ key: [UInt8]) -> Bool {
        keys[key] == nil && collected[key] != nil
    }

    /// Keys collected and still remembered.
    public var collectedKeyCount: Int { collected.count }
}
