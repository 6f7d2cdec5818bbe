import Keyspace
import SessionModel

/// Federation-wide collection of tombstones and long-expired keys (DESIGN.md §2.5; without
/// it every session ever created stays in memory in a federation). A node linked with every
/// other site (each node of a mesh, the hub of a hub) proposes candidates of the partitions
/// it leads with their state digests; every site answers with those it holds in exactly
/// that state with no delta of them still unacknowledged on any of its links; keys every
/// site agreed on are dropped at every site. Equal states everywhere and nothing in flight
/// mean no write the key has not seen exists anywhere, so nothing can bring it back; the
/// tombstone stays remembered for `collectionHorizonMilliseconds` against states
/// anti-entropy had already sent.
///
/// In a site of several nodes each partition's primary answers for its keys and drops them
/// (`FederationAction.collectAtPrimary`), replicating the drop to its backups like a write:
/// the copies of a partition stay equal, and the primary's outboxes are the ones that hold
/// the partition's deltas in flight.
struct CollectionState: Sendable {
    struct Round: Sendable {
        var id: UInt64
        var startedAt: UInt64
        var keys: [[UInt8]: StateDigest]
        /// Per linked site, the partitions of the proposal it has not voted on yet.
        var awaiting: [SiteID: Set<UInt32>]
        /// Keys some site did not agree to drop.
        var refused: Set<[UInt8]> = []
    }

    var round: Round?
    /// Candidates found so far for the next round, a slice of the keyspace per tick.
    var gathered: [([UInt8], StateDigest)] = []
    var gatheringSteps = 0
    var nextRound: UInt64 = 1
    var lastRoundAt: UInt64?
    var keysAgreed: UInt64 = 0
    var rounds: UInt64 = 0
}

/// Keys every site agreed to drop, for the primary of their partition (a site of several
/// nodes).
public struct CollectionAtPrimary: Hashable, Sendable {
    public var partition: UInt32
    public var keys: [KeyDigest]

    public init(partition: UInt32, keys: [KeyDigest]) {
        self.partition = partition
        self.keys = keys
    }
}

/// What /status shows of collection.
public struct CollectionStatus: Hashable, Sendable, Codable {
    /// Whether this node proposes collection rounds.
    public var collects: Bool
    /// Why not, or what holds it back now (empty when collecting).
    public var reason: String
    /// Linked sites that block collection now (disconnected or never synchronised).
    public var blockedBy: [String]
    public var rounds: UInt64
    /// Keys this node's rounds found every site agreeing to drop.
    public var keysAgreed: UInt64
}

extension FederationCore {
    static let collectionSilenceMilliseconds: UInt64 = 30_000
    /// Keys read per tick when gathering a round's candidates (a few milliseconds: working
    /// out a session's expiry takes microseconds), and the ticks a round gathers for at most
    /// (20,000 keys read, in about 200 ms).
    static let collectionScanKeysPerStep = 500
    static let collectionScanSteps = 40

    /// Why this node does not propose collection rounds, or nil when it does.
    var collectionRefusal: String? {
        if settings.collectionIntervalMilliseconds == 0 { return "collectionIntervalMilliseconds is 0" }
        let others = Set(settings.sites.keys).subtracting([settings.localSite])
        if !others.isSubset(of: Set(settings.linkedSites)) { return "this site is not linked with every site: a site linked with all of them collects" }
        return nil
    }

    /// Linked sites that hold collection back now.
    var collectionBlockers: [SiteID] {
        settings.linkedSites.filter { !(links[$0]?.connected ?? false) || !(links[$0]?.everSynchronized ?? false) }
    }

    public func collectionStatus() -> CollectionStatus {
        let blockers = collectionBlockers.map(settings.name(of:))
        let refusal = collectionRefusal
        return CollectionStatus(
            collects: refusal == nil, reason: refusal ?? (blockers.isEmpty ? "" : "waiting for every linked site to be connected and synchronised"),
            blockedBy: refusal == nil ? blockers : [], rounds: collection.rounds, keysAgreed: collection.keysAgreed
        )
    }

    /// Keys with a delta on any link's outbox not yet acknowledged: a site holding one may
    /// still deliver it, so it must not agree to drop the key.
    func keysInFlight() -> Set<[UInt8]> {
        var keys = Set<[UInt8]>()
        for link in links.values {
            for outbox in link.outboxes.values {
                for entry in outbox.pending { if let entry { keys.insert(entry.delta.key) } }
                for entry in outbox.unacknowledged { keys.insert(entry.delta.key) }
            }
        }
        return keys
    }

    /// Starts a collection round when one is due, forgets old tombstones, and abandons a round
    /// that went silent (called with every tick).
    mutating func collectionDue(store: inout some AntiEntropyStore, now: UInt64) -> [FederationAction] {
        store.forgetCollected(before: now > settings.collectionHorizonMilliseconds ? now - settings.collectionHorizonMilliseconds : 0)
        guard collectionRefusal == nil else { return [] }
        if let round = collection.round {
            guard now >= round.startedAt + Self.collectionSilenceMilliseconds else { return [] }
            collection.round = nil
            collection.lastRoundAt = now
            return [.log(FederationLog(.warning, "collection round unanswered: abandoned", ["round": "\(round.id)", "awaiting": "\(round.awaiting.keys.map(settings.name(of:)).sorted())"]))]
        }
        guard collectionBlockers.isEmpty, now >= (collection.lastRoundAt ?? 0) + settings.collectionIntervalMilliseconds else { return [] }
        // Candidates are gathered a slice per tick, so that no step reads more than a few
        // thousand keys; the round starts once enough were found or read.
        collection.gathered += store.collectionCandidates(
            now: now, limit: settings.collectionBatchKeys - collection.gathered.count, scanBudget: Self.collectionScanKeysPerStep, partitions: partitionsLedHere
        )
        collection.gatheringSteps += 1
        guard collection.gathered.count >= settings.collectionBatchKeys || collection.gatheringSteps >= Self.collectionScanSteps else { return [] }
        collection.lastRoundAt = now
        let inFlight = keysInFlight()
        // A small keyspace is read more than once while gathering: each key once, at the
        // digest read last.
        var latest: [[UInt8]: StateDigest] = [:]
        for (key, digest) in collection.gathered where !inFlight.contains(key) { latest[key] = digest }
        collection.gathered = []
        collection.gatheringSteps = 0
        guard !latest.isEmpty else { return [] }
        let id = collection.nextRound
        collection.nextRound += 1
        let partitions = Set(latest.keys.map { UInt32(settings.partitioning.partition(of: $0)) })
        collection.round = CollectionState.Round(
            id: id, startedAt: now, keys: latest, awaiting: Dictionary(uniqueKeysWithValues: settings.linkedSites.map { ($0, partitions) })
        )
        let proposal = latest.sorted { $0.key.lexicographicallyPrecedes($1.key) }.map { KeyDigest(key: $0.key, digest: $0.value) }
        return settings.linkedSites.map { .send(.outbound($0), .collectionCheck(round: id, proposal)) }
    }

    /// Another site's proposal: in a site of one node answered here, else each partition's
    /// keys by that partition's primary (`FederationAction.answerAtPrimary`).
    mutating func answerCollectionCheck(round: UInt64, _ keys: [KeyDigest], on connection: FederationConnection, store: inout some AntiEntropyStore) -> [FederationAction] {
        guard mergesAtPrimaries else { return sendAnswers([collectionVote(round: round, keys, partitions: [], store: &store)], on: connection) }
        return byPartition(keys, key: \.key).map { partition, keys in
            .answerAtPrimary(RoundRequest(connection: connection, partition: partition, message: .collectionCheck(round: round, keys)))
        }
    }

    /// The proposed keys held here in the same state, nothing of them in flight on this node's
    /// links (the partition's primary, or the only node of its site).
    func collectionVote(round: UInt64, _ keys: [KeyDigest], partitions: [UInt32], store: inout some AntiEntropyStore) -> FederationMessage {
        let inFlight = keysInFlight()
        // A key this site already collected agrees too: the proposer missed that round's
        // commit, and its tombstone must go as well.
        let agreed = keys.filter { proposal in
            !inFlight.contains(proposal.key) && (store.state(of: proposal.key)?.digest == proposal.digest || store.wasCollected(proposal.key))
        }
        return .collectionVote(round: round, agreed: agreed.map(\.key), partitions: partitions)
    }

    /// A site's vote on this node's round (about some of its partitions, or all of them);
    /// once every linked site voted on every partition, the keys all agreed on are dropped
    /// here and at every linked site.
    mutating func receiveCollectionVote(round id: UInt64, agreed: [[UInt8]], partitions: [UInt32], from site: SiteID, store: inout some AntiEntropyStore, now: UInt64) -> [FederationAction] {
        guard var round = collection.round, round.id == id, var awaited = round.awaiting[site] else { return [] }
        let answered = partitions.isEmpty ? awaited : awaited.intersection(partitions)
        guard !answered.isEmpty else { return [] }
        awaited.subtract(answered)
        round.awaiting[site] = awaited.isEmpty ? nil : awaited
        let agreedKeys = Set(agreed)
        for key in round.keys.keys where !agreedKeys.contains(key) && answered.contains(UInt32(settings.partitioning.partition(of: key))) {
            round.refused.insert(key)
        }
        guard round.awaiting.isEmpty else {
            collection.round = round
            return []
        }
        collection.round = nil
        collection.rounds += 1
        let inFlight = keysInFlight()
        let commit = round.keys.keys.filter { !round.refused.contains($0) && !inFlight.contains($0) }
            .sorted { $0.lexicographicallyPrecedes($1) }.map { KeyDigest(key: $0, digest: round.keys[$0]!) }
        collection.keysAgreed += UInt64(commit.count)
        var actions: [FederationAction] = settings.linkedSites.map { .send(.outbound($0), .collectionCommit(commit)) }
        actions += collect(commit, store: &store, now: now)
        actions.append(.log(FederationLog(.info, "collection round finished", ["round": "\(id)", "proposed": "\(round.keys.count)", "agreed": "\(commit.count)"])))
        return actions
    }

    /// The keys every site agreed to drop: dropped here too unless they changed meanwhile.
    mutating func receiveCollectionCommit(_ keys: [KeyDigest], store: inout some AntiEntropyStore, now: UInt64) -> [FederationAction] {
        collect(keys, store: &store, now: now)
    }

    /// Drops `keys` where they still hold the agreed state: here in a site of one node, else
    /// at each partition's primary (`collectHere` there), which replicates the drop.
    func collect(_ keys: [KeyDigest], store: inout some AntiEntropyStore, now: UInt64) -> [FederationAction] {
        guard mergesAtPrimaries else { return collectHere(keys, store: &store, now: now).actions }
        return byPartition(keys, key: \.key).map { .collectAtPrimary(CollectionAtPrimary(partition: $0, keys: $1)) }
    }

    /// What a collection commit did to this node's copy.
    public struct Collected: Sendable {
        /// The keys dropped (a site of several nodes drops them at the partition's backups too).
        public var dropped: [[UInt8]]
        /// The states of agreed keys that changed here since this site's vote, for every linked
        /// site; and a log line.
        public var actions: [FederationAction]
    }

    /// Drops the agreed keys from `store` (this node's copy is the one its site's copies follow)
    /// that still hold the agreed state and have no delta in flight here.
    ///
    /// An agreed key written here (or merged here) after this site voted is kept, and its state
    /// goes to every linked site. The sites that dropped it start the key again from that
    /// write's delta alone, without the agreed tombstone's context, while this copy joins
    /// the write onto the tombstone: the states differ in their causal context and only a
    /// periodic anti-entropy round (minutes away) would have joined them. The state sent
    /// brings the tombstone's context back into theirs; the next round collects the key again
    /// once it is a tombstone everywhere.
    public func collectHere(_ keys: [KeyDigest], store: inout some AntiEntropyStore, now: UInt64) -> Collected {
        let inFlight = keysInFlight()
        var dropped: [[UInt8]] = []
        var changed: [KeyStateRecord] = []
        for agreed in keys {
            if !inFlight.contains(agreed.key) && store.collect(agreed.key, digest: agreed.digest, now: now) {
                dropped.append(agreed.key)
            } else if let state = store.state(of: agreed.key), state.digest != agreed.digest {
                changed.append(KeyStateRecord(key: agreed.key, state: state))
            }
        }
        guard !changed.isEmpty else { return Collected(dropped: dropped, actions: []) }
        var actions = settings.linkedSites.flatMap { stateSends(changed, to: $0) }
        actions.append(.log(FederationLog(.info, "collected keys changed here since every site agreed: their states sent to every linked site", ["keys": "\(changed.count)"])))
        return Collected(dropped: dropped, actions: actions)
    }
}
