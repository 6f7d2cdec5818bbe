import Keyspace
import SessionModel
import Wire

/// One anti-entropy round this node drives over its connection to a remote site: roots, then
/// leaves of differing partitions, then key digests of differing leaves, answered by repairs.
struct AntiEntropyRound: Sendable {
    var id: UInt64
    var reason: String
    var startedAt: UInt64
    var outstandingChunks = 0
    var keysRepaired: UInt64 = 0
    var keysSent: UInt64 = 0
    var differingPartitions = 0
    var differingLeaves = 0
    /// An outbox overflow (or a repair this round could not include) happened during the
    /// round: the link still needs another.
    var overflowed = false
}

/// Counters of one link, both directions.
public struct LinkStatistics: Hashable, Sendable, Codable {
    public var connects: UInt64 = 0
    public var deltasEnqueued: UInt64 = 0
    public var deltasCoalesced: UInt64 = 0
    public var bytesSavedByCoalescing: UInt64 = 0
    public var batchesSent: UInt64 = 0
    public var deltasSent: UInt64 = 0
    public var deltasResent: UInt64 = 0
    public var deltasAcknowledged: UInt64 = 0
    public var outboxOverflows: UInt64 = 0
    public var deltasDropped: UInt64 = 0
    public var batchesReceived: UInt64 = 0
    public var deltasReceived: UInt64 = 0
    public var duplicateBatches: UInt64 = 0
    public var sequenceGaps: UInt64 = 0
    /// Concurrent writes resolved, by policy (`lww`, `site-priority`, `delete-wins`).
    public var conflicts: [String: UInt64] = [:]
    public var resyncRuns: UInt64 = 0
    /// Keys whose state changed here by anti-entropy repairs exchanged with this site.
    public var keysRepaired: UInt64 = 0
    /// Key states sent to this site by anti-entropy.
    public var keysSent: UInt64 = 0
}

/// A link's state as /status shows it.
public struct LinkStatus: Hashable, Sendable, Codable {
    public var site: String
    public var siteID: UInt32
    public var connected: Bool
    public var needsResync: Bool
    /// At least one anti-entropy round completed with this site since start.
    public var synchronized: Bool
    public var resyncInProgress: Bool
    /// Deltas produced here (or forwarded) and not yet acknowledged by the site.
    public var lagDeltas: Int
    /// Age of the oldest unacknowledged delta: the recovery point should this site be lost now.
    public var lagMilliseconds: UInt64
    public var outboxBytes: Int
    public var statistics: LinkStatistics
}

extension FederationCore {
    public func status(now: UInt64) -> [LinkStatus] {
        settings.linkedSites.compactMap { site in
            guard let link = links[site] else { return nil }
            let oldest = link.outboxes.values.compactMap(\.oldestEnqueuedAt).min()
            return LinkStatus(
                site: settings.name(of: site),
                siteID: site.rawValue,
                connected: link.connected,
                needsResync: link.needsResync,
                synchronized: link.everSynchronized,
                resyncInProgress: link.round != nil,
                lagDeltas: link.outboxCount,
                lagMilliseconds: oldest.map { now > $0 ? now - $0 : 0 } ?? 0,
                outboxBytes: link.outboxBytes,
                statistics: link.statistics
            )
        }
    }

    /// Whether an anti-entropy round with `site` has completed since this node started.
    public func isSynchronized(with site: SiteID) -> Bool {
        links[site]?.everSynchronized ?? false
    }

    /// Whether anti-entropy can run with `site`: not while either site has several nodes (a
    /// node of such a site holds only some partitions and answers no round).
    public func runsAntiEntropy(with site: SiteID) -> Bool {
        !mergesAtPrimaries && (settings.sites[site]?.nodes.count ?? 0) <= 1
    }

    public func isConnected(to site: SiteID) -> Bool {
        links[site]?.connected ?? false
    }

    /// Starts a round with `site` now (an operator's request, or the runtime's schedule).
    public mutating func startRound(with site: SiteID, reason: String, now: UInt64) -> [FederationAction] {
        guard runsAntiEntropy(with: site), var link = links[site], link.connected, link.round == nil else { return [] }
        let round = AntiEntropyRound(id: link.nextRound, reason: reason, startedAt: now)
        link.nextRound += 1
        link.round = round
        links[site] = link
        return [
            .log(FederationLog(.info, "anti-entropy round started", ["site": settings.name(of: site), "round": "\(round.id)", "reason": reason])),
            .send(.outbound(site), .merkleRootsRequest(round: round.id)),
        ]
    }

    /// Whether `round` is the current round with `site` (answers to an abandoned round are
    /// ignored).
    func isCurrentRound(_ site: SiteID, _ round: UInt64) -> Bool {
        links[site]?.round?.id == round
    }
}

// MARK: The dialer's side of a round

extension FederationCore {
    mutating func compareRoots(_ roots: [StateDigest], with site: SiteID, store: inout some AntiEntropyStore, now: UInt64) -> [FederationAction] {
        let forest = MerkleForest(of: &store, partitioning: settings.partitioning, leafCount: settings.merkleLeaves)
        guard roots.count == forest.partitioning.partitionCount else {
            return abandonRound(with: site, reason: "peer has \(roots.count) partitions, this site has \(forest.partitioning.partitionCount)")
        }
        let mine = forest.roots
        let differing = (0..<roots.count).filter { roots[$0] != mine[$0] }.map(UInt32.init)
        links[site]?.round?.differingPartitions = differing.count
        guard !differing.isEmpty, let round = links[site]?.round?.id else { return finishRound(with: site, now: now) }
        return [.send(.outbound(site), .merkleLeavesRequest(round: round, partitions: differing))]
    }

    mutating func compareLeaves(_ partitions: [PartitionLeaves], with site: SiteID, store: inout some AntiEntropyStore, now: UInt64) -> [FederationAction] {
        let forest = MerkleForest(of: &store, partitioning: settings.partitioning, leafCount: settings.merkleLeaves)
        var differing: Set<BucketID> = []
        for entry in partitions {
            guard Int(entry.partition) < forest.partitioning.partitionCount, entry.leaves.count == forest.leafCount else {
                return abandonRound(with: site, reason: "peer sent \(entry.leaves.count) leaves for partition \(entry.partition); this site has \(forest.leafCount) leaves in \(forest.partitioning.partitionCount) partitions")
            }
            for (leaf, digest) in entry.leaves.enumerated() where digest != forest.leaves[Int(entry.partition)][leaf] {
                differing.insert(BucketID(partition: entry.partition, leaf: UInt32(leaf)))
            }
        }
        links[site]?.round?.differingLeaves = differing.count
        guard !differing.isEmpty, let round = links[site]?.round?.id else { return finishRound(with: site, now: now) }
        var buckets: [BucketID: [KeyDigest]] = [:]
        for bucket in differing { buckets[bucket] = [] }
        store.forEachDigest { key, digest in
            let location = forest.location(of: key)
            let bucket = BucketID(partition: UInt32(location.partition), leaf: UInt32(location.leaf))
            if buckets[bucket] != nil { buckets[bucket]!.append(KeyDigest(key: key, digest: digest)) }
        }
        // Chunks of at most `repairChunkBytes`; every differing bucket is sent, empty ones too
        // (the peer then sends all it has there).
        var chunks: [[Bucket]] = [[]]
        var chunkBytes = 0
        for bucketID in buckets.keys.sorted() {
            var bucket = Bucket(partition: bucketID.partition, leaf: bucketID.leaf, keys: [])
            for pair in buckets[bucketID]! {
                if chunkBytes + pair.key.count + 24 > settings.repairChunkBytes && !(chunks[chunks.count - 1].isEmpty && bucket.keys.isEmpty) {
                    chunks[chunks.count - 1].append(bucket)
                    chunks.append([])
                    bucket.keys = []
                    chunkBytes = 0
                }
                bucket.keys.append(pair)
                chunkBytes += pair.key.count + 24
            }
            chunks[chunks.count - 1].append(bucket)
            chunkBytes += 12
        }
        links[site]?.round?.outstandingChunks = chunks.count
        return chunks.enumerated().map { index, buckets in
            .send(.outbound(site), .bucketDigests(round: round, chunk: UInt32(index), buckets))
        }
    }

    mutating func applyRepair(_ repair: BucketRepair, from site: SiteID, store: inout some AntiEntropyStore, now: UInt64) -> [FederationAction] {
        var actions: [FederationAction] = []
        var repaired: UInt64 = 0
        for record in repair.states {
            let outcome = store.merge(state: record.state, key: record.key, now: now)
            if outcome.changed { repaired += 1 }
            actions += conflicts(outcome, key: record.key, from: site)
        }
        let wanted = repair.wanted.compactMap { key in store.state(of: key).map { KeyStateRecord(key: key, state: $0) } }
        for chunk in chunked(wanted) {
            actions.append(.send(.outbound(site), .keyStates(partition: 0, chunk)))
        }
        links[site]?.round?.keysRepaired += repaired
        links[site]?.round?.keysSent += UInt64(wanted.count)
        links[site]?.statistics.keysRepaired += repaired
        links[site]?.statistics.keysSent += UInt64(wanted.count)
        if repaired > 0 { markForwardResync(repairedFrom: site) }
        if repair.last {
            links[site]?.round?.outstandingChunks -= 1
            if links[site]?.round?.outstandingChunks ?? 0 <= 0 { actions += finishRound(with: site, now: now) }
        }
        return actions
    }

    mutating func finishRound(with site: SiteID, now: UInt64) -> [FederationAction] {
        guard var link = links[site], let round = link.round else { return [] }
        link.round = nil
        link.needsResync = round.overflowed
        link.everSynchronized = true
        link.lastRoundFinishedAt = now
        link.statistics.resyncRuns += 1
        links[site] = link
        return [
            .log(
                FederationLog(
                    .info, "anti-entropy round finished",
                    [
                        "site": settings.name(of: site), "round": "\(round.id)", "reason": round.reason,
                        "differing_partitions": "\(round.differingPartitions)", "differing_leaves": "\(round.differingLeaves)",
                        "keys_repaired_here": "\(round.keysRepaired)", "keys_sent": "\(round.keysSent)",
                        "duration_ms": "\(now >= round.startedAt ? now - round.startedAt : 0)",
                    ]
                )
            )
        ]
    }

    /// The peer's tree does not match this one's shape: no repair is possible; the link stays
    /// marked and the connection closes (a configuration error both sides log).
    mutating func abandonRound(with site: SiteID, reason: String) -> [FederationAction] {
        links[site]?.round = nil
        links[site]?.needsResync = true
        return [.close(.outbound(site), reason: "anti-entropy impossible: \(reason)")]
    }

    /// Splits key states into groups of about `repairChunkBytes`.
    func chunked(_ records: [KeyStateRecord]) -> [[KeyStateRecord]] {
        var chunks: [[KeyStateRecord]] = []
        var current: [KeyStateRecord] = []
        var bytes = 0
        for record in records {
            // The memory estimate exceeds the encoded size, so chunks stay under the cap.
            let size = Keyspace.estimateBytes(key: record.key, state: record.state)
            if !current.isEmpty && bytes + size > settings.repairChunkBytes {
                chunks.append(current)
                current = []
                bytes = 0
            }
            current.append(record)
            bytes += size
        }
        if !current.isEmpty { chunks.append(current) }
        return chunks
    }
}

// MARK: The listener's side of a round

struct BucketID: Hashable, Comparable, Sendable {
    var partition: UInt32
    var leaf: UInt32

    static func < (lhs: BucketID, rhs: BucketID) -> Bool {
        (lhs.partition, lhs.leaf) < (rhs.partition, rhs.leaf)
    }
}

extension FederationCore {
    func answerLeaves(round: UInt64, partitions: [UInt32], on connection: FederationConnection, store: inout some AntiEntropyStore) -> [FederationAction] {
        let forest = MerkleForest(of: &store, partitioning: settings.partitioning, leafCount: settings.merkleLeaves)
        guard partitions.allSatisfy({ Int($0) < forest.partitioning.partitionCount }) else {
            return [.close(connection, reason: "leaves requested for a partition beyond \(forest.partitioning.partitionCount - 1)")]
        }
        return [.send(connection, .merkleLeaves(round: round, partitions.map { PartitionLeaves(partition: $0, leaves: forest.leaves[Int($0)]) }))]
    }

    mutating func answerBuckets(round: UInt64, chunk: UInt32, buckets: [Bucket], on connection: FederationConnection, store: inout some AntiEntropyStore) -> [FederationAction] {
        let forest = MerkleForest(partitioning: settings.partitioning, leafCount: settings.merkleLeaves)
        var theirs: [BucketID: [[UInt8]: StateDigest]] = [:]
        for bucket in buckets {
            var keys: [[UInt8]: StateDigest] = [:]
            for pair in bucket.keys { keys[pair.key] = pair.digest }
            theirs[BucketID(partition: bucket.partition, leaf: bucket.leaf), default: [:]].merge(keys) { $1 }
        }
        var differing: [[UInt8]] = []
        var wanted: [[UInt8]] = []
        store.forEachDigest { key, digest in
            let location = forest.location(of: key)
            let bucket = BucketID(partition: UInt32(location.partition), leaf: UInt32(location.leaf))
            guard theirs[bucket] != nil else { return }
            if let their = theirs[bucket]!.removeValue(forKey: key) {
                if their != digest {
                    differing.append(key)
                    wanted.append(key)
                }
            } else {
                differing.append(key)
            }
        }
        for keys in theirs.values { wanted += keys.keys }
        let states = differing.compactMap { key in store.state(of: key).map { KeyStateRecord(key: key, state: $0) } }
        let site = connection.site
        links[site]?.statistics.keysSent += UInt64(states.count)
        var groups = chunked(states)
        if groups.isEmpty { groups = [[]] }
        return groups.enumerated().map { index, group in
            let last = index == groups.count - 1
            return .send(connection, .bucketRepair(BucketRepair(round: round, chunk: chunk, last: last, states: group, wanted: last ? wanted : [])))
        }
    }
}
