import Keyspace
import SessionModel
import Wire

/// Federation-wide collection of tombstones and long-expired keys (DESIGN.md §2.5; without
/// it every session ever created stays in memory in a federation). A node linked with every
/// other site (each node of a mesh, the hub of a hub) proposes candidates with their state
/// digests; every site answers with those it holds in exactly that state with no delta of
/// them still unacknowledged on any of its links; keys every site agreed on are dropped at
/// every site. Equal states everywhere and nothing in flight mean no write the key has not
/// seen exists anywhere, so nothing can bring it back; the tombstone stays remembered for
/// `collectionHorizonMilliseconds` against states anti-entropy had already sent.
struct CollectionState: Sendable {
    struct Round: Sendable {
        var id: UInt64
        var startedAt: UInt64
        var keys: [[UInt8]: StateDigest]
        var awaiting: Set<SiteID>
        var agreed: Set<[UInt8]>
    }

    var round: Round?
    var nextRound: UInt64 = 1
    var lastRoundAt: UInt64?
    var keysCollected: UInt64 = 0
    var rounds: UInt64 = 0
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
    public var keysCollected: UInt64
}

extension FederationCore {
    static let collectionSilenceMilliseconds: UInt64 = 30_000

    /// Why this node does not propose collection rounds, or nil when it does.
    var collectionRefusal: String? {
        if settings.collectionIntervalMilliseconds == 0 { return "collectionIntervalMilliseconds is 0" }
        if mergesAtPrimaries { return "sites of several nodes do not collect yet: tombstones and expired keys are kept" }
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
            blockedBy: refusal == nil ? blockers : [], rounds: collection.rounds, keysCollected: collection.keysCollected
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
            return [.log(FederationLog(.warning, "collection round unanswered: abandoned", ["round": "\(round.id)", "awaiting": "\(round.awaiting.map(settings.name(of:)).sorted())"]))]
        }
        guard collectionBlockers.isEmpty, now >= (collection.lastRoundAt ?? 0) + settings.collectionIntervalMilliseconds else { return [] }
        collection.lastRoundAt = now
        let inFlight = keysInFlight()
        let candidates = store.collectionCandidates(now: now, limit: settings.collectionBatchKeys, scanBudget: Self.digestKeysPerStep)
            .filter { !inFlight.contains($0.0) }
        guard !candidates.isEmpty else { return [] }
        let id = collection.nextRound
        collection.nextRound += 1
        collection.round = CollectionState.Round(
            id: id, startedAt: now, keys: Dictionary(candidates, uniquingKeysWith: { first, _ in first }),
            awaiting: Set(settings.linkedSites), agreed: Set(candidates.map(\.0))
        )
        let proposal = candidates.map { KeyDigest(key: $0.0, digest: $0.1) }
        return settings.linkedSites.map { .send(.outbound($0), .collectionCheck(round: id, proposal)) }
    }

    /// Another site's proposal: the keys held here in the same state, nothing of them in flight.
    mutating func answerCollectionCheck(round: UInt64, _ keys: [KeyDigest], on connection: FederationConnection, store: inout some AntiEntropyStore) -> [FederationAction] {
        // A node of a site of several nodes holds only some copies: dropping one would make
        // the copies of its site differ, so it agrees to nothing (its site keeps the keys).
        guard !mergesAtPrimaries else { return [.send(connection, .collectionVote(round: round, agreed: []))] }
        let inFlight = keysInFlight()
        // A key this site already collected agrees too: the proposer missed that round's
        // commit, and its tombstone must go as well.
        let agreed = keys.filter { proposal in
            !inFlight.contains(proposal.key) && (store.state(of: proposal.key)?.digest == proposal.digest || store.wasCollected(proposal.key))
        }
        return [.send(connection, .collectionVote(round: round, agreed: agreed.map(\.key)))]
    }

    /// A site's vote on this node's round; once every linked site voted, the keys all agreed
    /// on are dropped here and at every linked site.
    mutating func receiveCollectionVote(round id: UInt64, agreed: [[UInt8]], from site: SiteID, store: inout some AntiEntropyStore, now: UInt64) -> [FederationAction] {
        guard var round = collection.round, round.id == id, round.awaiting.remove(site) != nil else { return [] }
        round.agreed.formIntersection(agreed)
        guard round.awaiting.isEmpty else {
            collection.round = round
            return []
        }
        collection.round = nil
        collection.rounds += 1
        let inFlight = keysInFlight()
        let commit = round.agreed.sorted { $0.lexicographicallyPrecedes($1) }.filter { !inFlight.contains($0) }.map { KeyDigest(key: $0, digest: round.keys[$0]!) }
        var collected = 0
        for proposal in commit where store.collect(proposal.key, digest: proposal.digest, now: now) { collected += 1 }
        collection.keysCollected += UInt64(collected)
        var actions: [FederationAction] = settings.linkedSites.map { .send(.outbound($0), .collectionCommit(commit)) }
        actions.append(.log(FederationLog(.info, "collection round finished", ["round": "\(id)", "proposed": "\(round.keys.count)", "collected_here": "\(collected)"])))
        return actions
    }

    /// The keys every site agreed to drop: dropped here too unless they changed meanwhile.
    mutating func receiveCollectionCommit(_ keys: [KeyDigest], store: inout some AntiEntropyStore, now: UInt64) {
        guard !mergesAtPrimaries else { return }
        let inFlight = keysInFlight()
        for proposal in keys where !inFlight.contains(proposal.key) && store.collect(proposal.key, digest: proposal.digest, now: now) {
            collection.keysCollected += 1
        }
    }
}
