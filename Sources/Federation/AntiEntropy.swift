import Keyspace
import SessionModel

/// One anti-entropy round this node drives over its connection to a remote site, about the
/// partitions this node leads (every partition in a site of one node): the Merkle leaves of
/// each partition, then key digests of differing leaves, answered by repairs. The remote site
/// answers each partition from its primary's copy, so both sides compare whole partitions.
struct AntiEntropyRound: Sendable {
    var id: UInt64
    var reason: String
    var startedAt: UInt64
    /// The last answer; a round silent for `roundSilenceMilliseconds` is abandoned.
    var lastProgressAt: UInt64
    /// The partitions the round compares.
    var partitions: Set<UInt32>
    /// Partitions whose leaves have not been answered yet.
    var awaitingLeaves: Set<UInt32>
    /// Partitions whose leaves are not asked for yet, in order: at most
    /// `leavesPartitionsPerRequest` are asked for and unanswered at a time (each answer makes
    /// room for as many more), so that no step encodes, decodes or compares the leaves of
    /// every partition at once, and a partition the other site does not answer (no primary
    /// there) holds one place, not the partitions after it.
    var leavesUnrequested: [UInt32] = []
    /// Partitions whose leaves were asked for and are not answered yet.
    var leavesRequested: Set<UInt32> = []
    /// Chunks of bucket digests sent and not answered to the end, with their partition.
    var outstandingChunks: [UInt32: UInt32] = [:]
    /// Differing leaves whose key digests are not sent yet, per partition: sent a few
    /// partitions per step (`continueRounds`), so that a round over a keyspace that differs
    /// everywhere never reads every key in one step.
    var digestsToSend: [Int: Set<UInt32>] = [:]
    var nextChunk: UInt32 = 0
    var keysRepaired: UInt64 = 0
    var keysSent: UInt64 = 0
    var differingPartitions = 0
    var differingLeaves = 0
    /// An outbox overflow (or a repair this round could not include) happened during the
    /// round: the link still needs another.
    var overflowed = false

    var isComplete: Bool { awaitingLeaves.isEmpty && outstandingChunks.isEmpty && digestsToSend.isEmpty }

    /// The partitions compared to the end so far.
    var answeredPartitions: Set<UInt32> {
        partitions.subtracting(awaitingLeaves).subtracting(outstandingChunks.values).subtracting(digestsToSend.keys.map(UInt32.init))
    }
}

/// Another site's anti-entropy request about one partition, for the primary of that
/// partition in this site to answer from its copy (`FederationCore.answer(_:store:)`); the
/// answers go back on `connection`.
public struct RoundRequest: Hashable, Sendable {
    public var connection: FederationConnection
    public var partition: UInt32
    /// `merkleLeavesRequest` (of this partition alone) or `bucketDigests` (of its buckets).
    public var message: FederationMessage

    public init(connection: FederationConnection, partition: UInt32, message: FederationMessage) {
        self.connection = connection
        self.partition = partition
        self.message = message
    }
}

/// Key states an anti-entropy round brought from `site`, for the primary of `partition` in
/// this site to merge and replicate to its backups (`FederationCore.repaired(_:from:)`
/// counts what changed).
public struct StateRepair: Hashable, Sendable {
    public var site: SiteID
    public var partition: UInt32
    public var states: [KeyStateRecord]

    public init(site: SiteID, partition: UInt32, states: [KeyStateRecord]) {
        self.site = site
        self.partition = partition
        self.states = states
    }
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
    /// Taken offline (`sessionfed dr take-offline`): nothing is shipped to it.
    public var offline: Bool
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
                offline: link.offline,
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

    public func isConnected(to site: SiteID) -> Bool {
        links[site]?.connected ?? false
    }

    /// A round with no answer for this long is abandoned and started again (a request or its
    /// answer was lost inside the other site, whose primaries answer them).
    static let roundSilenceMilliseconds: UInt64 = 30_000

    /// Starts a round with `site` now over `partitions` (default: every partition this node
    /// leads): an operator's request, or the runtime's schedule.
    public mutating func startRound(with site: SiteID, reason: String, now: UInt64, partitions: Set<UInt32>? = nil) -> [FederationAction] {
        guard var link = links[site], link.connected, link.round == nil else { return [] }
        let partitions = partitions ?? ledPartitions
        var round = AntiEntropyRound(
            id: link.nextRound, reason: reason, startedAt: now, lastProgressAt: now, partitions: partitions, awaitingLeaves: partitions
        )
        round.leavesUnrequested = partitions.sorted()
        let request = Self.requestLeaves(&round)
        link.nextRound += 1
        link.round = round
        // Compared again from now on: covered once this round answers them.
        link.synchronizedPartitions.subtract(partitions)
        links[site] = link
        guard let request else { return finishRound(with: site, now: now) }
        return [
            .log(
                FederationLog(
                    .info, "anti-entropy round started",
                    ["site": settings.name(of: site), "round": "\(round.id)", "reason": reason, "partitions": "\(partitions.count)"]
                )
            ),
            .send(.outbound(site), request),
        ]
    }

    /// Partitions whose leaves are asked for and unanswered at most (17 requests for 271
    /// partitions at a site of one node): an answer is about 1,000 digests, encoded, decoded
    /// and compared in well under 10 ms.
    public static let leavesPartitionsPerRequest = 16

    /// A request for as many more partitions as there is room for among those awaited (nil
    /// when there is none, or none is left to ask for).
    static func requestLeaves(_ round: inout AntiEntropyRound) -> FederationMessage? {
        let room = leavesPartitionsPerRequest - round.leavesRequested.count
        guard room > 0, !round.leavesUnrequested.isEmpty else { return nil }
        let group = Array(round.leavesUnrequested.prefix(room))
        round.leavesUnrequested.removeFirst(group.count)
        round.leavesRequested.formUnion(group)
        return .merkleLeavesRequest(round: round.id, partitions: group)
    }

    /// Every partition this node leads: all of them in a site of one node.
    var ledPartitions: Set<UInt32> {
        partitionsLedHere ?? Set((0..<settings.partitioning.partitionCount).map(UInt32.init))
    }

    /// Whether `round` is the current round with `site` (answers to an abandoned round are
    /// ignored).
    func isCurrentRound(_ site: SiteID, _ round: UInt64) -> Bool {
        links[site]?.round?.id == round
    }
}

// MARK: The dialer's side of a round

extension FederationCore {
    mutating func compareLeaves(_ partitions: [PartitionLeaves], with site: SiteID, store: inout some AntiEntropyStore, now: UInt64) -> [FederationAction] {
        guard var round = links[site]?.round else { return [] }
        var answered = partitions.filter { round.awaitingLeaves.contains($0.partition) }
        round.leavesRequested.subtract(partitions.map(\.partition))
        // A partition this node stopped leading meanwhile is not compared: its copy may be gone,
        // and its new primary compares it.
        let led = ledPartitions
        for entry in answered where !led.contains(entry.partition) { round.awaitingLeaves.remove(entry.partition) }
        answered.removeAll { !led.contains($0.partition) }
        for entry in answered where entry.leaves.count != settings.merkleLeaves {
            return abandonRound(with: site, reason: "peer sent \(entry.leaves.count) leaves for partition \(entry.partition); this site has \(settings.merkleLeaves)")
        }
        let forest = MerkleForest(of: &store, partitions: Set(answered.map { Int($0.partition) }), partitioning: settings.partitioning, leafCount: settings.merkleLeaves)
        var differing: [Int: Set<UInt32>] = [:]
        for entry in answered {
            round.awaitingLeaves.remove(entry.partition)
            for (leaf, digest) in entry.leaves.enumerated() where digest != forest.leaves[Int(entry.partition)][leaf] {
                differing[Int(entry.partition), default: []].insert(UInt32(leaf))
            }
        }
        round.lastProgressAt = now
        round.differingPartitions += differing.count
        round.differingLeaves += differing.values.reduce(0) { $0 + $1.count }
        round.digestsToSend.merge(differing) { $0.union($1) }
        let next = Self.requestLeaves(&round)
        links[site]?.round = round
        var actions = sendDigests(with: site, store: &store, now: now)
        if let next { actions.append(.send(.outbound(site), next)) }
        return actions
    }

    /// Keys read per step for bucket digests, at least one partition's worth: a step costs
    /// a bounded pause however far two sites differ (4,000 keys: a few milliseconds).
    static let digestKeysPerStep = 4_000

    /// Sends the key digests of differing leaves for a few partitions, up to
    /// `digestKeysPerStep` keys read; the rest follow on the next steps.
    mutating func sendDigests(with site: SiteID, store: inout some AntiEntropyStore, now: UInt64) -> [FederationAction] {
        guard var round = links[site]?.round else { return [] }
        let layout = MerkleLayout(partitioning: settings.partitioning, leafCount: settings.merkleLeaves)
        var actions: [FederationAction] = []
        var keysRead = 0
        while keysRead < Self.digestKeysPerStep, let partition = round.digestsToSend.keys.min() {
            let leaves = round.digestsToSend.removeValue(forKey: partition)!
            var buckets: [BucketID: [KeyDigest]] = [:]
            for leaf in leaves { buckets[BucketID(partition: UInt32(partition), leaf: leaf)] = [] }
            store.forEachDigest(inPartitions: [partition], of: settings.partitioning) { key, digest in
                keysRead += 1
                let bucket = BucketID(partition: UInt32(partition), leaf: UInt32(layout.location(of: key).leaf))
                if buckets[bucket] != nil { buckets[bucket]!.append(KeyDigest(key: key, digest: digest)) }
            }
            for chunk in digestChunks(buckets) {
                actions.append(.send(.outbound(site), .bucketDigests(round: round.id, chunk: round.nextChunk, chunk)))
                round.outstandingChunks[round.nextChunk] = chunk[0].partition
                round.nextChunk += 1
            }
            round.lastProgressAt = now
        }
        links[site]?.round = round
        if round.isComplete { actions += finishRound(with: site, now: now) }
        return actions
    }

    /// Goes on with rounds that have key digests left to send (called with every tick).
    public mutating func continueRounds(store: inout some AntiEntropyStore, now: UInt64) -> [FederationAction] {
        var actions = collectionDue(store: &store, now: now)
        for site in settings.linkedSites where links[site]?.round?.digestsToSend.isEmpty == false {
            actions += sendDigests(with: site, store: &store, now: now)
        }
        return actions
    }

    /// Chunks of at most `repairChunkBytes`, each about one partition (the other site's primary
    /// of that partition answers it); every differing bucket is sent, empty ones too (the peer
    /// then sends all it has there).
    func digestChunks(_ buckets: [BucketID: [KeyDigest]]) -> [[Bucket]] {
        var chunks: [[Bucket]] = []
        var current: [Bucket] = []
        var chunkBytes = 0
        func cut() {
            if !current.isEmpty { chunks.append(current) }
            current = []
            chunkBytes = 0
        }
        for bucketID in buckets.keys.sorted() {
            if let partition = current.last?.partition, partition != bucketID.partition { cut() }
            var bucket = Bucket(partition: bucketID.partition, leaf: bucketID.leaf, keys: [])
            for pair in buckets[bucketID]! {
                if chunkBytes + pair.key.count + 24 > settings.repairChunkBytes && !(current.isEmpty && bucket.keys.isEmpty) {
                    current.append(bucket)
                    cut()
                    bucket.keys = []
                }
                bucket.keys.append(pair)
                chunkBytes += pair.key.count + 24
            }
            current.append(bucket)
            chunkBytes += 12
        }
        cut()
        return chunks
    }

    mutating func applyRepair(_ repair: BucketRepair, from site: SiteID, store: inout some AntiEntropyStore, now: UInt64) -> [FederationAction] {
        var actions = mergeStates(repair.states, from: site, store: &store, now: now)
        let wanted = repair.wanted.compactMap { key in store.state(of: key).map { KeyStateRecord(key: key, state: $0) } }
        actions += stateSends(wanted, to: site)
        links[site]?.round?.keysSent += UInt64(wanted.count)
        links[site]?.statistics.keysSent += UInt64(wanted.count)
        links[site]?.round?.lastProgressAt = now
        // Only the end of a chunk this round sent and still awaits counts (a repeat does not).
        if repair.last, links[site]?.round?.outstandingChunks.removeValue(forKey: repair.chunk) != nil, links[site]?.round?.isComplete == true {
            actions += finishRound(with: site, now: now)
        }
        return actions
    }

    /// Sends `records` (key states of this node's copy) to `site`, a partition's chunks at a
    /// time; in a site of several nodes once every in-sync backup holds what they show.
    func stateSends(_ records: [KeyStateRecord], to site: SiteID) -> [FederationAction] {
        byPartition(records, key: \.key).flatMap { partition, records in
            chunked(records).map { chunk -> FederationAction in
                let message = FederationMessage.keyStates(partition: partition, chunk)
                return mergesAtPrimaries ? .sendCommitted(.outbound(site), message, partition: partition) : .send(.outbound(site), message)
            }
        }
    }

    /// Key states from `site`: merged here in a site of one node, else handed to the primaries
    /// of their partitions (`FederationAction.mergeStates`), which replicate them.
    mutating func mergeStates(_ records: [KeyStateRecord], from site: SiteID, store: inout some AntiEntropyStore, now: UInt64) -> [FederationAction] {
        guard !records.isEmpty else { return [] }
        if mergesAtPrimaries {
            return byPartition(records, key: \.key).map { .mergeStates(StateRepair(site: site, partition: $0.partition, states: $0.items)) }
        }
        return mergeRepairs(records, from: site, store: &store, now: now)
    }

    /// Merges key states an anti-entropy round brought from `site` into `store` (this node is
    /// their partition's primary, or the only node of its site): conflicts counted and logged,
    /// repairs counted.
    public mutating func mergeRepairs(_ records: [KeyStateRecord], from site: SiteID, store: inout some AntiEntropyStore, now: UInt64) -> [FederationAction] {
        var actions: [FederationAction] = []
        var changed = 0
        // Keys this site collected that `site` still holds: it missed that round's commit (every
        // site had agreed), so it is told again.
        var collectedHere: [KeyDigest] = []
        for record in records {
            let wasCollected = store.wasCollected(record.key)
            let outcome = store.merge(state: record.state, key: record.key, now: now)
            if outcome.changed { changed += 1 }
            if wasCollected && store.wasCollected(record.key) { collectedHere.append(KeyDigest(key: record.key, digest: record.state.digest)) }
            actions += conflicts(outcome, key: record.key, from: site)
        }
        repaired(changed, from: site)
        if !collectedHere.isEmpty { actions.append(.send(.outbound(site), .collectionCommit(collectedHere))) }
        return actions
    }

    /// Anti-entropy changed `count` keys of this site with data from `site` (merged here, or by
    /// the primaries a `mergeStates` action reached).
    mutating func repaired(_ count: Int, from site: SiteID) {
        guard count > 0 else { return }
        links[site]?.round?.keysRepaired += UInt64(count)
        links[site]?.statistics.keysRepaired += UInt64(count)
        markForwardResync(repairedFrom: site)
    }

    /// Items (key states, key digests) grouped by the partition of their key, in partition order.
    func byPartition<Item>(_ items: [Item], key: (Item) -> [UInt8]) -> [(partition: UInt32, items: [Item])] {
        var groups: [UInt32: [Item]] = [:]
        for item in items { groups[UInt32(settings.partitioning.partition(of: key(item))), default: []].append(item) }
        return groups.keys.sorted().map { ($0, groups[$0]!) }
    }

    mutating func finishRound(with site: SiteID, now: UInt64) -> [FederationAction] {
        guard var link = links[site], let round = link.round else { return [] }
        link.round = nil
        link.needsResync = round.overflowed
        link.everSynchronized = true
        link.synchronizedPartitions.formUnion(round.partitions.intersection(ledPartitions))
        link.lastRoundFinishedAt = now
        link.statistics.resyncRuns += 1
        links[site] = link
        return [
            .log(
                FederationLog(
                    .info, "anti-entropy round finished",
                    [
                        "site": settings.name(of: site), "round": "\(round.id)", "reason": round.reason, "partitions": "\(round.partitions.count)",
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
    /// Another site's request about this site's partitions: answered here in a site of one
    /// node, else by the primary of each partition (`FederationAction.answerAtPrimary`).
    mutating func receiveRoundRequest(_ message: FederationMessage, on connection: FederationConnection, store: inout some AntiEntropyStore) -> [FederationAction] {
        let count = settings.partitioning.partitionCount
        switch message {
        case .merkleLeavesRequest(let round, let partitions):
            guard partitions.allSatisfy({ Int($0) < count }) else {
                return [.close(connection, reason: "leaves requested for a partition beyond \(count - 1)")]
            }
            guard mergesAtPrimaries else { return sendAnswers(answer(message, store: &store), on: connection) }
            return Set(partitions).sorted().map { partition in
                .answerAtPrimary(RoundRequest(connection: connection, partition: partition, message: .merkleLeavesRequest(round: round, partitions: [partition])))
            }
        case .bucketDigests(_, _, let buckets):
            let partitions = Set(buckets.map(\.partition))
            guard partitions.allSatisfy({ Int($0) < count }), buckets.allSatisfy({ Int($0.leaf) < settings.merkleLeaves }) else {
                return [.close(connection, reason: "bucket digests for a partition beyond \(count - 1) or a leaf beyond \(settings.merkleLeaves - 1)")]
            }
            guard mergesAtPrimaries else { return sendAnswers(answer(message, store: &store), on: connection) }
            guard partitions.count <= 1, let partition = partitions.first else {
                return partitions.isEmpty ? [] : [.close(connection, reason: "bucket digests of \(partitions.count) partitions in one chunk; each chunk is about one partition")]
            }
            return [.answerAtPrimary(RoundRequest(connection: connection, partition: partition, message: message))]
        default:
            preconditionFailure("Invalid state: \(message.kind) is not an anti-entropy request")
        }
    }

    /// The answers to an anti-entropy request (`merkleLeavesRequest` or `bucketDigests`) from
    /// `store`: this node's copy of the partitions it names, which it leads (or every
    /// partition, in a site of one node). Reads only; the caller sends them with `sendAnswers`.
    public func answer(_ request: FederationMessage, store: inout some AntiEntropyStore) -> [FederationMessage] {
        switch request {
        case .merkleLeavesRequest(let round, let partitions):
            let requested = Set(partitions.map(Int.init)).filter { $0 < settings.partitioning.partitionCount }
            let forest = MerkleForest(of: &store, partitions: requested, partitioning: settings.partitioning, leafCount: settings.merkleLeaves)
            return [.merkleLeaves(round: round, requested.sorted().map { PartitionLeaves(partition: UInt32($0), leaves: forest.leaves[$0]) })]
        case .bucketDigests(let round, let chunk, let buckets):
            return answerBuckets(round: round, chunk: chunk, buckets: buckets, store: &store)
        case .collectionCheck(let round, let keys):
            let partitions = Set(keys.map { UInt32(settings.partitioning.partition(of: $0.key)) })
            return [collectionVote(round: round, keys, partitions: partitions.sorted(), store: &store)]
        default:
            return []
        }
    }

    /// Sends a primary's answers on the connection the request came by, counting the states.
    public mutating func sendAnswers(_ answers: [FederationMessage], on connection: FederationConnection) -> [FederationAction] {
        for case .bucketRepair(let repair) in answers {
            links[connection.site]?.statistics.keysSent += UInt64(repair.states.count)
        }
        return answers.map { .send(connection, $0) }
    }

    func answerBuckets(round: UInt64, chunk: UInt32, buckets: [Bucket], store: inout some AntiEntropyStore) -> [FederationMessage] {
        let forest = MerkleForest(partitioning: settings.partitioning, leafCount: settings.merkleLeaves)
        var theirs: [BucketID: [[UInt8]: StateDigest]] = [:]
        for bucket in buckets {
            var keys: [[UInt8]: StateDigest] = [:]
            for pair in bucket.keys { keys[pair.key] = pair.digest }
            theirs[BucketID(partition: bucket.partition, leaf: bucket.leaf), default: [:]].merge(keys) { $1 }
        }
        var differing: [[UInt8]] = []
        var wanted: [[UInt8]] = []
        store.forEachDigest(inPartitions: Set(buckets.map { Int($0.partition) }), of: settings.partitioning) { key, digest in
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
        var groups = chunked(states)
        if groups.isEmpty { groups = [[]] }
        return groups.enumerated().map { index, group in
            let last = index == groups.count - 1
            return .bucketRepair(BucketRepair(round: round, chunk: chunk, last: last, states: group, wanted: last ? wanted : []))
        }
    }
}
