import Federation
import NIOCore
import Replication
import SessionModel
import Wire

/// What other sites send to a site of several nodes (DESIGN.md §1: "remote site: route by
/// key → its own partition primary → merge → replicate synchronously in that site → ack"):
/// the node a link reached hands each batch of deltas, and each set of key states an
/// anti-entropy round brought, to the primary of its partition, which merges it and
/// replicates it to its backups like a write; only then is a batch acknowledged to the
/// sending site. Merged on whichever node received it, a remote write would be invisible to
/// the site's readers and lost with that node. Anti-entropy requests are answered by the
/// primaries too: one node holds only some partitions.
extension DataPlane {
    /// Another site's deltas or key states for the primary of `partition`.
    struct RemoteMerge {
        var partition: Int
        var site: SiteID
        var deltas: [Delta] = []
        var states: [TransferredKey] = []
        var collect: [KeyDigest] = []
    }

    /// A batch the federation core handed out (`FederationAction.merge`): merged at its
    /// partition's primary, then acknowledged (or the link closed, so that it comes again).
    func mergeRemote(_ batch: RemoteBatch) {
        routeMerge(RemoteMerge(partition: Int(batch.stream.partition), site: batch.site, deltas: batch.deltas)) { failure in
            guard let transport = self.state.transport, self.state.federation != nil else { return }
            if let failure {
                transport.perform(self.state.federation!.remoteBatchFailed(batch, reason: failure))
            } else {
                transport.perform(self.state.federation!.remoteBatchMerged(batch, now: WallClock.nowMilliseconds()))
            }
        }
    }

    /// Key states an anti-entropy round brought (`FederationAction.mergeStates`): merged at
    /// their partition's primary. One that finds no primary is left to the next round.
    func mergeRepair(_ repair: StateRepair) {
        let states = repair.states.map { TransferredKey(key: $0.key, state: $0.state) }
        routeMerge(RemoteMerge(partition: Int(repair.partition), site: repair.site, states: states)) { failure in
            guard let failure else { return }
            self.logger.warning(
                "anti-entropy repair not merged: the next round repairs it",
                metadata: ["partition.id": "\(repair.partition)", "site.remote": "\(repair.site)", "keys": "\(repair.states.count)", "reason": "\(failure)"]
            )
        }
    }

    /// Keys every site agreed to collect (`FederationAction.collectAtPrimary`): dropped by their
    /// partition's primary and its backups. One that finds no primary stays for a later round.
    func collectAtPrimary(_ collection: CollectionAtPrimary) {
        guard let site = state.federation?.settings.localSite else { return }
        routeMerge(RemoteMerge(partition: Int(collection.partition), site: site, collect: collection.keys)) { failure in
            guard let failure else { return }
            self.logger.info(
                "collected keys not dropped: a later round collects them",
                metadata: ["partition.id": "\(collection.partition)", "keys": "\(collection.keys.count)", "reason": "\(failure)"]
            )
        }
    }

    /// Merges `merge` here when this node is the partition's primary, else at that primary;
    /// routed again on a newer map for at most `routeDeadlineMilliseconds`. `finished` gets
    /// nil once every in-sync backup holds it, or why it could not be merged.
    func routeMerge(_ merge: RemoteMerge, deadline: UInt64? = nil, finished: @escaping (String?) -> Void) {
        let deadline = deadline ?? WallClock.monotonicMilliseconds() + Self.routeDeadlineMilliseconds
        let again = { self.routeMerge(merge, deadline: deadline, finished: finished) }
        toPrimary(
            of: merge.partition, deadline: deadline, unlockedOnly: true, again: again,
            giveUp: { finished("partition \(merge.partition) had no primary that could merge them for \(Self.routeDeadlineMilliseconds) ms") },
            here: { self.mergeAsPrimary(merge) { merged in merged ? finished(nil) : again() } },
            there: { owner, request, retry in
                let frame = Frame.remoteDeltas(
                    RemoteDeltas(
                        request: request, partition: UInt32(merge.partition), fromSite: merge.site, deltas: merge.deltas, states: merge.states, collect: merge.collect
                    )
                )
                guard let transport = self.transport, transport.sendData(frame, to: owner) else { return false }
                self.forwards[request] = Forward(target: owner, sentAt: WallClock.monotonicMilliseconds(), retry: retry) { reply in
                    if case .value(let error) = reply { finished("\(error)") } else { finished(nil) }
                }
                return true
            }
        )
    }

    /// Runs `here` when this node may act as primary of `partition` (and, with `unlockedOnly`,
    /// no cross-node command holds it), else asks `there` to send the work to the map's
    /// primary under a fresh request number (false: it could not leave). Without a primary to
    /// reach, `again` runs every `routeRetryMilliseconds` until `deadline`, then `giveUp`.
    func toPrimary(
        of partition: Int, deadline: UInt64, unlockedOnly: Bool, again: @escaping () -> Void, giveUp: @escaping () -> Void,
        here: () -> Void, there: (_ owner: String, _ request: UInt64, _ retry: @escaping () -> Void) -> Bool
    ) {
        if actsAsPrimary(of: [partition], now: WallClock.monotonicMilliseconds()) && !(unlockedOnly && isLocked([partition])) {
            return here()
        }
        let retry = {
            guard WallClock.monotonicMilliseconds() < deadline else { return giveUp() }
            self.eventLoop.scheduleTask(in: .milliseconds(Self.routeRetryMilliseconds)) { again() }
        }
        guard let owner = state.controlPlane?.raft.map.partitions[partition].primary, owner != nodeName else { return retry() }
        let request = nextRequest
        nextRequest += 1
        if !there(owner, request, retry) { retry() }
    }

    /// Merges another site's deltas or key states into this node's primary copy of the
    /// partition and replicates them to its backups; `done(true)` once every in-sync backup
    /// holds them, `done(false)` when this node's primary role ended first (merge them
    /// elsewhere).
    func mergeAsPrimary(_ merge: RemoteMerge, done: @escaping (Bool) -> Void) {
        guard state.federation != nil else { return done(false) }
        let now = WallClock.nowMilliseconds()
        var actions = state.federation!.mergeRemote(merge.deltas, from: merge.site, store: &state.keyspace, now: now)
        if !merge.states.isEmpty {
            let records = merge.states.map { KeyStateRecord(key: $0.key, state: $0.state) }
            actions += state.federation!.mergeRepairs(records, from: merge.site, store: &state.keyspace, now: now)
        }
        let collected = state.federation!.collectHere(merge.collect, store: &state.keyspace, now: now)
        actions += collected.actions
        // The backups merge the same deltas and states (a join) and drop the same collected
        // keys: they end with the primary's state.
        let waits = submit(PartitionedWrites(partition: merge.partition, ReplicatedWrite(deltas: merge.deltas, states: merge.states, collectedKeys: collected.dropped)))
        whenCommitted(waits, then: {
            // Keyspace events and conflict logs once the merge holds in the site.
            self.state.transport?.perform(actions)
            done(true)
        }, otherwise: { _ in done(false) })
    }

    /// Another node of this site forwarded a remote batch, or repairs, for a partition this
    /// node leads.
    func receivedRemoteDeltas(_ batch: RemoteDeltas, from peer: String, on channel: Channel) {
        let partition = Int(batch.partition)
        func reply(notPrimary: Bool) {
            transport?.sendReply(.remoteDeltasApplied(RemoteDeltasApplied(request: batch.request, notPrimary: notPrimary)), on: channel)
        }
        guard partition < partitioning.partitionCount, actsAsPrimary(of: [partition], now: WallClock.monotonicMilliseconds()), !isLocked([partition]) else {
            return reply(notPrimary: true)
        }
        // Only keys of the partition this node leads are dropped here (a peer's mistake must not
        // drop keys of a partition this node only backs up).
        let collect = batch.collect.filter { partitioning.partition(of: $0.key) == partition }
        let merge = RemoteMerge(partition: partition, site: batch.fromSite, deltas: batch.deltas, states: batch.states, collect: collect)
        mergeAsPrimary(merge) { merged in reply(notPrimary: !merged) }
    }

    // MARK: Anti-entropy requests of other sites

    /// Another site's request about one partition (`FederationAction.answerAtPrimary`):
    /// answered here when this node leads the partition, else by its primary, and sent on the
    /// link it came by. One that finds no primary is dropped: the other site's round goes
    /// silent and starts again.
    func answerRemoteRound(_ request: RoundRequest, deadline: UInt64? = nil) {
        let deadline = deadline ?? WallClock.monotonicMilliseconds() + Self.routeDeadlineMilliseconds
        let partition = Int(request.partition)
        func send(_ answers: [FederationMessage]) {
            guard let transport = state.transport, state.federation != nil else { return }
            transport.perform(state.federation!.sendAnswers(answers, on: request.connection))
        }
        let again = { self.answerRemoteRound(request, deadline: deadline) }
        toPrimary(
            of: partition, deadline: deadline, unlockedOnly: false, again: again,
            giveUp: {
                self.logger.warning(
                    "anti-entropy request of another site unanswered: its partition has no primary",
                    metadata: ["partition.id": "\(partition)", "connection": "\(request.connection)"]
                )
            },
            here: { self.answerAsPrimary(request.message, partition: partition) { answers in if let answers { send(answers) } else { again() } } },
            there: { owner, id, retry in
                let frame = Frame.remoteRoundRequest(RemoteRoundRequest(request: id, partition: request.partition, fromSite: request.connection.site, message: request.message))
                guard let transport = self.transport, transport.sendData(frame, to: owner) else { return false }
                self.roundRequests[id] = RoundForward(target: owner, sentAt: WallClock.monotonicMilliseconds(), retry: retry, answered: send)
                return true
            }
        )
    }

    /// The answers to an anti-entropy request from this node's primary copy of `partition`,
    /// once every write they can show is committed (nil: the primary role ended first).
    func answerAsPrimary(_ request: FederationMessage, partition: Int, done: @escaping ([FederationMessage]?) -> Void) {
        guard state.federation != nil else { return done(nil) }
        var request = request
        // A vote covers the keys of the partition this node leads, nothing else.
        if case .collectionCheck(let round, let keys) = request {
            request = .collectionCheck(round: round, keys.filter { partitioning.partition(of: $0.key) == partition })
        }
        let answers = state.federation!.answer(request, store: &state.keyspace)
        whenWritesSoFarCommitted(partition, then: { done(answers) }, otherwise: { done(nil) })
    }

    /// Calls `then` once every write of `partition` this node numbered so far is committed, or
    /// `otherwise` if its primary role ends first. What leaves the site must not show a write
    /// a failover could lose.
    func whenWritesSoFarCommitted(_ partition: Int, then: @escaping () -> Void, otherwise: @escaping () -> Void) {
        guard let primary = copies.primaries[partition] else { return otherwise() }
        let waits = primary.committedSequence < primary.readBarrier ? [(partition: partition, sequence: primary.readBarrier)] : []
        whenCommitted(waits, then: then, otherwise: { _ in otherwise() })
    }

    /// Another node of this site forwarded a request of another site about a partition this
    /// node leads. Each answer frame goes in a message of its own (one bucket's states may
    /// fill a frame); the sender knows the answer is complete at its last frame.
    func receivedRemoteRoundRequest(_ request: RemoteRoundRequest, from peer: String, on channel: Channel) {
        let partition = Int(request.partition)
        // No messages and `notPrimary` when this node does not (or no longer) lead the partition.
        func reply(_ messages: [FederationMessage]?) {
            let answers = messages.map { $0.map { RemoteRoundAnswer(request: request.request, notPrimary: false, messages: [$0]) } }
            for answer in answers ?? [RemoteRoundAnswer(request: request.request, notPrimary: true, messages: [])] {
                transport?.sendReply(.remoteRoundAnswer(answer), on: channel)
            }
        }
        guard partition < partitioning.partitionCount, actsAsPrimary(of: [partition], now: WallClock.monotonicMilliseconds()) else {
            return reply(nil)
        }
        answerAsPrimary(request.message, partition: partition, done: reply)
    }

    /// The primary answered a forwarded anti-entropy request: the answers go to the other
    /// site, or (not primary any more) the request is routed again.
    func remoteRoundAnswered(_ answer: RemoteRoundAnswer, from peer: String) {
        guard let forward = roundRequests[answer.request], forward.target == peer else { return }
        if answer.notPrimary {
            roundRequests[answer.request] = nil
            return forward.retry()
        }
        if answer.messages.contains(where: \.endsRoundAnswer) {
            roundRequests[answer.request] = nil
        } else {
            roundRequests[answer.request]?.sentAt = WallClock.monotonicMilliseconds()
        }
        forward.answered(answer.messages)
    }
}

extension FederationMessage {
    /// The last message of an answer to an anti-entropy request: a partition's leaves, or the
    /// last repair of a chunk.
    var endsRoundAnswer: Bool {
        switch self {
        case .merkleLeaves, .collectionVote: return true
        case .bucketRepair(let repair): return repair.last
        default: return false
        }
    }
}
