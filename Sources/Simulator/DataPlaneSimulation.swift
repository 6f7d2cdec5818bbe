import ControlPlane
import Keyspace
import RESP
import Replication
import SessionModel
import Wire

/// A whole site — control plane and data plane — in one process, driven by one seed
/// (DESIGN.md §8). Every node runs the real `RaftNode`, `PartitionCopies` (primary and backup
/// state machines) and `Keyspace`; this type is their shell, as `DataPlane` is in a node:
/// it routes each client command to its partition's primary (forwarding over the simulated
/// network, retrying on a new map, `-TRYAGAIN` after a bound), holds replies until the
/// partition's backups acknowledged, and follows the committed map. Replication frames cross
/// the network through the real protobuf encoding.
///
/// Faults: loss, duplication, reordering, partitions, crashes with memory loss, restarts,
/// pauses (a frozen process: no timers, its messages wait) and clock drift. Clients on every
/// node write and read string keys and hash fields; checkers then require
/// - per-register linearizability of the recorded client history (so no acknowledged write
///   is lost: a final read of every register follows the faults);
/// - one writing primary per partition at a time: acknowledged writes of a partition come
///   from one node per epoch, and epochs never go back in real time;
/// - copies of a partition identical at rest, once the site has converged.
public struct DataPlaneSimulation {
    struct Node {
        var name: String
        var raft: RaftNode?
        var keyspace: Keyspace
        var copies: PartitionCopies
        var followed: UInt64?
        /// Entries its control-plane steps applied since the checkers last looked.
        var applied: [LogEntry] = []
        /// Per partition led here: requests waiting for a commit.
        var waiting: [Int: [(sequence: UInt64, request: RequestID)]] = [:]
        var pending: [RequestID: PendingReply] = [:]
        var driftPPM: Int64
        var downUntil: UInt64 = 0
        var pausedUntil: UInt64 = 0
        /// Leaving since then (a SIGTERM): it exits once it holds nothing, or at the bound.
        var drainingSince: UInt64?
        /// Exited after a drain: it starts again (a rolling restart) at `downUntil`.
        var restartsAfterDrain = false
        /// Not in the site: a listed node that has not run yet (scale-out), or one that left
        /// for good once its drain completed (scale-in). Faults and clients pass it by.
        var absent = false
        /// Its drain is a scale-in: once drained it does not come back.
        var leavesForGood = false
    }

    /// A client request: the node it arrived at and its number there.
    struct RequestID: Hashable {
        var node: String
        var number: UInt64
    }

    /// A reply waiting for commits, to go to `request.node`.
    struct PendingReply {
        var remaining: Int
        var reply: RESPValue
    }

    struct Client {
        var node: Int
        var operation: Operation?
        var nextAt: UInt64
    }

    /// A client operation in flight.
    struct Operation {
        var client: Int
        var request: RequestID
        var register: String
        var kind: RegisterOperation.Kind
        var arguments: [[UInt8]]
        var invokedAt: UInt64
        var sentAt: UInt64
        var deadline: UInt64
    }

    enum Payload {
        /// A frame (control plane or replication) through the real encoding.
        case frame(from: String, [UInt8])
        case forward(RequestID, arguments: [[UInt8]], from: String, deadline: UInt64)
        case reply(RequestID, RESPValue?, from: String)
    }

    /// A payload addressed to a node.
    struct Addressed {
        var to: String
        var payload: Payload
    }

    typealias InFlight = Scheduled<Addressed>

    public let options: SimulationOptions
    var nodes: [Node]
    var names: [String]
    var now: UInt64 = 0
    var inFlight = MinHeap<InFlight>()
    var sequence: UInt64 = 0
    var network: SeededGenerator
    var faults: SeededGenerator
    var workload: SeededGenerator
    var incarnationSource: SeededGenerator
    var blocked: Set<[String]> = []
    /// Per (from, to): when the last ordered message is delivered.
    var lastDelivery: [[String]: UInt64] = [:]
    var faultsOn = true
    var clients: [Client] = []
    var nextRequest: UInt64 = 1
    var nextValue = 1
    /// Event counter: invocations and replies are ordered by it, never by millisecond ties.
    var event: UInt64 = 0
    public private(set) var history: [String: [RegisterOperation]] = [:]
    /// Acknowledged writes per partition: when their primary accepted them (event), its epoch and name.
    var acknowledgedWrites: [Int: [(event: UInt64, epoch: UInt64, node: String)]] = [:]
    public internal(set) var controlPlaneCheckers = Checkers()
    public var outcome: SimulationOutcome
    public private(set) var acknowledged = 0
    public private(set) var tryAgain = 0
    public private(set) var unknown = 0
    /// With `tracing`: what happened, for a failing seed's story (`sessionfed simulate --trace`).
    public var tracing = false
    /// A box, so a line can be noted while the simulation is being changed.
    final class TraceLog {
        var lines: [String] = []
    }

    let traceLog = TraceLog()
    public var trace: [String] { traceLog.lines }

    func note(_ line: @autoclosure () -> String) {
        if tracing { traceLog.lines.append("t=\(now) e=\(event) \(line())") }
    }

    static let epoch: UInt64 = 1_700_000_000_000
    static let clientCount = 4
    static let stringKeys = ["session:a", "session:b", "cart:{1}", "user:7"]
    static let hashKeys = ["spring:session:sessions:1", "spring:session:sessions:2"]
    static let fields = ["lastAccessedTime", "sessionAttr:user"]
    /// A client gives up on a reply after this long (its outcome is then unknown).
    static let clientTimeoutMilliseconds: UInt64 = 6_000
    static let routeDeadlineMilliseconds: UInt64 = 3_000
    static let routeRetryMilliseconds: UInt64 = 5

    public init(options: SimulationOptions) {
        self.options = options
        var root = SeededGenerator(seed: options.seed ^ 0x6461_7461_706c_616e)
        network = root.split()
        faults = root.split()
        workload = root.split()
        incarnationSource = root.split()
        var drift = root.split()
        // Every run drains one node (a rolling restart's step) once the site is healthy
        // after this time, whatever else the faults do.
        plannedDrainAt = options.steps / 4 + root.next() % max(1, options.steps / 2)
        // Membership changes, from their own stream so that the other draws stay as they were:
        // a site of four or more runs its last two nodes as non-voters (scale-out capacity;
        // its voters are fixed, as a topology's are). The last one is listed but has never
        // run; it joins at a random time. In half the runs the planned drain is a scale-in: a
        // non-voter drains and leaves for good.
        var membership = SeededGenerator(seed: options.seed ^ 0x6a6f_696e_6c65_6176)
        joiner = options.nodes >= 4 ? options.nodes - 1 : nil
        nonVoters = options.nodes >= 4 ? [options.nodes - 2, options.nodes - 1] : []
        joinAt = joiner == nil ? nil : options.steps / 8 + membership.next() % max(1, options.steps / 2)
        plannedDrainLeaves = membership.next() % 2 == 0
        names = (1...options.nodes).map { "node-\($0)" }
        let partitioning = Partitioning(partitionCount: options.partitions)
        nodes = names.map { name in
            let ppm = options.maximumDriftPPM == 0 ? 0 : Int64(drift.next() % UInt64(2 * options.maximumDriftPPM + 1)) - options.maximumDriftPPM
            return Node(
                name: name, keyspace: Keyspace(configuration: KeyspaceConfiguration(site: SiteID(1), partitioning: partitioning)),
                copies: PartitionCopies(node: name), driftPPM: ppm
            )
        }
        outcome = SimulationOutcome(options: options, violations: [])
        if let joiner { nodes[joiner].absent = true }
        for index in nodes.indices where !nodes[index].absent { start(index) }
        for index in 0..<Self.clientCount {
            clients.append(Client(node: index % options.nodes, nextAt: 1 + workload.next() % 20))
        }
    }

    var partitioning: Partitioning { Partitioning(partitionCount: options.partitions) }

    func localTime(_ index: Int) -> UInt64 {
        let elapsed = Int64(now)
        return Self.epoch + UInt64(elapsed + elapsed * nodes[index].driftPPM / 1_000_000)
    }

    mutating func start(_ index: Int) {
        let name = nodes[index].name
        note("\(name) starts")
        var raft = RaftNode(
            id: MemberID(name: name, incarnation: incarnationSource.next() | 1), voters: names.indices.filter { !nonVoters.contains($0) }.map { names[$0] },
            nonVoters: nonVoters.map { names[$0] },
            partitionCount: options.partitions, backupCount: options.backupCount, settings: options.settings,
            seed: incarnationSource.next(), now: localTime(index)
        )
        raft.caughtUpCopies = []
        nodes[index].raft = raft
        nodes[index].applied = []
        nodes[index].keyspace = Keyspace(configuration: KeyspaceConfiguration(site: SiteID(1), partitioning: partitioning))
        nodes[index].copies = PartitionCopies(node: name)
        nodes[index].followed = nil
        nodes[index].waiting = [:]
        nodes[index].pending = [:]
        nodes[index].pausedUntil = 0
        nodes[index].drainingSince = nil
        nodes[index].restartsAfterDrain = false
    }

    /// The drain bound of a node (`drainTimeoutMilliseconds`): past it the node exits
    /// whatever it still holds, like a crash.
    static let drainBoundMilliseconds: UInt64 = 10_000
    /// When the run's planned drain starts (nil once started).
    var plannedDrainAt: UInt64?
    /// Whether the planned drain is a scale-in (a non-voter leaves for good).
    let plannedDrainLeaves: Bool
    /// The nodes that do not vote.
    let nonVoters: [Int]
    /// The node listed as a non-voter that has never run, and when it joins (nil once joined).
    let joiner: Int?
    var joinAt: UInt64?
    var joinerName: String? { joiner.map { names[$0] } }

    /// The listed node that never ran starts: it joins the running site.
    mutating func join(_ index: Int) {
        note("\(nodes[index].name) joins the site for the first time")
        nodes[index].absent = false
        start(index)
        outcome.joins += 1
    }

    /// A planned departure (SIGTERM): the node reports itself draining; the leader moves its
    /// copies away (planned handovers for its primaries).
    mutating func drain(_ index: Int) {
        note("\(nodes[index].name) drains")
        nodes[index].drainingSince = now
        nodes[index].raft?.draining = true
        outcome.drains += 1
    }

    /// A draining node exits once its map shows it leaving and holding nothing and its
    /// copies are gone (or at the bound); it starts again later as a new incarnation.
    mutating func finishDrains() {
        if faultsOn, let at = plannedDrainAt, now >= at, nodes.indices.allSatisfy({ isRunning($0) || nodes[$0].absent }), !nodes.contains(where: { $0.drainingSince != nil }), siteHealthy() {
            plannedDrainAt = nil
            var index = Int(faults.next() % UInt64(nodes.count))
            // Only a non-voter leaves for good: the voters are the site's fixed majority.
            let leaver = plannedDrainLeaves ? nonVoters.first { !nodes[$0].absent } : nil
            if let leaver { index = leaver }
            if !nodes[index].absent {
                nodes[index].leavesForGood = leaver != nil
                drain(index)
            }
        }
        if faultsOn, let joiner, let at = joinAt, now >= at {
            joinAt = nil
            join(joiner)
        }
        for index in nodes.indices where !nodes[index].absent {
            if !isUp(index), nodes[index].restartsAfterDrain, now >= nodes[index].downUntil {
                start(index)
                continue
            }
            guard let since = nodes[index].drainingSince, isRunning(index), let raft = nodes[index].raft else { continue }
            let decision = raft.drainDecision(holdsCopies: !nodes[index].copies.primaries.isEmpty || !nodes[index].copies.backups.isEmpty, now: localTime(index))
            let drained = decision != .wait
            guard drained || now >= since + Self.drainBoundMilliseconds else { continue }
            note("\(nodes[index].name) exits \(drained ? "drained" : "at its drain bound, still holding copies")")
            if drained { outcome.drainsCompleted += 1 }
            nodes[index].raft = nil
            nodes[index].waiting = [:]
            nodes[index].pending = [:]
            nodes[index].drainingSince = nil
            nodes[index].downUntil = now + 100 + faults.next() % 1_000
            if drained && nodes[index].leavesForGood {
                // Scale-in: it handed everything over and is gone. (One cut short comes back,
                // as an operator brings back a node whose drain log named what it still held.)
                note("\(nodes[index].name) left the site for good")
                nodes[index].absent = true
                outcome.leaves += 1
            } else {
                nodes[index].restartsAfterDrain = true
            }
            nodes[index].leavesForGood = false
        }
    }

    mutating func crash(_ index: Int) {
        note("\(nodes[index].name) crashes (memory lost)")
        nodes[index].raft = nil
        nodes[index].waiting = [:]
        nodes[index].pending = [:]
        outcome.crashes += 1
    }

    func isUp(_ index: Int) -> Bool { nodes[index].raft != nil }
    /// Nodes in the site (not absent), up or not.
    var presentNodes: Int { nodes.filter { !$0.absent }.count }
    func isRunning(_ index: Int) -> Bool { isUp(index) && nodes[index].pausedUntil <= now }

    // MARK: Running

    /// The fault phase, then healing and the liveness phase, then final reads and the checks.
    public mutating func run() -> SimulationOutcome {
        advance(until: options.steps)
        faultsOn = false
        blocked = []
        if let joiner, joinAt != nil {
            // It had not joined by the end of the faults: it joins now.
            joinAt = nil
            join(joiner)
        }
        for index in nodes.indices where !nodes[index].absent {
            nodes[index].pausedUntil = 0
            if !isUp(index) { start(index) }
        }
        let deadline = options.steps + options.livenessMilliseconds
        while now < deadline && outcome.violations.isEmpty && convergenceProblem() != nil {
            advance(until: min(deadline, now + 100))
        }
        if let problem = convergenceProblem(), outcome.violations.isEmpty {
            outcome.violations.append("liveness: \(options.livenessMilliseconds) ms after the faults stopped: \(problem)")
        }
        // Let the clients' last operations finish, then read every register once more.
        let drain = now + Self.clientTimeoutMilliseconds + 100
        while now < drain && clients.contains(where: { $0.operation != nil }) && outcome.violations.isEmpty { advance(until: now + 10, issue: false) }
        finalReads()
        check()
        return outcome
    }

    mutating func advance(until time: UInt64, issue: Bool = true) {
        while now < time && outcome.violations.isEmpty {
            now += 1
            if faultsOn { injectFaults() }
            deliver()
            for index in nodes.indices where isRunning(index) {
                let ready = nodes[index].raft!.tick(now: localTime(index))
                nodes[index].applied += ready.applied
                sendRaft(ready.messages, from: index)
                followMap(index)
                if now % 10 == 0 { perform(nodes[index].copies.tick(now: localTime(index)), at: index) }
            }
            finishDrains()
            observeControlPlane()
            runClients(issue: issue)
        }
    }

    // MARK: Network

    /// Control-plane messages may be lost, duplicated and reordered. Data-plane ones travel
    /// on a TCP connection in the nodes (`ordered`): lost only while the link is cut, never
    /// duplicated or reordered.
    mutating func enqueue(_ payload: Payload, from: String, to: String, ordered: Bool = true) {
        // A TCP connection loses nothing it delivers: only a cut link loses data-plane frames.
        if blocked.contains([from, to]) || (!ordered && faultsOn && chance(options.dropProbability)) {
            outcome.messagesDropped += 1
            return
        }
        let copies = !ordered && faultsOn && chance(options.duplicateProbability) ? 2 : 1
        for _ in 0..<copies {
            sequence += 1
            var deliverAt = now + 1 + network.next() % options.maximumDelayMilliseconds
            if ordered {
                deliverAt = max(deliverAt, lastDelivery[[from, to]] ?? 0)
                lastDelivery[[from, to]] = deliverAt
            }
            inFlight.push(InFlight(deliverAt: deliverAt, sequence: sequence, payload: Addressed(to: to, payload: payload)))
        }
    }

    mutating func send(_ frame: Frame, from index: Int, to name: String) {
        let ordered: Bool
        if case .raft = frame { ordered = false } else { ordered = true }
        enqueue(.frame(from: nodes[index].name, FrameCodec.encode(frame)), from: nodes[index].name, to: name, ordered: ordered)
    }

    mutating func sendRaft(_ envelopes: [RaftEnvelope], from index: Int) {
        for envelope in envelopes { send(.raft(envelope), from: index, to: envelope.to) }
    }

    mutating func chance(_ probability: Double) -> Bool {
        probability > 0 && Double(network.next() % 1_000_000) / 1_000_000 < probability
    }

    mutating func deliver() {
        while let next = inFlight.peek(), next.deliverAt <= now {
            var item = inFlight.pop()!
            guard let index = names.firstIndex(of: item.payload.to), isUp(index) else { continue }
            if nodes[index].pausedUntil > now {
                // A frozen process reads nothing; its socket buffers what arrives.
                item.deliverAt = nodes[index].pausedUntil
                inFlight.push(item)
                continue
            }
            outcome.messagesDelivered += 1
            switch item.payload.payload {
            case .frame(let from, let bytes):
                var decoder = FrameDecoder()
                decoder.append(bytes)
                guard let frame = try? decoder.next() else {
                    outcome.violations.append("wire: a frame did not survive its encoding")
                    return
                }
                received(frame, from: from, at: index)
            case .forward(let request, let arguments, let from, let deadline):
                runForwarded(request, arguments: arguments, from: from, deadline: deadline, at: index)
            case .reply(let request, let reply, _):
                replyArrived(request, reply, at: index)
            }
        }
    }

    mutating func received(_ frame: Frame, from: String, at index: Int) {
        let time = localTime(index)
        switch frame {
        case .raft(let envelope):
            let ready = nodes[index].raft!.receive(envelope, now: time)
            nodes[index].applied += ready.applied
            sendRaft(ready.messages, from: index)
            followMap(index)
        case .partitionWrites(let batch):
            perform(nodes[index].copies.receiveWrites(from: from, partition: Int(batch.partition), epoch: batch.epoch, firstSequence: batch.firstSequence, writes: batch.writes, now: time), at: index)
        case .transferChunk(let chunk):
            perform(
                nodes[index].copies.receiveChunk(
                    from: from, partition: Int(chunk.partition), epoch: chunk.epoch, attempt: chunk.attempt, chunk: chunk.chunk,
                    baseSequence: chunk.baseSequence, keys: chunk.keys, last: chunk.last, now: time
                ), at: index
            )
        case .backupReport(let report):
            let partition = Int(report.partition)
            let keys = nodes[index].keyspace.keys(inPartition: partition).sorted { $0.lexicographicallyPrecedes($1) }
            perform(nodes[index].copies.receive(report.message, from: from, partition: partition, epoch: report.epoch, keys: { keys }, now: time), at: index)
        default:
            outcome.violations.append("wire: unexpected \(frame.kind) between simulated nodes")
        }
    }

    // MARK: The shell of one node

    mutating func followMap(_ index: Int) {
        guard let raft = nodes[index].raft, raft.map.appliedIndex != nodes[index].followed else { return }
        nodes[index].followed = raft.map.appliedIndex
        note("\(nodes[index].name) follows map \(raft.map.appliedIndex): \(raft.map.partitions.map { "\($0.partition):\($0.primary ?? "-")@\($0.epoch)\($0.continuing ? "+" : "")\($0.backups)\($0.inSync.sorted())\($0.handoverTo.map { "→\($0)" } ?? "")" }.joined(separator: " "))")
        let adopted = raft.map.members[nodes[index].name]?.incarnation == raft.id.incarnation
        perform(nodes[index].copies.follow(raft.map.partitions, adopted: adopted, now: localTime(index)), at: index)
        reportCopies(index)
    }

    /// Tells node `index`'s control plane which copies are whole and which primaries handed off.
    mutating func reportCopies(_ index: Int) {
        let caughtUp = nodes[index].copies.caughtUpCopies
        let handedOff = nodes[index].copies.handedOffCopies
        nodes[index].raft?.caughtUpCopies = caughtUp
        nodes[index].raft?.handedOffCopies = handedOff
    }

    mutating func perform(_ actions: [CopyAction], at index: Int) {
        let time = localTime(index)
        for action in actions {
            switch action {
            case .discard(let partition):
                note("\(nodes[index].name) discards \(partition)")
                nodes[index].keyspace.discard(partition: partition)
            case .becamePrimary(let partition, _):
                nodes[index].keyspace.scheduleExpiries(ofPartition: partition)
            case .stoppedPrimary(let partition):
                note("\(nodes[index].name) stops being primary of \(partition)")
                for waiter in nodes[index].waiting.removeValue(forKey: partition) ?? [] where nodes[index].pending.removeValue(forKey: waiter.request) != nil {
                    reply(waiter.request, nil, from: index)
                }
            case .primary(let partition, let epoch, .replicate(let backup, let first, let writes)):
                send(.partitionWrites(PartitionWrites(partition: UInt32(partition), epoch: epoch, firstSequence: first, writes: writes)), from: index, to: backup)
            case .primary(let partition, let epoch, .sendChunk(let backup, let attempt, let chunk, let base, let keys, let last)):
                note("\(nodes[index].name) sends \(backup) chunk \(chunk) of \(partition)@\(epoch) attempt \(attempt)\(last ? " (last)" : "")")
                let records = keys.compactMap { key in nodes[index].keyspace.state(of: key).map { TransferredKey(key: key, state: $0) } }
                send(.transferChunk(TransferChunk(partition: UInt32(partition), epoch: epoch, attempt: attempt, chunk: chunk, baseSequence: base, keys: records, last: last)), from: index, to: backup)
            case .primary(let partition, _, .commit(let committed)):
                if nodes[index].copies.primaries[partition]?.sealed == true { reportCopies(index) }
                let queue = nodes[index].waiting[partition] ?? []
                let ready = queue.prefix { $0.sequence <= committed }
                nodes[index].waiting[partition]?.removeFirst(ready.count)
                for waiter in ready {
                    guard var pending = nodes[index].pending[waiter.request] else { continue }
                    pending.remaining -= 1
                    if pending.remaining == 0 {
                        nodes[index].pending[waiter.request] = nil
                        reply(waiter.request, pending.reply, from: index)
                    } else {
                        nodes[index].pending[waiter.request] = pending
                    }
                }
            case .backup(let partition, _, _, .discardPartition):
                nodes[index].keyspace.discard(partition: partition)
            case .backup(_, _, _, .merge(let keys)):
                for key in keys { _ = nodes[index].keyspace.merge(state: key.state, key: key.key, now: time) }
            case .backup(_, _, _, .apply(let write)):
                for delta in write.deltas { _ = nodes[index].keyspace.merge(delta, now: time) }
                for key in write.expiredKeys { nodes[index].keyspace.releaseExpired(key) }
                for key in write.collectedKeys { nodes[index].keyspace.dropCollected(key, now: time) }
            case .backup(let partition, let epoch, let primary, .send(let message)):
                if case .requestTransfer(let attempt) = message { note("\(nodes[index].name) asks \(primary) for \(partition)@\(epoch) (attempt \(attempt))") }
                send(.backupReport(BackupReport(partition: UInt32(partition), epoch: epoch, message: message)), from: index, to: primary)
            case .backup(let partition, let epoch, _, .reportCaughtUp):
                note("\(nodes[index].name) caught up on \(partition)@\(epoch)")
                reportCopies(index)
            }
        }
    }

    /// The epoch at which node `index` may act as primary of `partition` now, or nil.
    func actingEpoch(_ partition: Int, at index: Int) -> UInt64? {
        guard let raft = nodes[index].raft, let epoch = raft.actingPrimaryEpoch(of: partition, now: localTime(index)),
            let copy = nodes[index].copies.primaries[partition], copy.epoch == epoch, !copy.sealed
        else { return nil }
        return epoch
    }

    /// A client's command at node `index`: run here if it may act as primary, else forwarded
    /// to the map's primary, else retried until the deadline (then -TRYAGAIN).
    mutating func route(_ request: RequestID, arguments: [[UInt8]], deadline: UInt64, at index: Int) {
        let partition = partitioning.partition(of: arguments[1])
        if actingEpoch(partition, at: index) != nil {
            execute(request, arguments: arguments, at: index)
            return
        }
        if let primary = nodes[index].raft?.map.partitions[partition].primary, primary != nodes[index].name {
            enqueue(.forward(request, arguments: arguments, from: nodes[index].name, deadline: deadline), from: nodes[index].name, to: primary)
            return
        }
        retry(request, arguments: arguments, deadline: deadline, at: index)
    }

    mutating func retry(_ request: RequestID, arguments: [[UInt8]], deadline: UInt64, at index: Int) {
        guard now + Self.routeRetryMilliseconds < deadline else {
            replyArrived(request, .error("TRYAGAIN the primary of this key's partition is changing"), at: index)
            return
        }
        // The retry travels to this node itself, like a timer.
        sequence += 1
        inFlight.push(
            InFlight(deliverAt: now + Self.routeRetryMilliseconds, sequence: sequence, payload: Addressed(to: nodes[index].name, payload: .forward(request, arguments: arguments, from: "", deadline: deadline)))
        )
    }

    mutating func runForwarded(_ request: RequestID, arguments: [[UInt8]], from: String, deadline: UInt64, at index: Int) {
        if from.isEmpty {
            // A retry of this node's own client request.
            route(request, arguments: arguments, deadline: deadline, at: index)
            return
        }
        let partition = partitioning.partition(of: arguments[1])
        guard actingEpoch(partition, at: index) != nil else {
            enqueue(.reply(request, .error("MOVED"), from: nodes[index].name), from: nodes[index].name, to: from)
            return
        }
        execute(request, arguments: arguments, at: index)
    }

    /// Runs a command on this node's primary copy and holds the reply for the commit.
    mutating func execute(_ request: RequestID, arguments: [[UInt8]], at index: Int) {
        let partition = partitioning.partition(of: arguments[1])
        let epoch = nodes[index].copies.primaries[partition]!.epoch
        note("\(nodes[index].name) runs \(arguments.map { String(decoding: $0, as: UTF8.self) }.joined(separator: " ")) for \(request.node)#\(request.number) as primary of \(partition)@\(epoch) (lease until \(nodes[index].raft!.leaseUntil), now \(localTime(index)))")
        guard let result = nodes[index].keyspace.execute(arguments, now: localTime(index)) else {
            reply(request, .error("ERR unknown command"), from: index)
            return
        }
        let write = ReplicatedWrite(deltas: result.deltas, expiredKeys: nodes[index].keyspace.drainReleasedByExpiry())
        var wait: UInt64?
        if !write.isEmpty {
            let (submitted, actions) = nodes[index].copies.submit(write, partition: partition, now: localTime(index))
            wait = submitted
            perform(actions, at: index)
            if !result.deltas.isEmpty { acknowledgedWritesPending[request] = (partition, epoch, nodes[index].name, event) }
        } else if let primary = nodes[index].copies.primaries[partition], primary.committedSequence < primary.readBarrier {
            wait = primary.readBarrier
        }
        guard let wait, let primary = nodes[index].copies.primaries[partition], primary.committedSequence < wait else {
            reply(request, result.reply, from: index)
            return
        }
        nodes[index].pending[request] = PendingReply(remaining: 1, reply: result.reply)
        nodes[index].waiting[partition, default: []].append((wait, request))
    }

    /// Writes executed but not yet answered: which primary and epoch accepted them.
    var acknowledgedWritesPending: [RequestID: (partition: Int, epoch: UInt64, node: String, acceptedAt: UInt64)] = [:]

    /// Sends a reply (nil: outcome unknown) from the node that ran the command to the node the
    /// client is connected to.
    mutating func reply(_ request: RequestID, _ value: RESPValue?, from index: Int) {
        if request.node == nodes[index].name {
            replyArrived(request, value, at: index)
        } else {
            enqueue(.reply(request, value, from: nodes[index].name), from: nodes[index].name, to: request.node)
        }
    }

    mutating func replyArrived(_ request: RequestID, _ value: RESPValue?, at index: Int) {
        if case .error(let text)? = value, text == "MOVED" {
            // The primary it was sent to is not the primary now: route again.
            guard let client = clients.firstIndex(where: { $0.operation?.request == request }), let operation = clients[client].operation else { return }
            retry(request, arguments: operation.arguments, deadline: operation.deadline, at: index)
            return
        }
        let accepted = acknowledgedWritesPending.removeValue(forKey: request)
        note("reply to \(request.node)#\(request.number): \(value.map { "\($0)" } ?? "unknown")")
        guard let client = clients.firstIndex(where: { $0.operation?.request == request }), var operation = clients[client].operation else { return }
        event += 1
        clients[client].operation = nil
        clients[client].nextAt = now + 1 + workload.next() % 10
        switch value {
        case .error(let text)? where text.hasPrefix("TRYAGAIN"):
            tryAgain += 1  // never run: not part of the history
        case nil, .error?:
            unknown += 1
            if case .write = operation.kind { record(operation, respondedAt: nil) }
        case let reply?:
            if case .read = operation.kind { operation.kind = .read(Self.value(of: reply)) }
            record(operation, respondedAt: event)
            if let accepted {
                acknowledged += 1
                acknowledgedWrites[accepted.partition, default: []].append((accepted.acceptedAt, accepted.epoch, accepted.node))
            }
        }
    }

    static func value(of reply: RESPValue) -> Int? {
        guard case .bulkString(let bytes) = reply else { return nil }
        return Int(String(decoding: bytes, as: UTF8.self))
    }

    mutating func record(_ operation: Operation, respondedAt: UInt64?) {
        history[operation.register, default: []].append(
            RegisterOperation(client: operation.client, kind: operation.kind, invokedAt: operation.invokedAt, respondedAt: respondedAt)
        )
    }

    // MARK: Clients

    mutating func runClients(issue: Bool) {
        for client in clients.indices {
            if let operation = clients[client].operation {
                if now >= operation.sentAt + Self.clientTimeoutMilliseconds || !isUp(clients[client].node) {
                    // No reply in time, or its node died with the request: outcome unknown.
                    acknowledgedWritesPending[operation.request] = nil
                    unknown += 1
                    if case .write = operation.kind { record(operation, respondedAt: nil) }
                    clients[client].operation = nil
                    clients[client].nextAt = now + 1
                }
                continue
            }
            guard issue, now >= clients[client].nextAt else { continue }
            if !isUp(clients[client].node) {
                // (An absent node is not up: the client picks again next time.)
                clients[client].node = Int(workload.next() % UInt64(nodes.count))
                continue
            }
            issueOperation(client)
        }
    }

    mutating func issueOperation(_ client: Int, register fixed: String? = nil, read forcedRead: Bool = false) {
        let index = clients[client].node
        let request = RequestID(node: nodes[index].name, number: nextRequest)
        nextRequest += 1
        let useHash = fixed.map { $0.contains("#") } ?? (workload.next() % 3 == 0)
        let key: String, field: String?
        if let fixed {
            let parts = fixed.split(separator: "#").map(String.init)
            key = parts[0]
            field = parts.count > 1 ? parts[1] : nil
        } else if useHash {
            key = Self.hashKeys[Int(workload.next() % UInt64(Self.hashKeys.count))]
            field = Self.fields[Int(workload.next() % UInt64(Self.fields.count))]
        } else {
            key = Self.stringKeys[Int(workload.next() % UInt64(Self.stringKeys.count))]
            field = nil
        }
        let read = forcedRead || workload.next() % 2 == 0
        let kind: RegisterOperation.Kind
        let arguments: [String]
        if read {
            kind = .read(nil)
            arguments = field.map { ["HGET", key, $0] } ?? ["GET", key]
        } else {
            let value = nextValue
            nextValue += 1
            kind = .write(value)
            arguments = field.map { ["HSET", key, $0, String(value)] } ?? ["SET", key, String(value)]
        }
        event += 1
        let operation = Operation(
            client: client, request: request, register: field.map { "\(key)#\($0)" } ?? key, kind: kind,
            arguments: arguments.map { Array($0.utf8) }, invokedAt: event, sentAt: now, deadline: now + Self.routeDeadlineMilliseconds
        )
        clients[client].operation = operation
        route(request, arguments: operation.arguments, deadline: operation.deadline, at: index)
    }

    /// After everything settled: every register read once more, one at a time.
    mutating func finalReads() {
        let registers = Self.stringKeys + Self.hashKeys.flatMap { key in Self.fields.map { "\(key)#\($0)" } }
        for register in registers {
            var index = Int(workload.next() % UInt64(nodes.count))
            while nodes[index].absent { index = (index + 1) % nodes.count }
            clients[0].node = index
            issueOperation(0, register: register, read: true)
            let deadline = now + Self.clientTimeoutMilliseconds
            while clients[0].operation != nil && now < deadline && outcome.violations.isEmpty { advance(until: now + 1, issue: false) }
        }
    }

    // MARK: Faults

    mutating func injectFaults() {
        guard options.faultEventProbability > 0, Double(faults.next() % 1_000_000) / 1_000_000 < options.faultEventProbability else { return }
        let crashes = options.faults == .crashes || options.faults == .chaos
        let partitions = options.faults == .partitions || options.faults == .chaos
        let down = nodes.indices.filter { !isUp($0) && !nodes[$0].absent }
        switch faults.next() % 6 {
        case 0 where crashes:
            if let index = down.first, now >= nodes[index].downUntil {
                start(index)
            } else if down.isEmpty, !nodes.contains(where: { $0.drainingSince != nil }), siteHealthy() {
                // (Not during a drain: one that reaches its bound exits holding copies, a
                // second failure the site does not promise to survive.)
                let index = Int(faults.next() % UInt64(nodes.count))
                let downUntil = now + 200 + faults.next() % 3_000
                if !nodes[index].absent {
                    crash(index)
                    nodes[index].downUntil = downUntil
                }
            }
        case 1 where partitions:
            let size = 1 + Int(faults.next() % UInt64(max(1, nodes.count / 2)))
            var group: Set<String> = []
            while group.count < size { group.insert(names[Int(faults.next() % UInt64(names.count))]) }
            guard cutsOnlyAHealthySite(crashes: crashes, down: down) else { break }
            for a in names {
                for b in names where group.contains(a) != group.contains(b) { blocked.insert([a, b]) }
            }
            outcome.partitionsInjected += 1
        case 2 where partitions:
            let from = names[Int(faults.next() % UInt64(names.count))]
            let to = names[Int(faults.next() % UInt64(names.count))]
            if from != to, cutsOnlyAHealthySite(crashes: crashes, down: down) { blocked.insert([from, to]) }
        case 3 where crashes:
            // A pause (SIGSTOP): no timers, no reads, for up to 3 s.
            let index = Int(faults.next() % UInt64(nodes.count))
            if isRunning(index) && nodes.indices.allSatisfy({ $0 == index || isRunning($0) || nodes[$0].absent }) {
                nodes[index].pausedUntil = now + 100 + faults.next() % 3_000
                note("\(nodes[index].name) pauses until t=\(nodes[index].pausedUntil)")
            }
        case 4:
            blocked = []
            if crashes, let index = down.first, now >= nodes[index].downUntil, !nodes[index].restartsAfterDrain { start(index) }
        case 5:
            // A drain (rolling restart, scale-in) of a node, one at a time, in a healthy site.
            if down.isEmpty, !nodes.contains(where: { $0.drainingSince != nil }), siteHealthy() {
                let index = Int(faults.next() % UInt64(nodes.count))
                if !nodes[index].absent { drain(index) }
            }
        default:
            break
        }
    }

    /// With crashes in the mix, a link is cut only in a healthy site: a cut right after a
    /// crash (before the leader noticed it, or before a restarted node's copies were made
    /// again) can isolate a partition's last complete copy while its other copy is gone —
    /// two faults within one failover, more than `backupCount` 1 survives. (Found with seed 80
    /// of chaos: a backup crashed, its primary was cut off, the dead backup was promoted.)
    func cutsOnlyAHealthySite(crashes: Bool, down: [Int]) -> Bool {
        !crashes || (down.isEmpty && siteHealthy())
    }

    /// Every node up with its adopted incarnation and every partition fully in sync: another
    /// crash loses no data (random crashes stay within what the site promises to survive).
    func siteHealthy() -> Bool {
        guard let leader = nodes.compactMap(\.raft).filter({ $0.role == .leader }).max(by: { $0.term < $1.term }) else { return false }
        let map = leader.map
        return nodes.allSatisfy { node in
            guard !node.absent else { return true }
            guard let raft = node.raft else { return false }
            return map.members[node.name]?.incarnation == raft.id.incarnation && map.members[node.name]?.state == .up
        } && map.partitions.allSatisfy { $0.primary != nil && $0.inSync.count == $0.backups.count && $0.backups.count >= min(options.backupCount, presentNodes - 1) }
    }

    /// Why the site has not converged, or nil: one leader, the same map everywhere, every
    /// partition placed with every copy caught up.
    public func convergenceProblem() -> String? {
        let leaders = nodes.compactMap(\.raft).filter { $0.role == .leader }
        guard let leader = leaders.max(by: { $0.term < $1.term }), leaders.filter({ $0.term == leader.term }).count == 1 else { return "no single leader" }
        for node in nodes where !node.absent {
            guard let raft = node.raft else { return "\(node.name) is down" }
            if raft.map != leader.map { return "\(node.name) applied \(raft.map.appliedIndex), the leader \(leader.map.appliedIndex)" }
        }
        let wanted = min(options.backupCount, presentNodes - 1)
        for assignment in leader.map.partitions {
            guard let primary = assignment.primary else { return "partition \(assignment.partition) has no primary" }
            if assignment.backups.count < wanted || assignment.inSync.count < assignment.backups.count {
                return "partition \(assignment.partition) is under-replicated"
            }
            guard let index = names.firstIndex(of: primary), nodes[index].copies.primaries[assignment.partition]?.epoch == assignment.epoch else {
                return "partition \(assignment.partition)'s primary does not lead it yet"
            }
        }
        return nil
    }

    mutating func observeControlPlane() {
        for index in nodes.indices where isUp(index) {
            let applied = nodes[index].applied
            nodes[index].applied = []
            if let violation = controlPlaneCheckers.observe(node: nodes[index].name, raft: nodes[index].raft!, applied: applied) {
                outcome.violations.append("t=\(now) ms: \(violation)")
            }
        }
        controlPlaneCheckers.committedDown = []
    }

    // MARK: Checks

    mutating func check() {
        for register in history.keys.sorted() {
            if let problem = LinearizabilityChecker.check(history[register]!) {
                outcome.violations.append("linearizability of \(register): \(problem)")
            }
        }
        for partition in acknowledgedWrites.keys.sorted() {
            var highest: (epoch: UInt64, node: String)?
            // In the order the primaries accepted them (their replies may come later).
            for write in acknowledgedWrites[partition]!.sorted(by: { $0.event < $1.event }) {
                if let current = highest {
                    if write.epoch < current.epoch || (write.epoch == current.epoch && write.node != current.node) {
                        outcome.violations.append(
                            "partition \(partition): a write accepted by \(write.node) at epoch \(write.epoch) after \(current.node) accepted acknowledged writes at epoch \(current.epoch)"
                        )
                        break
                    }
                }
                if highest == nil || write.epoch > highest!.epoch { highest = (write.epoch, write.node) }
            }
        }
        guard convergenceProblem() == nil, let leader = nodes.compactMap(\.raft).first(where: { $0.role == .leader }) else { return }
        for assignment in leader.map.partitions {
            guard let primary = assignment.primary, let primaryIndex = names.firstIndex(of: primary) else { continue }
            let keys = Set(nodes[primaryIndex].keyspace.keys(inPartition: assignment.partition))
            for backup in assignment.backups {
                guard let backupIndex = names.firstIndex(of: backup) else { continue }
                let backupKeys = Set(nodes[backupIndex].keyspace.keys(inPartition: assignment.partition))
                let differing = keys.union(backupKeys).filter { nodes[primaryIndex].keyspace.state(of: $0) != nodes[backupIndex].keyspace.state(of: $0) }
                if !differing.isEmpty {
                    outcome.violations.append("partition \(assignment.partition): \(backup)'s copy differs from \(primary)'s in \(differing.count) key(s) at rest")
                }
            }
        }
    }

    /// The command that replays this run exactly.
    public var replayCommand: String { options.replayCommand + " --data-plane" }
}
