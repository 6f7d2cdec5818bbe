import RESP
import SessionModel

/// What one data command did: the reply, the deltas to replicate and the keyspace events
/// to publish (in this order: replicate, then answer, then notify).
public struct CommandResult: Sendable {
    public var reply: RESPValue
    public var deltas: [Delta]
    public var events: [KeyspaceEvent]

    public init(reply: RESPValue, deltas: [Delta] = [], events: [KeyspaceEvent] = []) {
        self.reply = reply
        self.deltas = deltas
        self.events = events
    }
}

/// Settings of a keyspace.
public struct KeyspaceConfiguration: Sendable {
    /// This node's site: its slot in every version vector.
    public var site: SiteID
    /// Each key's merge policy (the topology's `policies:` over its defaults).
    public var policies: KeyPolicies
    /// Keep deleted keys as tombstones (needed when other sites may still send writes
    /// concurrent with a delete). A single-site node drops them at once.
    public var retainTombstones: Bool
    /// How long an expired key's state is kept so a delayed touch can revive it (§2.4).
    public var expiryGraceMilliseconds: UInt64
    /// `maxmemory` in bytes of estimated data; 0 means no limit.
    public var maximumMemoryBytes: Int
    /// Set on a node that shares its site with others: the keyspace then indexes its keys by
    /// partition (a partition is copied, discarded and expired as a unit) and records the
    /// keys its expiry released, for the partition's backups.
    public var partitioning: Partitioning?
    /// Leaves per partition of the Merkle forest the keyspace keeps current (needs
    /// `partitioning`; nil: none kept, anti-entropy computes them from every key).
    public var merkleLeafCount: Int?

    public init(
        site: SiteID,
        policy: MergePolicy = .default,
        rules: [KeyPolicies.Rule] = [],
        retainTombstones: Bool = false,
        expiryGraceMilliseconds: UInt64 = 60_000,
        maximumMemoryBytes: Int = 0,
        partitioning: Partitioning? = nil,
        merkleLeafCount: Int? = nil
    ) {
        self.site = site
        self.policies = KeyPolicies(defaultPolicy: policy, rules: rules)
        self.retainTombstones = retainTombstones
        self.expiryGraceMilliseconds = expiryGraceMilliseconds
        self.maximumMemoryBytes = maximumMemoryBytes
        self.partitioning = partitioning
        self.merkleLeafCount = merkleLeafCount
    }
}

/// Counters the keyspace keeps for INFO and /metrics.
public struct KeyspaceStatistics: Hashable, Sendable {
    public var expiredKeys: UInt64 = 0
    public var keyspaceHits: UInt64 = 0
    public var keyspaceMisses: UInt64 = 0
    /// Keys that came into existence (a write to a missing key).
    public var keysCreated: UInt64 = 0
    /// Keys removed by DEL, UNLINK, RENAME, FLUSH or expiry.
    public var keysDestroyed: UInt64 = 0
    public var rejectedForMemory: UInt64 = 0
    /// Tombstones and expired keys dropped by federation-wide collection.
    public var keysCollected: UInt64 = 0
}

/// The data of one node: every key's replicated state, Redis command semantics on top of
/// SessionModel, lazy and active expiry, and memory accounting. Pure: time comes in as `now`
/// (milliseconds since the Unix epoch), effects go out in `CommandResult`.
public struct Keyspace: Sendable {
    public var configuration: KeyspaceConfiguration
    var keys: [[UInt8]: StoredKey] = [:]
    var clock = HybridLogicalClock()
    var expiryQueue = ExpiryQueue()
    var revisionCounter: UInt64 = 0
    public internal(set) var usedMemoryBytes = 0
    public internal(set) var statistics = KeyspaceStatistics()
    /// With `partitioning`: the stored keys of each partition.
    var partitionKeys: [Set<[UInt8]>]
    /// With `partitioning`: keys expiry released since the last `drainReleasedByExpiry`.
    var releasedByExpiry: [[UInt8]] = []
    /// When this node's life as the writer of its keys began (nil: no write yet), per partition
    /// with `partitioning`, which starts again whenever this node becomes a partition's
    /// primary. Set at the first write: any moment after the previous life ended will do, and
    /// a pure keyspace has no clock of its own (see `KeyState.write`'s `lifeStart`).
    var lifeStarts: [Int: UInt64] = [:]
    /// With `merkleLeafCount`: the Merkle leaves kept current.
    var merkle: KeptMerkleLeaves?
    /// Keys collected federation-wide, remembered for a while (`CollectedKey`).
    var collected: [[UInt8]: CollectedKey] = [:]
    /// Keys in the order they were collected, from `collectedOrderHead` on, for forgetting.
    var collectedOrder: [(at: UInt64, key: [UInt8])] = []
    var collectedOrderHead = 0
    /// The partition the next search for collection candidates starts at, and the keys of the
    /// partition being searched (from `collectionScanHead` on).
    var collectionCursor = 0
    var collectionScanKeys: [[UInt8]] = []
    var collectionScanHead = 0

    public init(configuration: KeyspaceConfiguration) {
        self.configuration = configuration
        partitionKeys = Array(repeating: [], count: configuration.partitioning?.partitionCount ?? 0)
        if let partitioning = configuration.partitioning, let leafCount = configuration.merkleLeafCount {
            merkle = KeptMerkleLeaves(layout: MerkleLayout(partitioning: partitioning, leafCount: leafCount))
        }
    }

    func policy(for key: [UInt8]) -> MergePolicy { configuration.policies.policy(for: DatabaseKeys.unscoped(key)) }
    func conflict(for key: [UInt8]) -> ConflictPolicy { policy(for: key).conflict }

    // MARK: Reading

    /// The visible value of `key`, with lazy expiry: an expired key fires its `expired` event
    /// (once) into `events`.
    /// Reads go through `keys.values[index]` rather than `keys[key]`: the latter copies the
    /// stored key (a retain and release of each of its buffers) on every read.
    mutating func lookup(_ key: [UInt8], now: UInt64, events: inout [KeyspaceEvent]) -> KeyValue? {
        guard let index = keys.index(forKey: key) else { return nil }
        if reading(at: index, { $0.isExpired(now: now) }) {
            expire(key, now: now, events: &events)
            return nil
        }
        let policy = conflict(for: key)
        return reading(at: index) { $0.value(now: now, policy: policy) }
    }

    /// Reads the state of the key at `index` where it lies. Read through the table's getter
    /// (`keys.values[index].state`), the whole stored key is copied first: a retain and a
    /// release of each of its buffers, on every GET and SET. A mutating access goes through
    /// the table's in-place accessor and copies nothing.
    mutating func reading<T>(at index: KeyIndex, _ body: (KeyState) -> T) -> T {
        keys.values[index].reading(body)
    }

    /// The visible type, with lazy expiry.
    mutating func type(of key: [UInt8], now: UInt64, events: inout [KeyspaceEvent]) -> KeyType? {
        located(key, now: now, events: &events).type
    }

    /// A key's place in the table.
    typealias KeyIndex = Dictionary<[UInt8], StoredKey>.Index

    /// The visible type, with lazy expiry, and where the key lies in the table (nil when it is
    /// not there or its expiry just released it) for a write that follows.
    mutating func located(_ key: [UInt8], now: UInt64, events: inout [KeyspaceEvent]) -> (type: KeyType?, index: KeyIndex?) {
        guard let index = keys.index(forKey: key) else { return (nil, nil) }
        if reading(at: index, { $0.isExpired(now: now) }) {
            expire(key, now: now, events: &events)
            return (nil, keys.index(forKey: key))
        }
        let policy = conflict(for: key)
        return (reading(at: index) { $0.visibleType(policy: policy) }, index)
    }

    /// The replicated state of `key`, tombstones and expired state included.
    public func state(of key: [UInt8]) -> KeyState? {
        keys[key]?.state
    }

    /// Calls `body` with every stored key and the digest of its state (anti-entropy), computing
    /// the digests of keys changed since the last call.
    public mutating func forEachDigest(_ body: ([UInt8], StateDigest) -> Void) {
        for index in keys.indices { body(keys.keys[index], digest(at: index)) }
    }

    /// The digest of the key at `index`, computed once per change.
    mutating func digest(at index: Dictionary<[UInt8], StoredKey>.Index) -> StateDigest {
        if let cached = keys.values[index].digest { return cached }
        let digest = keys.values[index].state.digest
        keys.values[index].digest = digest
        return digest
    }

    /// Like `forEachDigest`, for the keys of `partitions` alone: through the index by
    /// partition when the keyspace keeps one by the same partitioning.
    public mutating func forEachDigest(inPartitions partitions: Set<Int>, of partitioning: Partitioning, _ body: ([UInt8], StateDigest) -> Void) {
        guard configuration.partitioning == partitioning else {
            forEachDigest { key, digest in
                if partitions.contains(partitioning.partition(of: key)) { body(key, digest) }
            }
            return
        }
        for partition in partitions.sorted() where partition < partitionKeys.count {
            for key in partitionKeys[partition] {
                guard let index = keys.index(forKey: key) else { continue }
                body(key, digest(at: index))
            }
        }
    }

    /// The WATCH revision of a key (0 for a key never written).
    public func revision(of key: [UInt8], now: UInt64) -> UInt64 {
        guard let stored = keys[key] else { return 0 }
        // An expiry that happened since is a change too, as in Redis.
        if stored.state.isExpired(now: now) && stored.announcedExpiry == nil { return stored.revision &+ 1 }
        return stored.revision
    }

    /// What WATCH compares on a site of several nodes: the same on every copy of the key (a
    /// revision counts the changes of one copy only), and changed by any write and by the
    /// key's expiry, as in Redis. Nil: the key was never stored.
    public struct WatchVersion: Hashable, Sendable {
        public var digest: StateDigest
        public var expired: Bool
    }

    public func watchVersion(of key: [UInt8], now: UInt64) -> WatchVersion? {
        guard let stored = keys[key] else { return nil }
        return WatchVersion(digest: stored.digest ?? stored.state.digest, expired: stored.state.isExpired(now: now))
    }

    /// Number of visible keys (DBSIZE).
    public func count(now: UInt64) -> Int {
        keys.count { isVisible($0.value.state, key: $0.key, now: now) }
    }

    /// Visible keys of one database (DBSIZE).
    public func count(now: UInt64, database: Int) -> Int {
        keys.count { DatabaseKeys.database(of: $0.key) == database && isVisible($0.value.state, key: $0.key, now: now) }
    }

    /// Visible keys and those with an expiry, by database (INFO keyspace's `dbN:` lines).
    public func countsByDatabase(now: UInt64) -> [Int: (keys: Int, expires: Int)] {
        var counts: [Int: (keys: Int, expires: Int)] = [:]
        for (key, stored) in keys where isVisible(stored.state, key: key, now: now) {
            guard let database = DatabaseKeys.database(of: key) else { continue }
            counts[database, default: (0, 0)].keys += 1
            if stored.state.expireAt != nil { counts[database, default: (0, 0)].expires += 1 }
        }
        return counts
    }

    /// Visible keys with an expiry (INFO keyspace `expires=`).
    public func countWithExpiry(now: UInt64) -> Int {
        keys.count { $0.value.state.expireAt != nil && isVisible($0.value.state, key: $0.key, now: now) }
    }

    /// Keys held, including tombstones and expired state within its grace period.
    public var storedKeyCount: Int { keys.count }

    // MARK: Writing

    /// When the current life of `key`'s copy began, starting it at `now` if none has.
    mutating func lifeStart(of key: [UInt8], now: UInt64) -> UInt64 {
        let life = configuration.partitioning?.partition(of: key) ?? 0
        if let start = lifeStarts[life] { return start }
        lifeStarts[life] = now
        return now
    }

    /// Applies a local write and returns its delta (nil when it changed nothing).
    /// `found`: the key's place in the table, from a lookup with no change to the table since.
    mutating func write(_ key: [UInt8], _ write: KeyWrite, now: UInt64, at found: KeyIndex? = nil) -> Delta? {
        let timestamp = clock.tick(physicalMilliseconds: now)
        let lifeStart = lifeStart(of: key, now: now)
        let policy = policy(for: key), site = configuration.site
        // The delta is moved, never copied, on its way out: a copy retains each of its
        // buffers (a few percent of a SET).
        var delta: Delta?
        func body(_ state: inout KeyState) -> Bool {
            guard let written = state.write(write, key: key, site: site, timestamp: timestamp, now: now, policy: policy, lifeStart: lifeStart) else {
                return false
            }
            delta = consume written
            return true
        }
        let change: Change
        if let found {
            assert(keys.keys[found] == key, "a stale index for the key")
            change = Self.change(&keys.values[found], key: key, revision: revisionCounter + 1, now: now, body)
        } else {
            change = Self.change(&keys[key, default: StoredKey(isNew: true)], key: key, revision: revisionCounter + 1, now: now, body)
        }
        if change.changed && !collected.isEmpty { collected[key] = nil }
        settle(key, change)
        return delta.take()
    }

    /// Merges a delta from another site (used by federation and by tests). A backup applies
    /// every write of its primary this way. The delta is joined where it lands
    /// (`KeyState.merge(_:policy:)` visits only the elements it names).
    public mutating func merge(_ delta: Delta, now: UInt64) -> MergeOutcome {
        // A timestamp too far ahead is refused by the clock, but the delta still merges: the
        // lattice join does not depend on clocks, only on dots.
        _ = try? clock.receive(delta.timestamp, physicalMilliseconds: now)
        return join(key: delta.key, now: now, isPast: { $0.contains(delta.dots) }) {
            $0.merge(delta, policy: $1)
        }
    }

    /// Merges another site's full state of `key` (anti-entropy repair).
    public mutating func merge(state other: KeyState, key: [UInt8], now: UInt64) -> MergeOutcome {
        // The clock moves past every write the state shows, as for a delta (whose entries all
        // carry its timestamp): a later write here must be ordered after what it observed (a
        // restart hides what is ordered before it).
        if let latest = other.elements.values.lazy.flatMap({ $0 }).map(\.timestamp).max() {
            _ = try? clock.receive(latest, physicalMilliseconds: now)
        }
        return join(key: key, now: now, isPast: other.context.isSubset(of:)) {
            $0.merge(other, policy: $1)
        }
    }

    /// The join of a remote write or state into `key`, the clock already past its writes.
    /// `isPast`: whether every dot of what arrives is in a collected key's tombstone (its
    /// context). Dots, not elements, tell the key's past from a later write: a delete stores
    /// no element. `body` joins it into the key's state under the key's policy.
    mutating func join(
        key: [UInt8], now: UInt64, isPast: (CausalContext) -> Bool, _ body: (inout KeyState, MergePolicy) -> MergeOutcome
    ) -> MergeOutcome {
        if !collected.isEmpty, keys[key] == nil, let tombstone = collected[key] {
            // Only the collected key's past (sent before every site agreed to drop it): it stays
            // collected. Anything else was written after the collection, by a site that may not
            // remember the key: the key starts again from nothing, as it did there.
            guard !isPast(tombstone.context) else {
                return MergeOutcome(changed: false, events: [])
            }
            collected[key] = nil
        }
        let policy = policy(for: key)
        var outcome = MergeOutcome(changed: false, events: [])
        let change = Self.change(&keys[key, default: StoredKey(isNew: true)], key: key, revision: revisionCounter + 1, now: now) { state in
            outcome = body(&state, policy)
            return outcome.changed
        }
        settle(key, change)
        return outcome
    }

    /// Counts a key coming into existence or going away.
    mutating func countLiveness(existed: Bool, exists: Bool) {
        if !existed && exists { statistics.keysCreated += 1 }
        if existed && !exists { statistics.keysDestroyed += 1 }
    }

    /// What changing a stored key did, for `settle` to account for.
    struct Change {
        var changed: Bool
        var existed: Bool
        var exists: Bool
        /// The key was not stored before (it was inserted for the change).
        var isNew: Bool
        var isEmpty: Bool
        var contributionMissing: Bool
        var bytesBefore: Int
        var bytesAfter: Int
        var expireAt: UInt64?
    }

    /// Changes a key's state where it lies in the table: the caller passes
    /// `&keys[key, default: StoredKey(isNew: true)]`, so the key is hashed once. Taking the key
    /// out of the table and putting it back cost a third of a SET (a deletion moves its
    /// neighbours and hashes them again). Static: nothing else of the keyspace may be touched
    /// while the table is being changed; `settle` does the rest.
    static func change(_ stored: inout StoredKey, key: [UInt8], revision: UInt64, now: UInt64, _ body: (inout KeyState) -> Bool) -> Change {
        let existed = stored.state.isLive(now: now)
        let changed = body(&stored.state)
        if changed {
            stored.digest = nil
            stored.revision = revision
            if let at = stored.state.expireAt {
                if stored.announcedExpiry != at { stored.announcedExpiry = nil }
            } else {
                stored.announcedExpiry = nil
            }
        }
        let isNew = stored.isNew
        stored.isNew = false
        let bytesBefore = stored.estimatedBytes
        stored.estimatedBytes = estimateBytes(key: key, state: stored.state)
        return Change(
            changed: changed, existed: existed, exists: changed ? stored.state.isLive(now: now) : existed, isNew: isNew,
            isEmpty: stored.state.isEmpty, contributionMissing: stored.contribution == nil, bytesBefore: bytesBefore,
            bytesAfter: stored.estimatedBytes, expireAt: changed ? stored.state.expireAt : nil
        )
    }

    /// The rest of a `change`: liveness counts, revision, memory, expiry queue, Merkle leaves,
    /// the partition index, and the tombstone policy.
    mutating func settle(_ key: [UInt8], _ change: Change) {
        usedMemoryBytes += change.bytesAfter - change.bytesBefore
        if change.changed {
            countLiveness(existed: change.existed, exists: change.exists)
            revisionCounter += 1
            if let at = change.expireAt { expiryQueue.insert(key, at: at) }
        }
        if change.isEmpty && !configuration.retainTombstones {
            release(key)
            return
        }
        if change.changed || change.contributionMissing { merkle?.markDirty(key) }
        if change.isNew, let partitioning = configuration.partitioning { partitionKeys[partitioning.partition(of: key)].insert(key) }
    }

    /// Puts back a key taken out of the table for a change of two keys at once (RENAME).
    mutating func store(_ key: [UInt8], _ stored: StoredKey, changed: Bool) {
        var stored = stored
        stored.isNew = true
        // Liveness is the caller's to count: the body changes nothing, so `settle` counts none.
        let change = Self.change(&stored, key: key, revision: revisionCounter + 1, now: 0) { _ in changed }
        keys[key] = stored
        settle(key, change)
    }

    /// Handles a key found expired: announces it once; a single-site node drops it at once,
    /// a federated one keeps its state for the grace period (§2.4).
    mutating func expire(_ key: [UInt8], now: UInt64, events: inout [KeyspaceEvent]) {
        guard var stored = keys[key], let at = stored.state.expireAt, stored.state.isExpired(now: now) else { return }
        if stored.announcedExpiry != at {
            stored.announcedExpiry = at
            if stored.state.visibleType(policy: conflict(for: key)) != nil {
                statistics.expiredKeys += 1
                statistics.keysDestroyed += 1
                events.append(KeyspaceEvent("expired", key: key, eventClass: .expired))
            }
            revisionCounter += 1
            stored.revision = revisionCounter
        }
        if !configuration.retainTombstones {
            release(key)
            if configuration.partitioning != nil { releasedByExpiry.append(key) }
        } else {
            keys[key] = stored
        }
    }

    /// Drops a key's state outright.
    mutating func release(_ key: [UInt8]) {
        guard let stored = keys.removeValue(forKey: key) else { return }
        merkle?.remove(key, contribution: stored.contribution)
        usedMemoryBytes -= stored.estimatedBytes
        if let partitioning = configuration.partitioning { partitionKeys[partitioning.partition(of: key)].remove(key) }
    }

    // MARK: Partitions (a node sharing its site with others)

    /// The keys of `partition` stored now (tombstones included), for a state transfer.
    public func keys(inPartition partition: Int) -> [[UInt8]] {
        Array(partitionKeys[partition])
    }

    /// Drops every key of `partition`: this node no longer holds a copy of it, or starts a
    /// fresh one.
    public mutating func discard(partition: Int) {
        for key in partitionKeys[partition] {
            if let stored = keys.removeValue(forKey: key) { usedMemoryBytes -= stored.estimatedBytes }
        }
        partitionKeys[partition] = []
        merkle?.clear(partition: partition)
    }

    /// The keys expiry released since the last call (their partitions' backups drop them too).
    public mutating func drainReleasedByExpiry() -> [[UInt8]] {
        defer { releasedByExpiry = [] }
        return releasedByExpiry
    }

    /// A backup's copy of what its primary's expiry did: releases the key whatever this
    /// node's clock says (inside a site only the primary decides expiry).
    public mutating func releaseExpired(_ key: [UInt8]) {
        release(key)
    }

    /// Puts every key of `partition` with an expiry back in the expiry queue: this node has
    /// just become its primary, and as a backup it skipped their expiry. A new life as the
    /// partition's writer begins: its copy may lack writes a primary before it issued.
    public mutating func scheduleExpiries(ofPartition partition: Int) {
        lifeStarts[partition] = nil
        for key in partitionKeys[partition] {
            if let at = keys[key]?.state.expireAt { expiryQueue.insert(key, at: at) }
        }
    }

    /// Whether the active sweep expires a due key of a partition now.
    public enum ExpiryTurn: Sendable {
        /// This node is the partition's acting primary: expire the key.
        case now
        /// This node is the partition's primary but cannot act this moment (its lease lapsed,
        /// or a handover seals the copy): the key stays queued for a later sweep, because no
        /// promotion will put it back.
        case later
        /// Another node expires it: the key leaves the queue (`scheduleExpiries` puts it back
        /// if this node becomes the partition's primary).
        case never
    }

    /// The active expiry cycle: handles at most `budget` due keys, so one tick's work is bounded.
    /// Returns the `expired` events.
    /// `expires`: whose turn a due key of each partition is (only partitioned keyspaces ask).
    public mutating func sweepExpired(now: UInt64, budget: Int, expires: (Int) -> ExpiryTurn = { _ in .now }) -> [KeyspaceEvent] {
        var events: [KeyspaceEvent] = []
        var deferred: [(at: UInt64, key: [UInt8])] = []
        var handled = 0
        while handled < budget, let due = expiryQueue.popDue(now: now) {
            handled += 1
            guard let stored = keys[due.key], stored.state.expireAt == due.at else { continue }
            if let partitioning = configuration.partitioning {
                switch expires(partitioning.partition(of: due.key)) {
                case .now: break
                case .later:
                    deferred.append(due)
                    continue
                case .never: continue
                }
            }
            expire(due.key, now: now, events: &events)
        }
        // Put back after the loop: re-inserted at once, a due key would be popped again in
        // this same cycle.
        for entry in deferred { expiryQueue.insert(entry.key, at: entry.at) }
        return events
    }

    /// Whether a command that may grow memory must be refused (`maxmemory`, noeviction).
    public var isOverMemoryLimit: Bool {
        configuration.maximumMemoryBytes > 0 && usedMemoryBytes > configuration.maximumMemoryBytes
    }

    /// A deterministic estimate of the bytes a key occupies: its name, values and metadata,
    /// with the per-allocation overheads of Swift arrays and dictionaries. O(1): the elements'
    /// share is kept as they change (`ElementSummary`).
    public static func estimateBytes(key: [UInt8], state: KeyState) -> Int {
        96 + key.count + state.context.vector.entries.count * 16 + state.context.cloud.count * 24 + state.deletes.entries.count * 16
            + state.summary.bytes
    }
}

