import ControlPlane
import Federation
import Keyspace
import Logging
import NIOCore
import RESP
import Replication
import SessionModel
import Wire

/// What a routed command answers: a value to encode for the client, or bytes a primary on
/// another node already encoded for it.
enum RoutedReply {
    case value(RESPValue)
    case encoded([UInt8])
}

/// The data plane of a node that shares its site with others (DESIGN.md §3): it follows the
/// committed cluster map — this node's partitions as primary (`PartitionPrimary`) or backup
/// (`PartitionBackup`) — runs commands on the partitions it may act as primary of, forwards
/// the others to their primary over the peer connections, and replicates every write to the
/// partition's backups before its reply leaves. Confined to the node's event loop, like
/// `NodeState`.
final class DataPlane: @unchecked Sendable {
    let state: NodeState
    let logger: Logger
    let partitioning: Partitioning
    let nodeName: String
    /// The partitions this node holds, as primary or backup.
    var copies: PartitionCopies
    /// Per partition this node leads: commands waiting for a commit, in sequence order.
    var waiting: [Int: [(sequence: UInt64, commit: UInt64)]] = [:]
    /// The map index this node's copies follow.
    var followedIndex: UInt64?
    var forwards: [UInt64: Forward] = [:]
    /// Names of the commands other nodes forward here, resolved once.
    var resolver = CommandResolver()
    /// Other sites' anti-entropy requests forwarded to their partition's primary.
    var roundRequests: [UInt64: RoundForward] = [:]
    var nextRequest: UInt64 = 1
    var commits: [UInt64: PendingCommit] = [:]
    var nextCommit: UInt64 = 1
    var timer: RepeatedTask?
    var counters = Counters()
    /// Partitions locked here for a cross-node command, and the ones this node coordinates.
    var locks: [Int: HeldLock] = [:]
    var transactions: [UInt64: CrossNodeTransaction] = [:]
    var nextTransaction: UInt64 = 1
    /// Keyless commands this node is answering for the whole site.
    var queries: [UInt64: SiteQuery] = [:]
    /// Deltas this node's backup copies applied, shipped again if one is promoted.
    lazy var federationTail = FederationTail(partitionCount: partitioning.partitionCount)
    /// Nodes of the site whose clients subscribe to something.
    var listeningPeers: Set<String> = []
    /// What this node last told the others about its own subscribers.
    var announcedListening = false

    /// A command forwarded to a primary may take this long before the client is told its
    /// outcome is unknown (the primary died or was cut off with it).
    static let forwardTimeoutMilliseconds: UInt64 = 5_000
    /// A command whose partition has no reachable primary (a failover is under way) is
    /// routed again this often, for at most `routeDeadlineMilliseconds`, then answered
    /// `-TRYAGAIN`: a failover takes one to two seconds.
    static let routeRetryMilliseconds: Int64 = 20
    static let routeDeadlineMilliseconds: UInt64 = 5_000
    static let tickInterval = TimeAmount.milliseconds(50)

    /// A command run here whose reply waits for commits in one or more partitions.
    struct PendingCommit {
        var remaining: Int
        let finish: () -> Void
        let fail: (RESPValue) -> Void
    }

    struct Forward {
        let target: String
        let sentAt: UInt64
        let retry: () -> Void
        let done: (RoutedReply) -> Void
    }

    /// An anti-entropy request of another site sent to its partition's primary; its answer
    /// frames are relayed to that site as they come.
    struct RoundForward {
        let target: String
        /// When it was sent, or its last answer frame relayed (an answer may take many).
        var sentAt: UInt64
        let retry: () -> Void
        let answered: ([FederationMessage]) -> Void
    }

    struct Counters {
        var forwarded: UInt64 = 0
        var forwardRetries: UInt64 = 0
        var tryAgainReplies: UInt64 = 0
        var unknownOutcomes: UInt64 = 0
        var transfersCompleted: UInt64 = 0
        /// Bytes of partition copies (state transfer) this node sent as a primary and received
        /// as a new backup: the weight of rebalancing, repairs and drains.
        var transferBytesSent: UInt64 = 0
        var transferBytesReceived: UInt64 = 0
        var writesReplicated: UInt64 = 0
        var writesApplied: UInt64 = 0
    }

    init(state: NodeState, logger: Logger) {
        self.state = state
        self.logger = logger
        partitioning = Partitioning(partitionCount: state.configuration.topology.defaults.partitions)
        nodeName = state.configuration.node.name
        copies = PartitionCopies(node: nodeName)
    }

    var eventLoop: EventLoop { state.eventLoop }
    var transport: PeerTransport? { state.controlPlane?.transport }

    func start() {
        timer = eventLoop.scheduleRepeatedTask(initialDelay: Self.tickInterval, delay: Self.tickInterval) { _ in self.tick() }
    }

    func stop() {
        timer?.cancel()
        timer = nil
    }

    // MARK: Following the map

    /// Brings this node's copies in line with the applied cluster map: new primaries start
    /// numbering writes, new backups copy their partition, copies given away are dropped.
    func followMap() {
        guard let controlPlane = state.controlPlane else { return }
        let map = controlPlane.raft.map
        guard map.appliedIndex != followedIndex else { return }
        followedIndex = map.appliedIndex
        let adopted = map.members[nodeName]?.incarnation == controlPlane.raft.id.incarnation
        perform(copies.follow(map.partitions, adopted: adopted, now: WallClock.monotonicMilliseconds()))
        reportCaughtUp()
    }

    /// Ends this node's time as primary of `partition`: writes still waiting for their
    /// commit get an error that says their outcome is unknown (the new primary may hold them).
    func failWaiting(_ partition: Int) {
        let waiters = waiting.removeValue(forKey: partition) ?? []
        for waiter in waiters {
            guard let pending = commits.removeValue(forKey: waiter.commit) else { continue }
            counters.unknownOutcomes += 1
            pending.fail(.error("ERR the partition's primary changed before this write was confirmed by its backups; it may or may not have been applied"))
        }
        if !waiters.isEmpty {
            logger.warning("writes unconfirmed at a change of primary", metadata: ["partition.id": "\(partition)", "writes": "\(waiters.count)"])
        }
    }

    /// Tells the control plane which copies hold their whole partition, and which primaries
    /// sealed for a handover have nothing left in flight. A partition locked by a cross-node
    /// transaction is not handed off yet: the lock was granted before the seal, and its
    /// writes may still come.
    func reportCaughtUp() {
        guard let controlPlane = state.controlPlane else { return }
        controlPlane.raft.caughtUpCopies = copies.caughtUpCopies
        let handedOff = copies.handedOffCopies.filter { locks[$0.partition] == nil }
        if handedOff != controlPlane.raft.handedOffCopies {
            controlPlane.raft.handedOffCopies = handedOff
            controlPlane.scheduleWakeup(now: WallClock.monotonicMilliseconds())
        }
    }

    // MARK: Routing

    /// Runs a data command for a client: here when this node may act as primary of every
    /// partition it touches, else at the primary they share. Calls `done` once (perhaps
    /// before returning). Keys are stored names already (`DatabaseKeys`); `database` is the
    /// client's, which the keyless commands list, count or clear.
    /// `command`: the name resolved, when the caller has it.
    func route(
        _ arguments: [[UInt8]], name: String, spec: CommandSpec, protocolVersion: RESPVersion, database: Int, command: DataCommand? = nil,
        deadline: UInt64? = nil, done: @escaping (RoutedReply) -> Void
    ) {
        let now = WallClock.monotonicMilliseconds()
        let deadline = deadline ?? now + Self.routeDeadlineMilliseconds
        let keys = spec.keys(in: arguments)
        guard let partitions = partitions(of: arguments, name: name, keys: keys) else {
            runSiteWide(arguments, name: name, database: database) { done(.value($0)) }
            return
        }
        if actsAsPrimary(of: partitions, now: now) && !isLocked(partitions) {
            if spec.flags.contains(.write), now < deadline, replicas(of: partitions) == .catchingUp {
                // Held, not refused: the copies that make up minInSync are being copied (a
                // node returned, or a failover cleared the in-sync set) and will be soon.
                let later = NIOLoopBound(done, eventLoop: eventLoop)
                eventLoop.scheduleTask(in: .milliseconds(Self.routeRetryMilliseconds)) {
                    self.route(arguments, name: name, spec: spec, protocolVersion: protocolVersion, database: database, command: command, deadline: deadline, done: later.value)
                }
                return
            }
            runAsPrimary(arguments, name: name, spec: spec, partitions: partitions, database: database, command: command) { done(.value($0)) }
            return
        }
        let retry = {
            guard WallClock.monotonicMilliseconds() < deadline else {
                self.counters.tryAgainReplies += 1
                done(.value(.error("TRYAGAIN the primary of this key's partition is changing; retry the command")))
                return
            }
            self.counters.forwardRetries += 1
            let later = NIOLoopBound(done, eventLoop: self.eventLoop)
            self.eventLoop.scheduleTask(in: .milliseconds(Self.routeRetryMilliseconds)) {
                self.route(arguments, name: name, spec: spec, protocolVersion: protocolVersion, database: database, command: command, deadline: deadline, done: later.value)
            }
        }
        guard let map = state.controlPlane?.raft.map else { return retry() }
        let owners = Set(partitions.map { map.partitions[$0].primary })
        guard owners.count == 1, let owner = owners.first! else {
            if owners.contains(nil) { return retry() }
            // Keys of several nodes: a small transaction over their primaries.
            runAcrossNodes(keys: keys, deadline: deadline, body: { scratch, now in
                scratch.execute(arguments, name: name, now: now) ?? CommandResult(reply: RedisError.unknownCommand(arguments))
            }, done: { done(.value($0)) })
            return
        }
        // This node, but without a valid lease yet (or any more): wait for the map.
        guard owner != nodeName else { return retry() }
        let request = nextRequest
        nextRequest += 1
        let command = ForwardedCommand(request: request, arguments: arguments, protocolVersion: UInt32(protocolVersion.rawValue), database: UInt32(database))
        guard let transport, transport.sendData(.forwardedCommand(command), to: owner) else {
            if arguments.reduce(0, { $0 + $1.count }) > Int(FrameCodec.maximumFrameBytes) - 1_024 {
                done(.value(.error("ERR command too large to forward to its partition's primary (the limit between nodes is \(FrameCodec.maximumFrameBytes) bytes)")))
                return
            }
            return retry()
        }
        counters.forwarded += 1
        forwards[request] = Forward(target: owner, sentAt: now, retry: retry, done: done)
    }

    /// Whether this node may act as primary of every partition now (lease and map agree,
    /// and its copy follows that epoch).
    func actsAsPrimary(of partitions: Set<Int>, now: UInt64) -> Bool {
        guard let raft = state.controlPlane?.raft else { return false }
        return partitions.allSatisfy { partition in
            guard let epoch = raft.actingPrimaryEpoch(of: partition, now: now), let copy = copies.primaries[partition] else { return false }
            // Sealed for a handover: commands wait (and then go to the next primary).
            return copy.epoch == epoch && !copy.sealed
        }
    }

    /// The partitions this node may act as primary of now.
    func actingPrimaries(now: UInt64 = WallClock.monotonicMilliseconds()) -> Set<Int> {
        Set(copies.primaries.keys.filter { actsAsPrimary(of: [$0], now: now) })
    }

    /// Runs a command on this node's primary copies and calls `done` with its reply once
    /// every partition it wrote (or could see writes of) committed.
    /// `command`: the name resolved, when the caller has it.
    func runAsPrimary(
        _ arguments: [[UInt8]], name: String, spec: CommandSpec, partitions: Set<Int>, database: Int, command: DataCommand? = nil,
        done: @escaping (RESPValue) -> Void
    ) {
        let outcome = executeAsPrimary(arguments, name: name, spec: spec, partitions: partitions, database: database, now: WallClock.nowMilliseconds(), command: command)
        whenCommitted(outcome.waits, then: {
            done(outcome.result.reply)
            self.publish(outcome.result)
        }, otherwise: done)
    }

    /// Redis's answer when `min-replicas-to-write` is not met.
    static let noReplicas = RESPValue.error("NOREPLICAS Not enough good replicas to write.")

    /// Whether `partitions` have the copies in sync (primary included) that `minInSync` asks
    /// for. A partition below it refuses writes and serves reads; one whose map names enough
    /// copies but some still catch up holds writes for a while (`catchUpWaitMilliseconds`)
    /// before refusing them, so that a returning node or a rebalancing move costs no error.
    enum Replicas {
        case enough
        case catchingUp
        case lacking
    }

    func replicas(of partitions: Set<Int>) -> Replicas {
        let minimum = state.configuration.topology.defaults.minInSync
        guard minimum > 1, let map = state.controlPlane?.raft.map else { return .enough }
        var result = Replicas.enough
        for partition in partitions where 1 + map.partitions[partition].inSync.count < minimum {
            if 1 + map.partitions[partition].backups.count < minimum { return .lacking }
            result = .catchingUp
        }
        return result
    }

    func lacksReplicas(_ partitions: Set<Int>) -> Bool { replicas(of: partitions) != .enough }

    /// How long a write to a partition whose copies catch up is held before `-NOREPLICAS`,
    /// when it came from another node: below that node's forward timeout.
    static let catchUpWaitMilliseconds: UInt64 = 4_000

    /// What a command run here as primary produced, and the commits its reply waits for.
    struct PrimaryOutcome {
        var result: CommandResult
        var waits: [(partition: Int, sequence: UInt64)]
    }

    /// Runs one command on this node's primary copies (the caller checked `actsAsPrimary`)
    /// and hands its writes to the partitions' backups. A write to a partition below
    /// `minInSync` is refused here, before it runs, whatever path brought it.
    func executeAsPrimary(
        _ arguments: [[UInt8]], name: String, spec: CommandSpec, partitions: Set<Int>, database: Int, now: UInt64, command: DataCommand? = nil
    ) -> PrimaryOutcome {
        if spec.flags.contains(.write), lacksReplicas(partitions) { return PrimaryOutcome(result: CommandResult(reply: Self.noReplicas), waits: []) }
        let result: CommandResult
        if let command {
            result = state.keyspace.execute(arguments, command: command, now: now, database: database)
        } else {
            result = state.keyspace.execute(arguments, name: name, now: now, database: database) ?? CommandResult(reply: RedisError.unknownCommand(arguments))
        }
        let writes = writes(result.deltas, expired: state.keyspace.drainReleasedByExpiry())
        var waits = submit(writes)
        // A read waits for the writes it may have seen: answered before they commit, it could
        // show a value a failover then loses.
        for partition in partitions where writes[partition] == nil {
            guard let primary = copies.primaries[partition] else { continue }
            if primary.committedSequence < primary.readBarrier { waits.append((partition, primary.readBarrier)) }
        }
        return PrimaryOutcome(result: result, waits: waits)
    }

    /// A command's deltas and the keys its expiry released, as one write per partition.
    func writes(_ deltas: [Delta], expired: [[UInt8]] = []) -> PartitionedWrites {
        PartitionedWrites(deltas, expired: expired, partitioning: partitioning)
    }

    /// Numbers each partition's write and sends it to the backups; returns the commits to
    /// wait for (writes that committed at once need no wait).
    func submit(_ writes: PartitionedWrites) -> [(partition: Int, sequence: UInt64)] {
        let now = WallClock.monotonicMilliseconds()
        var waits: [(partition: Int, sequence: UInt64)] = []
        for (partition, write) in writes.entries {
            let (sequence, actions) = copies.submit(write, partition: partition, now: now)
            counters.writesReplicated += 1
            perform(actions)
            if let primary = copies.primaries[partition], primary.committedSequence < sequence { waits.append((partition, sequence)) }
        }
        return waits
    }

    /// Calls `then` once every wait is committed (at once when there is none), or `otherwise`
    /// with the error if a partition's primary role ends first.
    func whenCommitted(_ waits: [(partition: Int, sequence: UInt64)], then: @escaping () -> Void, otherwise: @escaping (RESPValue) -> Void) {
        guard !waits.isEmpty else { return then() }
        let id = nextCommit
        nextCommit += 1
        commits[id] = PendingCommit(remaining: waits.count, finish: then, fail: otherwise)
        for wait in waits { waiting[wait.partition, default: []].append((wait.sequence, id)) }
    }

    /// After a command's commit: keyspace events to this node's subscribers, deltas to the
    /// other sites (a delta leaves the site only once every in-sync backup holds it).
    func publish(_ result: CommandResult) {
        state.announce(result.events)
        state.replicate(result.deltas, now: WallClock.nowMilliseconds())
    }

    // MARK: Replication

    func perform(_ actions: [CopyAction]) {
        let now = WallClock.nowMilliseconds()
        for action in actions {
            switch action {
            case .discard(let partition):
                state.keyspace.discard(partition: partition)
                federationTail.forget(partition)
            case .becamePrimary(let partition, _):
                state.keyspace.scheduleExpiries(ofPartition: partition)
                resumeShipping(partition)
            case .stoppedPrimary(let partition):
                failWaiting(partition)
            case .primary(let partition, let epoch, .replicate(let backup, let first, let writes)):
                sendWrites(writes, firstSequence: first, partition: partition, epoch: epoch, to: backup)
            case .primary(let partition, let epoch, .sendChunk(let backup, let attempt, let chunk, let base, let keys, let last)):
                let records = keys.compactMap { key in state.keyspace.state(of: key).map { TransferredKey(key: key, state: $0) } }
                let frame = Frame.transferChunk(
                    TransferChunk(partition: UInt32(partition), epoch: epoch, attempt: attempt, chunk: chunk, baseSequence: base, keys: records, last: last)
                )
                if let bytes = transport?.sendDataCounted(frame, to: backup) {
                    counters.transferBytesSent += UInt64(bytes)
                } else if transport?.links[backup]?.phase == .connected {
                    logger.error("state transfer chunk over the frame limit: the copy cannot complete", metadata: ["partition.id": "\(partition)", "peer": "\(backup)"])
                }
            case .primary(let partition, _, .commit(let sequence)):
                release(partition, upTo: sequence)
                if copies.primaries[partition]?.sealed == true { reportCaughtUp() }
            case .backup(let partition, _, _, .discardPartition):
                state.keyspace.discard(partition: partition)
                federationTail.forget(partition)
            case .backup(_, _, _, .merge(let keys)):
                for key in keys { _ = state.keyspace.merge(state: key.state, key: key.key, now: now) }
            case .backup(let partition, _, _, .apply(let write)):
                counters.writesApplied += 1
                for delta in write.deltas { _ = state.keyspace.merge(delta, now: now) }
                for key in write.states { _ = state.keyspace.merge(state: key.state, key: key.key, now: now) }
                if let federation = state.federation {
                    federationTail.applied(write.deltas, partition: partition, site: federation.settings.localSite, now: WallClock.monotonicMilliseconds())
                }
                for key in write.expiredKeys { state.keyspace.releaseExpired(key) }
                for key in write.collectedKeys { state.keyspace.dropCollected(key, now: now) }
            case .backup(let partition, let epoch, let primary, .send(let message)):
                _ = transport?.sendData(.backupReport(BackupReport(partition: UInt32(partition), epoch: epoch, message: message)), to: primary)
            case .backup(let partition, let epoch, let primary, .reportCaughtUp):
                counters.transfersCompleted += 1
                logger.info("partition copy caught up", metadata: ["partition.id": "\(partition)", "epoch": "\(epoch)", "primary": "\(primary)"])
                reportCaughtUp()
            }
        }
    }

    /// This node became primary of `partition`: what it applied as backup may not have left
    /// the site yet (the old primary ships after the commit and may have died first), so it
    /// goes to the other sites again.
    func resumeShipping(_ partition: Int) {
        let deltas = federationTail.takeOver(partition)
        guard !deltas.isEmpty else { return }
        logger.info("shipping again what the old primary may not have shipped", metadata: ["partition.id": "\(partition)", "deltas": "\(deltas.count)"])
        state.replicate(deltas, now: WallClock.nowMilliseconds())
    }

    /// Sends writes in frames under the frame limit (a long resend is split).
    func sendWrites(_ writes: [ReplicatedWrite], firstSequence: UInt64, partition: Int, epoch: UInt64, to backup: String) {
        guard let transport, transport.links[backup]?.phase == .connected else { return }
        let frame = Frame.partitionWrites(PartitionWrites(partition: UInt32(partition), epoch: epoch, firstSequence: firstSequence, writes: writes))
        if transport.sendData(frame, to: backup) { return }
        guard writes.count > 1 else {
            logger.error("a write over the frame limit cannot reach a backup", metadata: ["partition.id": "\(partition)", "peer": "\(backup)", "sequence": "\(firstSequence)"])
            return
        }
        let half = writes.count / 2
        sendWrites(Array(writes[..<half]), firstSequence: firstSequence, partition: partition, epoch: epoch, to: backup)
        sendWrites(Array(writes[half...]), firstSequence: firstSequence + UInt64(half), partition: partition, epoch: epoch, to: backup)
    }

    /// Releases the commands waiting for commits up to `sequence` of `partition`.
    func release(_ partition: Int, upTo sequence: UInt64) {
        guard let queue = waiting[partition], !queue.isEmpty else { return }
        let ready = queue.prefix { $0.sequence <= sequence }
        waiting[partition]!.removeFirst(ready.count)
        for waiter in ready {
            guard var pending = commits[waiter.commit] else { continue }
            pending.remaining -= 1
            if pending.remaining == 0 {
                commits[waiter.commit] = nil
                pending.finish()
            } else {
                commits[waiter.commit] = pending
            }
        }
    }

    // MARK: Frames from other nodes of the site

    /// `channel`: the connection the frame came on; requests are answered on it.
    func received(_ frame: Frame, from peer: String, on channel: Channel) {
        let now = WallClock.monotonicMilliseconds()
        switch frame {
        case .forwardedCommand(let command):
            runForwarded(command, from: peer, on: channel)
        case .forwardedReply(let reply):
            forwardAnswered(reply.request, from: peer, notPrimary: reply.notPrimary, reply: reply.reply)
        case .partitionWrites(let batch):
            // Writes of another epoch are refused: an old primary's never count again, a new
            // one's are taken once this node follows the map that names it.
            perform(copies.receiveWrites(from: peer, partition: Int(batch.partition), epoch: batch.epoch, firstSequence: batch.firstSequence, writes: batch.writes, now: now))
        case .transferChunk(let chunk):
            perform(
                copies.receiveChunk(
                    from: peer, partition: Int(chunk.partition), epoch: chunk.epoch, attempt: chunk.attempt, chunk: chunk.chunk,
                    baseSequence: chunk.baseSequence, keys: chunk.keys, last: chunk.last, now: now
                )
            )
        case .backupReport(let report):
            let partition = Int(report.partition)
            guard partition >= 0, partition < partitioning.partitionCount else { return }
            perform(copies.receive(report.message, from: peer, partition: partition, epoch: report.epoch, keys: { self.state.keyspace.keys(inPartition: partition) }, now: now))
        case .siteMessages(let published, let events):
            for message in published { state.publish(channel: message.channel, message: message.message) }
            let local = events.compactMap { event in
                KeyspaceEvent.EventClass(rawValue: event.eventClass).map { KeyspaceEvent(event.name, key: event.key, eventClass: $0) }
            }
            state.notify(local)
        case .subscriberInterest(let listening):
            if listening { listeningPeers.insert(peer) } else { listeningPeers.remove(peer) }
        case .lockRequest, .lockReply, .transactionWrites, .transactionDone:
            receivedTransactionFrame(frame, from: peer, on: channel)
        case .partitionQuery(let query):
            answer(query) { self.transport?.sendReply(.partitionQueryReply($0), on: channel) }
        case .partitionQueryReply(let reply):
            queryAnswered(reply, from: peer)
        case .remoteDeltas(let batch):
            receivedRemoteDeltas(batch, from: peer, on: channel)
        case .remoteDeltasApplied(let reply):
            forwardAnswered(reply.request, from: peer, notPrimary: reply.notPrimary, reply: [])
        case .remoteRoundRequest(let request):
            receivedRemoteRoundRequest(request, from: peer, on: channel)
        case .remoteRoundAnswer(let answer):
            remoteRoundAnswered(answer, from: peer)
        default:
            logger.error("unexpected frame for the data plane", metadata: ["peer": "\(peer)", "frame": "\(frame.kind)"])
        }
    }

    /// The primary answered a forwarded command or remote batch: done, or (not primary any
    /// more) routed again on a newer map.
    func forwardAnswered(_ request: UInt64, from peer: String, notPrimary: Bool, reply: [UInt8]) {
        guard let forward = forwards.removeValue(forKey: request), forward.target == peer else { return }
        if notPrimary { forward.retry() } else { forward.done(.encoded(reply)) }
    }

    /// A command another node forwarded: run it if this node may act as primary of its
    /// partitions, else say so (the sender routes it again on its map).
    func runForwarded(_ command: ForwardedCommand, from peer: String, on channel: Channel, heldSince: UInt64? = nil) {
        let resolved = resolver.resolve(command.arguments[0], counts: &state.statistics.commands)
        let name = resolved.name
        let version = RESPVersion(rawValue: Int(command.protocolVersion)) ?? .v2
        func answer(_ value: RESPValue) {
            var buffer = ByteBufferAllocator().buffer(capacity: 64)
            RESPEncoder.encode(value, version: version, into: &buffer)
            var bytes = buffer.readBytes(length: buffer.readableBytes) ?? []
            if bytes.count > Int(FrameCodec.maximumFrameBytes) - 1_024 {
                var error = ByteBufferAllocator().buffer(capacity: 128)
                RESPEncoder.encode(.error("ERR reply too large to return through another node of the site; connect to the node that is primary of this key"), version: version, into: &error)
                bytes = error.readBytes(length: error.readableBytes) ?? []
            }
            transport?.sendReply(.forwardedReply(ForwardedReply(request: command.request, reply: bytes, notPrimary: false)), on: channel)
        }
        guard let spec = resolved.spec, let dataCommand = resolved.dataCommand, spec.acceptsArgumentCount(command.arguments.count) else {
            answer(RedisError.unknownCommand(command.arguments))
            return
        }
        let partitions = partitions(of: command.arguments, name: name, keys: spec.keys(in: command.arguments)) ?? []
        guard !partitions.isEmpty, actsAsPrimary(of: partitions, now: WallClock.monotonicMilliseconds()), !isLocked(partitions) else {
            transport?.sendReply(.forwardedReply(ForwardedReply(request: command.request, reply: [], notPrimary: true)), on: channel)
            return
        }
        if spec.flags.contains(.denyOOM) && state.keyspace.isOverMemoryLimit {
            state.statistics.rejectedForMemory += 1
            answer(RedisError.outOfMemory)
            return
        }
        if state.loading {
            answer(.error("LOADING sessionfed is recovering its data from the other sites of the federation"))
            return
        }
        if state.refusesDataWrite(spec) {
            // The sending node may still run an older topology (a role changed by a rolling
            // restart): this node's role decides.
            answer(ClientConnection.readOnly)
            return
        }
        let now = WallClock.monotonicMilliseconds()
        if spec.flags.contains(.write), now < (heldSince ?? now) + Self.catchUpWaitMilliseconds, replicas(of: partitions) == .catchingUp {
            eventLoop.scheduleTask(in: .milliseconds(Self.routeRetryMilliseconds)) {
                self.runForwarded(command, from: peer, on: channel, heldSince: heldSince ?? now)
            }
            return
        }
        if let slot = resolved.slot { state.statistics.commands.count(slot: slot) }
        runAsPrimary(command.arguments, name: name, spec: spec, partitions: partitions, database: Int(command.database), command: dataCommand, done: answer)
    }

    /// The connection to or from `peer` closed: commands forwarded to it may never be
    /// answered. Its word on its subscribers came on the connection it dialed (`inbound`
    /// here): it says again whether it listens when it reconnects.
    func linkLost(_ peer: String, inbound: Bool) {
        if inbound { listeningPeers.remove(peer) }
        releaseLocks(of: peer)
        for (request, query) in queries where query.waiting.contains(peer) {
            queryAnswered(PartitionQueryReply(request: request, notPrimary: true), from: peer)
        }
        for (id, transaction) in transactions where transaction.owners[peer] != nil {
            if transaction.applying?.contains(peer) == true {
                applyConfirmed(transaction: id, applied: false, from: peer)
            } else if transaction.applying == nil {
                lockReplied(LockReply(transaction: id, granted: false), from: peer)
            }
        }
        // Answers come back on the connection this node dialed: lost with it, another site's
        // round goes silent and starts again.
        if !inbound { roundRequests = roundRequests.filter { $0.value.target != peer } }
        let lost = forwards.filter { $0.value.target == peer }
        if !lost.isEmpty {
            logger.warning("commands forwarded to a peer lost with its connection: their outcome is unknown to the clients", metadata: [
                "peer": "\(peer)", "commands": "\(lost.count)",
                "oldest_ms": "\(WallClock.monotonicMilliseconds() - (lost.values.map(\.sentAt).min() ?? 0))",
            ])
        }
        for (request, forward) in lost {
            forwards[request] = nil
            counters.unknownOutcomes += 1
            forward.done(.value(.error("ERR the connection to the partition's primary (\(peer)) closed before it answered; the command may or may not have been applied")))
        }
    }

    // MARK: Timers

    func tick() {
        guard timer != nil else { return }
        state.timed("data plane tick") { tickNow() }
    }

    private func tickNow() {
        let now = WallClock.monotonicMilliseconds()
        // A sealed partition whose cross-node lock was released since is handed off now
        // (without a seal there is no hand-off to report).
        if copies.primaries.values.contains(where: \.sealed) { reportCaughtUp() }
        perform(copies.tick(now: now))
        federationTail.trimAll(now: now)
        expireTransactions(now: now)
        expireQueries(now: now)
        roundRequests = roundRequests.filter { now < $0.value.sentAt + Self.forwardTimeoutMilliseconds }
        for (request, forward) in forwards where now >= forward.sentAt + Self.forwardTimeoutMilliseconds {
            forwards[request] = nil
            counters.unknownOutcomes += 1
            forward.done(.value(.error("ERR the partition's primary (\(forward.target)) did not answer in time; the command may or may not have been applied")))
        }
    }

    /// The active expiry cycle on the partitions this node is primary of; what it releases
    /// goes to their backups like any write.
    func runExpiryCycle() {
        let acting = actingPrimaries()
        let events = state.keyspace.sweepExpired(now: WallClock.nowMilliseconds(), budget: state.configuration.expiryKeysPerCycle) { partition in
            acting.contains(partition) ? .now : self.copies.primaries[partition] != nil ? .later : .never
        }
        _ = submit(writes([], expired: state.keyspace.drainReleasedByExpiry()))
        state.announce(events)
    }

    // MARK: Pub/sub across the site

    /// Sends keyspace events raised here to the nodes whose clients subscribe.
    func broadcast(events: [KeyspaceEvent]) {
        guard !events.isEmpty, !listeningPeers.isEmpty else { return }
        let site = events.map { SiteKeyspaceEvent(name: $0.name, key: $0.key, eventClass: $0.eventClass.rawValue) }
        for peer in listeningPeers.sorted() { _ = transport?.sendData(.siteMessages(published: [], events: site), to: peer) }
    }

    /// Sends a PUBLISH made here to the nodes whose clients subscribe.
    func broadcast(published: PublishedMessage) {
        for peer in listeningPeers.sorted() { _ = transport?.sendData(.siteMessages(published: [published], events: []), to: peer) }
    }

    /// Subscriptions on this node changed: tell the other nodes when it starts or stops
    /// having subscribers.
    func subscribersChanged() {
        let listening = state.hasSubscribers
        guard listening != announcedListening else { return }
        announcedListening = listening
        for peer in state.configuration.site.nodes.map(\.name) where peer != nodeName {
            _ = transport?.sendData(.subscriberInterest(listening: listening), to: peer)
        }
    }

    /// This node's connection to `peer` is up: it learns whether this node listens.
    func linkUp(_ peer: String) {
        _ = transport?.sendData(.subscriberInterest(listening: state.hasSubscribers), to: peer)
    }

    // MARK: Status

    /// Per partition held here: role, epoch and replication lag (writes not acknowledged).
    func snapshot() -> [DataPlaneSnapshot.Copy] {
        var copies: [DataPlaneSnapshot.Copy] = []
        for (partition, primary) in self.copies.primaries {
            copies.append(
                DataPlaneSnapshot.Copy(
                    partition: partition, epoch: primary.epoch, role: "primary", caughtUp: true,
                    lastSequence: primary.lastSequence, committedSequence: primary.committedSequence,
                    lagWrites: primary.lagWrites, waitingCommands: waiting[partition]?.count ?? 0, primary: nodeName
                )
            )
        }
        for (partition, backup) in self.copies.backups {
            copies.append(
                DataPlaneSnapshot.Copy(
                    partition: partition, epoch: backup.epoch, role: "backup", caughtUp: backup.isCaughtUp,
                    lastSequence: backup.appliedSequence, committedSequence: backup.appliedSequence,
                    lagWrites: [:], waitingCommands: 0, primary: backup.primary
                )
            )
        }
        return copies.sorted { $0.partition < $1.partition }
    }
}

/// The data plane in `/status`: the copies this node holds and what its routing did.
public struct DataPlaneSnapshot: Codable, Sendable {
    public struct Copy: Codable, Sendable {
        public var partition: Int
        public var epoch: UInt64
        /// primary | backup
        public var role: String
        /// A backup that holds its whole partition (a primary always does).
        public var caughtUp: Bool
        /// Primary: the last write numbered; backup: the last applied.
        public var lastSequence: UInt64
        /// Primary: every in-sync backup applied up to here.
        public var committedSequence: UInt64
        /// Primary: per backup, writes it has not acknowledged (the replication lag).
        public var lagWrites: [String: UInt64]
        /// Primary: commands whose reply waits for a commit.
        public var waitingCommands: Int
        public var primary: String
    }

    public var copies: [Copy]
    /// Commands sent to another node's primary, retried on a new map, answered -TRYAGAIN,
    /// or whose outcome was unknown (their primary died with them).
    public var forwarded: UInt64
    public var forwardRetries: UInt64
    public var tryAgainReplies: UInt64
    public var unknownOutcomes: UInt64
    public var transfersCompleted: UInt64
    /// Bytes of partition copies sent (as primary) and received (as a new backup).
    public var transferBytesSent: UInt64
    public var transferBytesReceived: UInt64
    public var writesReplicated: UInt64
    public var writesApplied: UInt64
    public var forwardsInFlight: Int
    /// Deltas kept for a promotion (`FederationTail`), and how many its bound dropped.
    public var federationTailDeltas: Int
    public var federationTailDropped: UInt64
}

extension DataPlane {
    func summary() -> DataPlaneSnapshot {
        DataPlaneSnapshot(
            copies: snapshot(), forwarded: counters.forwarded, forwardRetries: counters.forwardRetries,
            tryAgainReplies: counters.tryAgainReplies, unknownOutcomes: counters.unknownOutcomes,
            transfersCompleted: counters.transfersCompleted,
            transferBytesSent: counters.transferBytesSent, transferBytesReceived: counters.transferBytesReceived, writesReplicated: counters.writesReplicated,
            writesApplied: counters.writesApplied, forwardsInFlight: forwards.count,
            federationTailDeltas: federationTail.deltaCount, federationTailDropped: federationTail.dropped
        )
    }
}
