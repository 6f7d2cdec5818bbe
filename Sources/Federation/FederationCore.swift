import Keyspace
import SessionModel

/// A connection as the federation core names it: the one this node dialed to a remote site
/// (carries this node's outboxes and its anti-entropy rounds) or the one a remote site dialed
/// to this node (carries that site's deltas and answers its rounds).
public enum FederationConnection: Hashable, Sendable, CustomStringConvertible {
    case outbound(SiteID)
    /// From one node of that site: every node of a site of several dials on its own.
    case inbound(SiteID, node: String)

    public var site: SiteID {
        switch self {
        case .outbound(let site), .inbound(let site, _): return site
        }
    }

    public var description: String {
        switch self {
        case .outbound(let site): return "outbound to \(site)"
        case .inbound(let site, let node): return "inbound from \(site) (\(node))"
        }
    }
}

/// A remote batch's fresh deltas, for the runtime to have merged by the primary of their
/// partition in this site (and replicated to its backups) before the batch is acknowledged.
public struct RemoteBatch: Hashable, Sendable {
    public var site: SiteID
    public var node: String
    public var incarnation: UInt64
    public var stream: StreamID
    public var last: UInt64
    public var deltas: [Delta]
}

/// What the runtime must do for the core.
public enum FederationAction: Hashable, Sendable {
    case send(FederationConnection, FederationMessage)
    /// Close the connection (a protocol violation); the runtime logs `reason`.
    case close(FederationConnection, reason: String)
    case log(FederationLog)
    /// Keyspace events for writes of other sites merged here (published like local ones).
    case notify([KeyspaceEvent])
    /// Have the partition's primary merge and replicate these deltas, then report with
    /// `remoteBatchMerged` (or `remoteBatchFailed`). Only when `mergesAtPrimaries`.
    case merge(RemoteBatch)
    /// Have the partition's primary answer another site's anti-entropy request from its copy
    /// (`answer(_:store:)`) and send the answers with `sendAnswers`. Only when
    /// `mergesAtPrimaries`; an unanswered request costs the other site its round, which it
    /// abandons and starts again.
    case answerAtPrimary(RoundRequest)
    /// Have the partition's primary merge these key states and replicate them, then report
    /// what changed with `repaired`. Only when `mergesAtPrimaries`.
    case mergeStates(StateRepair)
    /// Send once every write of `partition` this node applied so far is committed in its site
    /// (key states never leave with a write a failover could lose, whose dot a promoted
    /// backup would issue again); dropped if this node stops leading the partition first.
    /// Only when `mergesAtPrimaries`.
    case sendCommitted(FederationConnection, FederationMessage, partition: UInt32)
    /// Have the partition's primary drop these keys where they still hold the agreed state,
    /// and replicate the drop. Only when `mergesAtPrimaries`.
    case collectAtPrimary(CollectionAtPrimary)
    /// A peer of `from` has a role assignment that supersedes this node's: the site's control
    /// plane adopts it, and the node then `adopt`s it.
    case learnedRoles(RoleAssignment, from: SiteID)
}

public struct FederationLog: Hashable, Sendable {
    public enum Level: String, Hashable, Sendable {
        case info, warning, error
    }

    public var level: Level
    public var message: String
    public var metadata: [String: String]

    public init(_ level: Level, _ message: String, _ metadata: [String: String] = [:]) {
        self.level = level
        self.message = message
        self.metadata = metadata
    }
}

/// The federation state machine of one node (DESIGN.md §4): per remote site and stream an
/// outbox with batching, coalescing and acknowledgements; the bound that drops an outbox and
/// marks the link for resync; inbound batches merged through SessionModel with sequence
/// tracking, conflicts counted and logged; hub forwarding; anti-entropy rounds.
///
/// Pure: time comes in as `now`, the node's data as an `AntiEntropyStore`, and every effect
/// goes out as a `FederationAction`. The runtime and the simulator drive it the same way.
public struct FederationCore: Sendable {
    public let settings: FederationSettings
    /// This process's incarnation (the runtime picks a fresh one per start).
    public let incarnation: UInt64
    /// A site of several nodes: inbound deltas are merged by their partition's primary
    /// (`FederationAction.merge`), not into the store of the node the link reached.
    public var mergesAtPrimaries = false
    /// The partitions this node leads in a site of several nodes (`lead(_:)`); nil in a site
    /// of one node, which leads them all. Anti-entropy rounds are about these.
    public private(set) var partitionsLedHere: Set<UInt32>?
    var links: [SiteID: LinkState] = [:]
    var collection = CollectionState()
    /// The role assignment this node's site has in force, sent in every Hello and heartbeat.
    /// Set by the runtime from the site's control plane (`adopt(_:)`); one learned from a peer
    /// that supersedes it goes out as `FederationAction.learnedRoles`.
    public private(set) var roles: RoleAssignment?

    /// One node of a remote site that dials this node.
    struct Sender: Sendable {
        var incarnation: UInt64
        /// The last sequence merged (and acknowledged) per stream.
        var applied: [StreamID: UInt64] = [:]
        /// Per stream, the batches handed out for merging, in arrival order: a batch is
        /// acknowledged only once it and every earlier one merged.
        var merging: [StreamID: [(last: UInt64, done: Bool, deltas: [Delta])]] = [:]

        /// The last sequence received per stream, merged or merging.
        func received(_ stream: StreamID) -> UInt64 {
            max(applied[stream] ?? 0, merging[stream]?.last?.last ?? 0)
        }
    }

    struct LinkState: Sendable {
        var outboxes: [StreamID: Outbox] = [:]
        var connected = false
        /// Taken offline (`sessionfed dr take-offline`): nothing is shipped or compared.
        var offline = false
        var needsResync = false
        var everSynchronized = false
        /// Partitions this node leads that a round with the site compared since it leads them:
        /// a partition it starts to lead (a failover, a move, a re-created copy) gets a round.
        var synchronizedPartitions: Set<UInt32> = []
        var statistics = LinkStatistics()
        /// Inbound: per sending node of that site.
        var senders: [String: Sender] = [:]
        var round: AntiEntropyRound?
        var nextRound: UInt64 = 1
        var lastRoundFinishedAt: UInt64?
        var lastFlushAt: UInt64 = 0

        /// Bytes of all outboxes, kept current by `withOutbox` (checked on every enqueue).
        var outboxBytes = 0
        var outboxCount: Int { outboxes.values.reduce(0) { $0 + $1.count } }

        /// Mutates one stream's outbox in place and keeps `outboxBytes` current.
        mutating func withOutbox<Result>(_ stream: StreamID, _ body: (inout Outbox) -> Result) -> Result {
            let before = outboxes[stream]?.bytes ?? 0
            let result = body(&outboxes[stream, default: Outbox()])
            outboxBytes += outboxes[stream]!.bytes - before
            return result
        }
    }

    public init(settings: FederationSettings, incarnation: UInt64) {
        self.settings = settings
        self.incarnation = incarnation
        roles = settings.initialRoles
        for site in settings.linkedSites { links[site] = LinkState() }
    }

    // MARK: Roles

    /// The assignment the site's control plane committed.
    public mutating func adopt(_ assignment: RoleAssignment) {
        roles = assignment
    }

    /// What a peer's Hello or heartbeat says of roles: an assignment that supersedes this
    /// node's goes to the site's control plane, which adopts it (fencing, DESIGN.md §5).
    func learned(_ assignment: RoleAssignment?, from site: SiteID) -> [FederationAction] {
        guard let assignment, roles.map({ assignment.supersedes($0) }) ?? true else { return [] }
        return [.learnedRoles(assignment, from: site)]
    }

    /// A heartbeat arrived from `site` (on either connection), carrying that site's role
    /// assignment. Heartbeats are link-level frames (peer links inside a site send them too),
    /// not federation messages, so the runtime hands over only the roles.
    public func heard(roles: RoleAssignment?, from site: SiteID) -> [FederationAction] {
        learned(roles, from: site)
    }

    /// The partitions this node leads now (a site of several nodes). One it no longer leads
    /// needs a round again when it comes back.
    public mutating func lead(_ partitions: Set<UInt32>) {
        partitionsLedHere = partitions
        for site in settings.linkedSites { links[site]?.synchronizedPartitions.formIntersection(partitions) }
    }

    // MARK: Handshake

    /// The Hello this node sends when it dials `site`.
    public func hello(to site: SiteID) -> Hello {
        Hello(
            federation: settings.federation,
            protocolVersion: settings.protocolVersion,
            site: settings.localSite,
            siteName: settings.name(of: settings.localSite),
            nodeName: settings.localNode,
            topologyVersion: settings.topologyVersion,
            roles: roles,
            incarnation: incarnation,
            targetSite: site
        )
    }

    /// Why a peer's Hello is refused, or nil to accept it. `certificateNames` are the names its
    /// verified TLS certificate carries (nil on plaintext loopback); one must be the node it
    /// claims to be.
    public func refusal(of hello: Hello, certificateNames: Set<String>?) -> String? {
        if hello.federation != settings.federation {
            return "peer belongs to federation '\(hello.federation)', this is federation '\(settings.federation)'"
        }
        if hello.protocolVersion != settings.protocolVersion {
            return "peer speaks federation protocol \(hello.protocolVersion), this node speaks \(settings.protocolVersion)"
        }
        guard let site = settings.sites[hello.site] else {
            return "site id \(hello.site.rawValue) ('\(hello.siteName)') is not in this topology"
        }
        if site.name != hello.siteName {
            return "site id \(hello.site.rawValue) is '\(site.name)' in this topology, the peer calls it '\(hello.siteName)'"
        }
        if !site.nodes.contains(hello.nodeName) {
            return "node '\(hello.nodeName)' is not a node of site '\(site.name)' in this topology"
        }
        if let certificateNames, !certificateNames.contains(hello.nodeName) {
            return "peer claims to be node '\(hello.nodeName)' but its certificate names \(certificateNames.sorted())"
        }
        if hello.site == settings.localSite {
            return "peer is in this node's own site '\(site.name)'; federation links join different sites"
        }
        if hello.targetSite != settings.localSite {
            return "peer meant to reach site \(hello.targetSite.rawValue), this is site \(settings.localSite.rawValue) ('\(settings.name(of: settings.localSite))')"
        }
        if links[hello.site] == nil {
            return "site '\(site.name)' is not linked with site '\(settings.name(of: settings.localSite))' in this topology"
        }
        if let refusal = FederationSettings.topologyVersionRefusal(peer: hello.topologyVersion, own: settings.topologyVersion) {
            return refusal
        }
        return nil
    }

    /// A remote site's node dialed in and was accepted. A new incarnation of the sender (it
    /// restarted) resets the sequence tracking of its streams.
    public mutating func inboundAccepted(_ hello: Hello) -> [FederationAction] {
        guard var link = links[hello.site] else { return [] }
        var actions = learned(hello.roles, from: hello.site)
        if link.senders[hello.nodeName]?.incarnation != hello.incarnation {
            let restarted = link.senders[hello.nodeName] != nil
            link.senders[hello.nodeName] = Sender(incarnation: hello.incarnation)
            links[hello.site] = link
            if restarted {
                // Its outboxes died with it: deltas it delivered here but not to another site
                // now exist only here. Resync every other link so they reach everyone.
                let others = settings.linkedSites.filter { $0 != hello.site }
                for other in others {
                    links[other]?.needsResync = true
                    links[other]?.round?.overflowed = true
                }
                actions.append(
                    .log(
                        FederationLog(
                            .warning, "peer restarted: sequence tracking reset; resyncing the other links with its writes",
                            ["site": settings.name(of: hello.site), "node": hello.nodeName, "resync": "\(others.map { settings.name(of: $0) })"]
                        )
                    )
                )
            }
        }
        return actions
    }

    /// This node's connection to `site` completed its handshake: unacknowledged deltas are sent
    /// again and, when the link needs it, an anti-entropy round starts.
    /// `roles`: the assignment the listener's Hello reply carried.
    public mutating func outboundConnected(to site: SiteID, roles: RoleAssignment? = nil, now: UInt64) -> [FederationAction] {
        guard var link = links[site] else { return [] }
        link.connected = true
        link.statistics.connects += 1
        for stream in link.outboxes.keys { link.outboxes[stream]?.rewind() }
        links[site] = link
        var actions = learned(roles, from: site)
        if link.needsResync || !link.everSynchronized {
            actions += startRound(with: site, reason: link.needsResync ? "needs-resync" : "connect", now: now)
        }
        return actions + flush(site, now: now, force: true)
    }

    /// The connection to `site` closed; what was sent and not acknowledged goes again next time.
    public mutating func outboundDisconnected(from site: SiteID) {
        guard var link = links[site] else { return }
        link.connected = false
        link.round = nil
        for stream in link.outboxes.keys { link.outboxes[stream]?.rewind() }
        links[site] = link
    }

    // MARK: Taking a site offline

    /// The sites this node's site stopped shipping to (`sessionfed dr take-offline`, committed
    /// in the site's control plane). A site taken offline gets nothing more: its outboxes are
    /// released and no anti-entropy round runs with it. Brought back online, its link needs a
    /// resync, and anti-entropy catches it up.
    public mutating func setOffline(_ offline: Set<SiteID>) -> [FederationAction] {
        var actions: [FederationAction] = []
        for site in settings.linkedSites {
            guard var link = links[site], link.offline != offline.contains(site) else { continue }
            link.offline = offline.contains(site)
            link.needsResync = true
            link.round = nil
            if link.offline {
                var released = 0
                for stream in Array(link.outboxes.keys) { released += link.withOutbox(stream) { $0.dropAll() } }
                link.statistics.deltasDropped += UInt64(released)
                actions.append(.log(FederationLog(.warning, "site taken offline: nothing is shipped to it; its outboxes are released", ["site": settings.name(of: site), "released_deltas": "\(released)"])))
            } else {
                actions.append(.log(FederationLog(.info, "site brought online: anti-entropy catches it up", ["site": settings.name(of: site)])))
            }
            links[site] = link
        }
        return actions
    }

    // MARK: Outgoing deltas

    /// Deltas of local writes, in the order they were applied. Each goes to every linked site.
    public mutating func enqueue(_ deltas: [Delta], now: UInt64) -> [FederationAction] {
        guard !deltas.isEmpty else { return [] }
        var actions: [FederationAction] = []
        for site in settings.linkedSites {
            actions += append(deltas, origin: settings.localSite, to: site, now: now)
        }
        return actions
    }

    mutating func append(_ deltas: [Delta], origin: SiteID, to site: SiteID, now: UInt64) -> [FederationAction] {
        guard links[site]?.offline == false else { return [] }
        // Taken out of the dictionary while it changes: a copy left behind would make every
        // mutation copy the outbox's arrays.
        guard var link = links.removeValue(forKey: site) else { return [] }
        defer { links[site] = link }
        for delta in deltas {
            let stream = StreamID(origin: origin, partition: UInt32(settings.partitioning.partition(of: delta.key)))
            let coalesced = link.withOutbox(stream) { $0.append(delta, now: now) }
            link.statistics.deltasCoalesced += UInt64(coalesced.folded)
            link.statistics.bytesSavedByCoalescing += UInt64(coalesced.bytes)
        }
        link.statistics.deltasEnqueued += UInt64(deltas.count)
        var actions: [FederationAction] = []
        let bytes = link.outboxBytes
        if bytes > settings.outboxLimitBytes {
            var dropped = 0
            for stream in Array(link.outboxes.keys) { dropped += link.withOutbox(stream) { $0.dropAll() } }
            link.statistics.outboxOverflows += 1
            link.statistics.deltasDropped += UInt64(dropped)
            link.needsResync = true
            link.round?.overflowed = true
            actions.append(
                .log(
                    FederationLog(
                        .error, "outbox over its limit: deltas dropped, link needs resync (anti-entropy repairs it when the site is reachable)",
                        ["site": settings.name(of: site), "dropped_deltas": "\(dropped)", "outbox_bytes": "\(bytes)", "limit_bytes": "\(settings.outboxLimitBytes)"]
                    )
                )
            )
        }
        return actions
    }

    /// Sends the batches that are due: everything pending once per `batchIntervalMilliseconds`
    /// per link, or a stream's pending deltas as soon as they reach `batchBytes`; starts
    /// periodic anti-entropy.
    public mutating func tick(now: UInt64) -> [FederationAction] {
        var actions: [FederationAction] = []
        for site in settings.linkedSites {
            actions += flush(site, now: now, force: false)
            actions += roundsDue(with: site, now: now)
        }
        return actions
    }

    /// A round that went silent is abandoned, keeping the partitions it compared to the end
    /// (one partition without a primary at the other site must not hold back the others); a
    /// new one starts when the link needs a resync, the interval elapsed, or this node leads
    /// partitions no round covered yet (those a silent round left among them).
    mutating func roundsDue(with site: SiteID, now: UInt64) -> [FederationAction] {
        guard var link = links[site], link.connected, !link.offline else { return [] }
        if let round = link.round {
            guard now >= round.lastProgressAt + Self.roundSilenceMilliseconds else { return [] }
            link.round = nil
            link.needsResync = round.overflowed
            link.synchronizedPartitions.formUnion(round.answeredPartitions.intersection(ledPartitions))
            links[site] = link
            return [
                .log(
                    FederationLog(
                        .warning, "anti-entropy round unanswered: comparing the unanswered partitions again",
                        [
                            "site": settings.name(of: site), "round": "\(round.id)", "awaiting_partitions": "\(round.awaitingLeaves.sorted())",
                            "outstanding_chunks": "\(round.outstandingChunks.count)",
                        ]
                    )
                )
            ]
        }
        let interval = settings.antiEntropyIntervalMilliseconds
        if link.needsResync || (interval > 0 && (link.lastRoundFinishedAt.map { now >= $0 + interval } ?? false)) {
            return startRound(with: site, reason: link.needsResync ? "needs-resync" : "periodic", now: now)
        }
        let uncovered = ledPartitions.subtracting(link.synchronizedPartitions)
        guard !uncovered.isEmpty else { return [] }
        return startRound(with: site, reason: link.everSynchronized ? "new primaries" : "unanswered partitions", now: now, partitions: uncovered)
    }

    mutating func flush(_ site: SiteID, now: UInt64, force: Bool) -> [FederationAction] {
        guard links[site]?.connected == true, links[site]?.offline == false, var link = links.removeValue(forKey: site) else { return [] }
        defer { links[site] = link }
        var actions: [FederationAction] = []
        let intervalElapsed = now >= link.lastFlushAt + settings.batchIntervalMilliseconds
        if intervalElapsed { link.lastFlushAt = now }
        for stream in link.outboxes.keys.sorted() {
            while true {
                let resending = link.outboxes[stream]!.isResending
                // Pending deltas leave every batch interval (so one waits at most an interval),
                // or as soon as they fill a batch.
                let pending = (count: link.outboxes[stream]!.pendingCount, bytes: link.outboxes[stream]!.pendingBytes)
                let due = resending || force || pending.bytes >= settings.batchBytes || (intervalElapsed && pending.count > 0)
                guard due, let batch = link.withOutbox(stream, { $0.nextBatch(maximumBytes: settings.batchBytes) }) else { break }
                link.statistics.batchesSent += 1
                link.statistics.deltasSent += UInt64(batch.deltas.count)
                if resending { link.statistics.deltasResent += UInt64(batch.deltas.count) }
                actions.append(
                    .send(
                        .outbound(site),
                        .deltaBatch(
                            DeltaBatch(
                                originSite: stream.origin, senderSite: settings.localSite, partition: stream.partition,
                                firstSequence: batch.firstSequence, deltas: batch.deltas
                            )
                        )
                    )
                )
            }
            // Outboxes are kept when empty: sequence numbers continue (the receiver drops repeats).
        }
        return actions
    }

    // MARK: Incoming messages

    /// Handles a message that arrived on `connection`. Delta batches are merged into `store`
    /// before they are acknowledged; anti-entropy messages read and repair `store`.
    public mutating func receive(
        _ message: FederationMessage, on connection: FederationConnection, store: inout some AntiEntropyStore, now: UInt64
    ) -> [FederationAction] {
        let site = connection.site
        guard links[site] != nil else {
            return [.close(connection, reason: "site \(site.rawValue) is not linked with this site")]
        }
        switch (message, connection) {
        case (.deltaBatch(let batch), .inbound(_, let node)):
            return receiveBatch(batch, from: site, node: node, store: &store, now: now)
        case (.deltaBatchAck(let ack), .outbound):
            let stream = StreamID(origin: ack.originSite, partition: ack.partition)
            let released = links[site]?.withOutbox(stream) { $0.acknowledge(upTo: ack.sequence) } ?? 0
            links[site]?.statistics.deltasAcknowledged += UInt64(released)
            return []
        case (.merkleLeavesRequest, .inbound), (.bucketDigests, .inbound):
            return receiveRoundRequest(message, on: connection, store: &store)
        case (.keyStates(_, let records), .inbound):
            return mergeStates(records, from: site, store: &store, now: now)
        case (.merkleLeaves(let round, let partitions), .outbound):
            guard isCurrentRound(site, round) else { return [] }
            return compareLeaves(partitions, with: site, store: &store, now: now)
        case (.bucketRepair(let repair), .outbound):
            guard isCurrentRound(site, repair.round) else { return [] }
            return applyRepair(repair, from: site, store: &store, now: now)
        case (.collectionCheck(let round, let keys), .inbound):
            return answerCollectionCheck(round: round, keys, on: connection, store: &store)
        case (.collectionVote(let round, let agreed, let partitions), .outbound):
            return receiveCollectionVote(round: round, agreed: agreed, partitions: partitions, from: site, store: &store, now: now)
        case (.collectionCommit(let keys), .inbound):
            return receiveCollectionCommit(keys, store: &store, now: now)
        default:
            return [Self.unexpected(message.kind, on: connection)]
        }
    }

    /// A frame of kind `kind` that has no place on `connection` (a message meant for the other
    /// direction, or a frame that belongs to the handshake or inside a site): the connection
    /// closes, the node goes on.
    public static func unexpected(_ kind: String, on connection: FederationConnection) -> FederationAction {
        .close(connection, reason: "unexpected \(kind) frame on the \(connection) connection")
    }

    mutating func receiveBatch(_ batch: DeltaBatch, from site: SiteID, node: String, store: inout some AntiEntropyStore, now: UInt64) -> [FederationAction] {
        let connection = FederationConnection.inbound(site, node: node)
        guard batch.senderSite == site else {
            return [.close(connection, reason: "batch claims sender site \(batch.senderSite.rawValue) on a connection from site \(site.rawValue)")]
        }
        guard settings.sites[batch.originSite] != nil, batch.originSite != settings.localSite else {
            return [.close(connection, reason: "batch from origin site \(batch.originSite.rawValue), which is not a remote site of this topology")]
        }
        guard Int(batch.partition) < settings.partitioning.partitionCount else {
            return [.close(connection, reason: "batch for partition \(batch.partition), this federation has \(settings.partitioning.partitionCount)")]
        }
        guard !batch.deltas.isEmpty else { return [] }
        guard var sender = links[site]!.senders[node] else {
            return [.close(connection, reason: "batch from node \(node) before its handshake")]
        }
        let stream = StreamID(origin: batch.originSite, partition: batch.partition)
        let received = sender.received(stream)
        let last = batch.firstSequence + UInt64(batch.deltas.count) - 1
        var actions: [FederationAction] = []
        links[site]!.statistics.batchesReceived += 1
        guard last > received else {
            links[site]!.statistics.duplicateBatches += 1
            // Acknowledged again only once merged: a repeat of a batch still merging is
            // acknowledged when that merge reports.
            if (sender.applied[stream] ?? 0) >= last {
                actions.append(.send(connection, .deltaBatchAck(DeltaBatchAck(originSite: batch.originSite, partition: batch.partition, sequence: last))))
            }
            return actions
        }
        if batch.firstSequence > received + 1 && received > 0 {
            links[site]!.statistics.sequenceGaps += 1
            actions.append(
                .log(
                    FederationLog(
                        .warning, "gap in a delta stream (the sender dropped an overflowing outbox); anti-entropy repairs it",
                        ["site": settings.name(of: site), "origin": settings.name(of: batch.originSite), "partition": "\(batch.partition)", "expected": "\(received + 1)", "received": "\(batch.firstSequence)"]
                    )
                )
            )
        }
        let skip = received >= batch.firstSequence ? Int(received - batch.firstSequence + 1) : 0
        let fresh = Array(batch.deltas[skip...])
        links[site]!.statistics.deltasReceived += UInt64(fresh.count)
        sender.merging[stream, default: []].append((last: last, done: false, deltas: fresh))
        links[site]!.senders[node] = sender
        let remote = RemoteBatch(site: site, node: node, incarnation: sender.incarnation, stream: stream, last: last, deltas: fresh)
        if mergesAtPrimaries { return actions + [.merge(remote)] }
        actions += mergeRemote(fresh, from: site, store: &store, now: now)
        return actions + remoteBatchMerged(remote, now: now)
    }

    /// Merges another site's deltas into `store` (this node is their partition's primary, or
    /// the only node of its site): keyspace events for what changed, conflicts counted.
    public mutating func mergeRemote(_ deltas: [Delta], from site: SiteID, store: inout some AntiEntropyStore, now: UInt64) -> [FederationAction] {
        var actions: [FederationAction] = []
        var events: [KeyspaceEvent] = []
        for delta in deltas {
            let outcome = store.merge(delta, now: now)
            if outcome.changed { events += KeyspaceEvent.merged(delta) }
            actions += conflicts(outcome, key: delta.key, from: site)
        }
        if !events.isEmpty { actions.append(.notify(events)) }
        return actions
    }

    /// A batch handed out with `.merge` is merged and replicated in this site: acknowledged
    /// (with every earlier batch of its stream that merged), and forwarded where this site
    /// is a hub.
    public mutating func remoteBatchMerged(_ batch: RemoteBatch, now: UInt64) -> [FederationAction] {
        guard var sender = links[batch.site]?.senders[batch.node], sender.incarnation == batch.incarnation,
            var queue = sender.merging[batch.stream],
            let index = queue.firstIndex(where: { $0.last == batch.last && !$0.done })
        else { return [] }
        queue[index].done = true
        var actions: [FederationAction] = []
        var acknowledged: UInt64?
        while let first = queue.first, first.done {
            queue.removeFirst()
            sender.applied[batch.stream] = max(sender.applied[batch.stream] ?? 0, first.last)
            acknowledged = sender.applied[batch.stream]
            for target in settings.forwardTargets(origin: batch.stream.origin, sender: batch.site) {
                actions += append(first.deltas, origin: batch.stream.origin, to: target, now: now)
            }
        }
        sender.merging[batch.stream] = queue.isEmpty ? nil : queue
        links[batch.site]!.senders[batch.node] = sender
        if let acknowledged {
            let ack = DeltaBatchAck(originSite: batch.stream.origin, partition: batch.stream.partition, sequence: acknowledged)
            actions.append(.send(.inbound(batch.site, node: batch.node), .deltaBatchAck(ack)))
        }
        return actions
    }

    /// A batch handed out with `.merge` could not be merged (its partition has no primary
    /// within the runtime's bound): the connection closes, so that the sender sends again
    /// everything it has not seen acknowledged.
    public mutating func remoteBatchFailed(_ batch: RemoteBatch, reason: String) -> [FederationAction] {
        guard links[batch.site]?.senders[batch.node]?.incarnation == batch.incarnation else { return [] }
        links[batch.site]!.senders[batch.node]!.merging = [:]
        return [.close(.inbound(batch.site, node: batch.node), reason: "deltas not merged, the sender sends them again: \(reason)")]
    }

    /// Anti-entropy changed keys here with data from `site`. Sites that only hear about `site`
    /// through this one (a hub's other spokes) get those keys by a resync of their link: repairs
    /// are states, not deltas, so they are not forwarded in outboxes.
    mutating func markForwardResync(repairedFrom site: SiteID) {
        for target in settings.forwardTargets(origin: site, sender: site) {
            links[target]?.needsResync = true
            links[target]?.round?.overflowed = true
        }
    }

    /// Counts and logs the conflicts a merge resolved (both dots, DESIGN.md §2.3 rule 3).
    mutating func conflicts(_ outcome: MergeOutcome, key: [UInt8], from site: SiteID) -> [FederationAction] {
        var actions: [FederationAction] = []
        for event in outcome.events {
            switch event {
            case .concurrentWrites(let element, let winner, let loser):
                let policy = settings.policies.policy(for: DatabaseKeys.unscoped(key)).conflictName
                links[site]?.statistics.conflicts[policy, default: 0] += 1
                actions.append(
                    .log(
                        FederationLog(
                            .info, "concurrent writes resolved",
                            ["key": Self.printable(key), "element": "\(element)", "winner": "\(winner)", "loser": "\(loser)", "policy": policy]
                        )
                    )
                )
            case .discardedByDelete(let element, let discarded, let deletes):
                links[site]?.statistics.conflicts["delete-wins", default: 0] += 1
                actions.append(
                    .log(
                        FederationLog(
                            .info, "write concurrent with a delete discarded",
                            ["key": Self.printable(key), "element": "\(element)", "discarded": "\(discarded)", "deletes": "\(deletes)", "policy": "delete-wins"]
                        )
                    )
                )
            }
        }
        return actions
    }

    static func printable(_ key: [UInt8]) -> String {
        String(decoding: key.prefix(200), as: UTF8.self)
    }
}

extension Keyspace: AntiEntropyStore {}
