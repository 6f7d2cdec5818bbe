import ControlPlane
import SessionModel
import Wire

/// Which faults a simulation injects while faults are on.
public enum FaultProfile: String, CaseIterable, Sendable {
    /// Nothing but message delay.
    case none
    /// Loss, duplication and reordering.
    case lossy
    /// Symmetric and one-way partitions that come and go.
    case partitions
    /// Crashes and restarts (a restarted node has lost its memory), one minority at a time.
    case crashes
    /// All of the above at once, plus clock drift.
    case chaos
}

/// Everything that defines a run; all of it follows from the seed and the command line.
public struct SimulationOptions: Sendable, CustomStringConvertible {
    public var seed: UInt64
    public var nodes: Int
    public var faults: FaultProfile
    /// Simulated milliseconds with faults on; then the faults stop and the liveness phase runs.
    public var steps: UInt64
    public var livenessMilliseconds: UInt64 = 15_000
    public var partitions = 8
    public var backupCount = 1
    /// The last `nonVoters` of the `nodes` follow the site without voting.
    public var nonVoters = 0
    public var settings = ControlPlaneSettings()
    // Derived from the seed:
    public var dropProbability = 0.0
    public var duplicateProbability = 0.0
    public var maximumDelayMilliseconds: UInt64 = 5
    public var faultEventProbability = 0.0
    public var maximumDriftPPM: Int64 = 0

    public init(seed: UInt64, nodes: Int = 3, faults: FaultProfile = .chaos, steps: UInt64 = 20_000) {
        self.seed = seed
        self.nodes = nodes
        self.faults = faults
        self.steps = steps
        var random = SeededGenerator(seed: seed ^ 0x6f70_7469_6f6e_7321)
        func pick(_ range: ClosedRange<Double>) -> Double {
            range.lowerBound + Double(random.next() % 10_000) / 10_000 * (range.upperBound - range.lowerBound)
        }
        maximumDelayMilliseconds = 1 + random.next() % 20
        // Rebalancing one, two or three moves at a time (not drawn: earlier seeds keep their draws).
        settings.rebalanceMovesInFlight = Int(1 + seed % 3)
        switch faults {
        case .none:
            break
        case .lossy:
            dropProbability = pick(0.01...0.2)
            duplicateProbability = pick(0.0...0.1)
        case .partitions, .crashes:
            faultEventProbability = pick(0.0005...0.002)
        case .chaos:
            dropProbability = pick(0.0...0.1)
            duplicateProbability = pick(0.0...0.05)
            faultEventProbability = pick(0.0005...0.002)
            maximumDriftPPM = Int64(random.next() % 20_000)
        }
    }

    public var description: String {
        "seed=\(seed) nodes=\(nodes) faults=\(faults.rawValue) steps=\(steps) partitions=\(partitions) backupCount=\(backupCount) "
            + "drop=\(String(format2: dropProbability)) duplicate=\(String(format2: duplicateProbability)) maxDelayMs=\(maximumDelayMilliseconds) "
            + "faultEventRate=\(String(format2: faultEventProbability * 1000))/s maxDriftPPM=\(maximumDriftPPM)"
    }

    /// The command that replays this run exactly.
    public var replayCommand: String {
        "sessionfed simulate --seed \(seed) --nodes \(nodes) --faults \(faults.rawValue) --steps \(steps)"
    }
}

extension String {
    init(format2 value: Double) {
        let scaled = Int((value * 1000).rounded())
        self = "\(scaled / 1000).\(String(scaled % 1000).leftPadded(to: 3))"
    }

    func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}

/// What a run found.
public struct SimulationOutcome: Sendable {
    public var options: SimulationOptions
    public var violations: [String]
    public var messagesDelivered = 0
    public var messagesDropped = 0
    public var crashes = 0
    public var partitionsInjected = 0
    /// Drains started, and those that ended with the node holding nothing.
    public var drains = 0
    public var drainsCompleted = 0
    /// A listed node that had never run joined the running site; a drained node left for good.
    public var joins = 0
    public var leaves = 0
    public var leaderElections = 0
    public var finalTerm: UInt64 = 0
    public var finalLeader: String?
    public var finalCommitIndex: UInt64 = 0

    public var passed: Bool { violations.isEmpty }
}

/// A whole site's control plane in one process, driven by one seed: a simulated clock, a
/// network that delays, drops, duplicates and reorders (every message through the real
/// protobuf encoding), partitions, crashes and restarts with memory loss, and clock drift.
/// Checkers observe every step.
public struct Simulation {
    struct Node {
        var name: String
        var raft: RaftNode?
        var incarnations: UInt64 = 0
        var driftPPM: Int64
        var downUntil: UInt64 = 0
        /// Entries its steps applied since the checkers last looked.
        var applied: [LogEntry] = []
    }

    typealias InFlight = Scheduled<[UInt8]>

    public let options: SimulationOptions
    var nodes: [Node]
    var names: [String]
    var now: UInt64 = 0
    var inFlight = MinHeap<InFlight>()
    var sequence: UInt64 = 0
    var network: SeededGenerator
    var faults: SeededGenerator
    var incarnationSource: SeededGenerator
    /// Pairs (from, to) whose messages are dropped.
    var blocked: Set<[String]> = []
    var faultsOn = true
    public var checkers = Checkers()
    var outcome: SimulationOutcome
    /// Scripted events (scenario tests): at a time, do something to the simulation.
    var script: [(at: UInt64, action: (inout Simulation) -> Void)] = []

    static let epoch: UInt64 = 1_700_000_000_000

    public init(options: SimulationOptions) {
        self.options = options
        var root = SeededGenerator(seed: options.seed)
        network = root.split()
        faults = root.split()
        incarnationSource = root.split()
        var drift = root.split()
        names = (1...options.nodes).map { "node-\($0)" }
        nodes = names.map { name in
            let ppm = options.maximumDriftPPM == 0 ? 0 : Int64(drift.next() % UInt64(2 * options.maximumDriftPPM + 1)) - options.maximumDriftPPM
            return Node(name: name, driftPPM: ppm)
        }
        outcome = SimulationOutcome(options: options, violations: [])
        for index in nodes.indices { start(index) }
    }

    /// A node's own clock: the simulated time, drifting at its rate.
    func localTime(_ index: Int) -> UInt64 {
        let elapsed = Int64(now)
        return Self.epoch + UInt64(elapsed + elapsed * nodes[index].driftPPM / 1_000_000)
    }

    mutating func start(_ index: Int) {
        nodes[index].incarnations += 1
        nodes[index].applied = []
        let incarnation = incarnationSource.next() | 1
        nodes[index].raft = RaftNode(
            id: MemberID(name: nodes[index].name, incarnation: incarnation), voters: Array(names.prefix(names.count - options.nonVoters)),
            nonVoters: Array(names.suffix(options.nonVoters)),
            partitionCount: options.partitions, backupCount: options.backupCount, settings: options.settings,
            seed: incarnationSource.next(), now: localTime(index)
        )
    }

    public mutating func crash(_ name: String) {
        guard let index = names.firstIndex(of: name), nodes[index].raft != nil else { return }
        nodes[index].raft = nil
        outcome.crashes += 1
    }

    public mutating func restart(_ name: String) {
        guard let index = names.firstIndex(of: name), nodes[index].raft == nil else { return }
        start(index)
    }

    /// Cuts `group` off from the others (both directions).
    public mutating func isolate(_ group: Set<String>) {
        for a in names {
            for b in names where group.contains(a) != group.contains(b) { blocked.insert([a, b]) }
        }
        outcome.partitionsInjected += 1
    }

    public mutating func blockOneWay(from: String, to: String) {
        blocked.insert([from, to])
        outcome.partitionsInjected += 1
    }

    public mutating func heal() {
        blocked = []
    }

    /// Adds a scripted event.
    public mutating func at(_ milliseconds: UInt64, _ action: @escaping (inout Simulation) -> Void) {
        script.append((milliseconds, action))
        script.sort { $0.at < $1.at }
    }

    public var leaders: [(name: String, term: UInt64)] {
        nodes.compactMap { node in
            guard let raft = node.raft, raft.role == .leader else { return nil }
            return (node.name, raft.term)
        }
    }

    public func raft(_ name: String) -> RaftNode? {
        names.firstIndex(of: name).flatMap { nodes[$0].raft }
    }

    // MARK: Running

    /// Runs the fault phase, then heals everything and runs the liveness phase.
    public mutating func run(checkLiveness: Bool = true) -> SimulationOutcome {
        faultsOn = true
        advance(until: options.steps)
        faultsOn = false
        heal()
        for index in nodes.indices where nodes[index].raft == nil { start(index) }
        let deadline = options.steps + options.livenessMilliseconds
        var converged = false
        while !converged && now < deadline && outcome.violations.isEmpty {
            advance(until: min(deadline, now + 100))
            converged = convergenceProblem() == nil
        }
        if checkLiveness && !converged && outcome.violations.isEmpty {
            outcome.violations.append("liveness: \(options.livenessMilliseconds) ms after the faults stopped: \(convergenceProblem() ?? "?")")
        }
        let leader = leaders.max { $0.term < $1.term }
        outcome.finalLeader = leader?.name
        outcome.finalTerm = leader?.term ?? 0
        outcome.finalCommitIndex = leader.flatMap { raft($0.name)?.commitIndex } ?? 0
        return outcome
    }

    /// Runs until `time` (or the first violation).
    public mutating func advance(until time: UInt64) {
        while now < time && outcome.violations.isEmpty {
            now += 1
            while let event = script.first, event.at <= now {
                script.removeFirst()
                event.action(&self)
            }
            if faultsOn { injectFaults() }
            deliver()
            for index in nodes.indices where nodes[index].raft != nil {
                let ready = nodes[index].raft!.tick(now: localTime(index))
                nodes[index].applied += ready.applied
                send(ready.messages)
            }
            observe()
        }
    }

    mutating func deliver() {
        while let next = inFlight.peek(), next.deliverAt <= now {
            _ = inFlight.pop()
            var decoder = FrameDecoder()
            decoder.append(next.payload)
            guard case .raft(let envelope)? = try? decoder.next() else {
                outcome.violations.append("wire: a control-plane message did not survive its encoding")
                return
            }
            guard let index = names.firstIndex(of: envelope.to), nodes[index].raft != nil else { continue }
            outcome.messagesDelivered += 1
            let ready = nodes[index].raft!.receive(envelope, now: localTime(index))
            nodes[index].applied += ready.applied
            send(ready.messages)
        }
    }

    mutating func send(_ envelopes: [RaftEnvelope]) {
        for envelope in envelopes {
            if blocked.contains([envelope.from.name, envelope.to]) || (faultsOn && chance(options.dropProbability)) {
                outcome.messagesDropped += 1
                continue
            }
            let bytes = FrameCodec.encode(.raft(envelope))
            let copies = faultsOn && chance(options.duplicateProbability) ? 2 : 1
            for _ in 0..<copies {
                sequence += 1
                let delay = 1 + network.next() % options.maximumDelayMilliseconds
                inFlight.push(InFlight(deliverAt: now + delay, sequence: sequence, payload: bytes))
            }
        }
    }

    mutating func chance(_ probability: Double) -> Bool {
        probability > 0 && Double(network.next() % 1_000_000) / 1_000_000 < probability
    }

    /// Random faults: crash or restart one node (never more than a minority down, and a voter
    /// restarts only while every other voter is adopted, so a quorum always survives), cut a
    /// group off or one direction of a link, heal.
    mutating func injectFaults() {
        guard options.faultEventProbability > 0, Double(faults.next() % 1_000_000) / 1_000_000 < options.faultEventProbability else { return }
        let crashes = options.faults == .crashes || options.faults == .chaos
        let partitions = options.faults == .partitions || options.faults == .chaos
        let down = nodes.indices.filter { nodes[$0].raft == nil }
        switch faults.next() % 4 {
        case 0 where crashes:
            if let index = down.first, now >= nodes[index].downUntil {
                start(index)
            } else if down.isEmpty, clusterHealthy() {
                let index = Int(faults.next() % UInt64(nodes.count))
                nodes[index].raft = nil
                nodes[index].downUntil = now + 200 + faults.next() % 3_000
                outcome.crashes += 1
            }
        case 1 where partitions:
            let size = 1 + Int(faults.next() % UInt64(max(1, nodes.count / 2)))
            var group: Set<String> = []
            while group.count < size { group.insert(names[Int(faults.next() % UInt64(names.count))]) }
            isolate(group)
        case 2 where partitions:
            let from = names[Int(faults.next() % UInt64(names.count))]
            let to = names[Int(faults.next() % UInt64(names.count))]
            if from != to { blockOneWay(from: from, to: to) }
        case 3:
            heal()
            if crashes, let index = down.first, now >= nodes[index].downUntil { start(index) }
        default:
            break
        }
    }

    /// Every node runs its adopted incarnation and a leader exists: another crash leaves a
    /// quorum (used to bound random crashes; scenario tests go beyond it on purpose).
    func clusterHealthy() -> Bool {
        guard let leader = leaders.max(by: { $0.term < $1.term }), let map = raft(leader.name)?.map else { return false }
        let membersAdopted = nodes.allSatisfy { node in
            guard let raft = node.raft else { return false }
            return map.members[node.name]?.incarnation == raft.id.incarnation && map.members[node.name]?.state == .up
        }
        // ... and every partition has all its copies in sync, so a crash loses no data.
        return membersAdopted && map.partitions.allSatisfy { $0.primary != nil && $0.inSync.count == $0.backups.count && $0.backups.count >= min(options.backupCount, options.nodes - 1) }
    }

    /// Why the site has not converged yet, or nil: one leader, every node applied the same
    /// map, every member up with its running incarnation, every partition placed with its
    /// copies in sync.
    public func convergenceProblem() -> String? {
        let current = leaders.filter { leader in leaders.allSatisfy { $0.term <= leader.term } }
        guard current.count == 1, let leader = raft(current[0].name) else { return "no single leader (\(leaders))" }
        for node in nodes {
            guard let raft = node.raft else { return "\(node.name) is down" }
            if raft.map != leader.map { return "\(node.name) applied \(raft.map.appliedIndex), the leader \(leader.map.appliedIndex)" }
            if leader.map.members[node.name]?.incarnation != raft.id.incarnation || leader.map.members[node.name]?.state != .up {
                return "\(node.name) is not an up member with its running incarnation"
            }
        }
        if leader.commitIndex != leader.lastIndex { return "the leader has uncommitted entries" }
        let wantedBackups = min(options.backupCount, options.nodes - 1)
        for assignment in leader.map.partitions {
            guard assignment.primary != nil else { return "partition \(assignment.partition) has no primary" }
            if assignment.backups.count < wantedBackups || assignment.inSync.count < assignment.backups.count {
                return "partition \(assignment.partition) is under-replicated"
            }
        }
        return nil
    }

    mutating func observe() {
        for index in nodes.indices where nodes[index].raft != nil {
            let applied = nodes[index].applied
            nodes[index].applied = []
            let raft = nodes[index].raft!
            if let violation = checkers.observe(node: nodes[index].name, raft: raft, applied: applied) {
                outcome.violations.append("t=\(now) ms: \(violation)")
            }
        }
        // Lease safety: when a member is committed down (its partitions move next), that very
        // incarnation must already have stopped acting as primary.
        for (index, member) in checkers.committedDown {
            guard let node = nodes.firstIndex(where: { $0.name == member.name }), let raft = nodes[node].raft, raft.id == member else { continue }
            let acting = raft.actingPrimaries(now: localTime(node))
            if !acting.isEmpty {
                outcome.violations.append("t=\(now) ms: \(member) was committed down at index \(index) while still acting as primary of \(acting.count) partition(s) under a valid lease")
            }
        }
        checkers.committedDown = []
        outcome.leaderElections = checkers.leaderByTerm.count
    }
}

/// A message on the simulated network, delivered in (time, send order).
struct Scheduled<Payload>: Comparable {
    var deliverAt: UInt64
    var sequence: UInt64
    var payload: Payload

    static func < (lhs: Scheduled, rhs: Scheduled) -> Bool { (lhs.deliverAt, lhs.sequence) < (rhs.deliverAt, rhs.sequence) }
    static func == (lhs: Scheduled, rhs: Scheduled) -> Bool { (lhs.deliverAt, lhs.sequence) == (rhs.deliverAt, rhs.sequence) }
}

/// A binary min-heap (the simulated network's delivery queue).
struct MinHeap<Element: Comparable> {
    var items: [Element] = []

    func peek() -> Element? { items.first }

    mutating func push(_ item: Element) {
        items.append(item)
        var child = items.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard items[child] < items[parent] else { break }
            items.swapAt(child, parent)
            child = parent
        }
    }

    mutating func pop() -> Element? {
        guard !items.isEmpty else { return nil }
        items.swapAt(0, items.count - 1)
        let top = items.removeLast()
        var parent = 0
        while true {
            let left = 2 * parent + 1, right = left + 1
            var smallest = parent
            if left < items.count && items[left] < items[smallest] { smallest = left }
            if right < items.count && items[right] < items[smallest] { smallest = right }
            guard smallest != parent else { break }
            items.swapAt(parent, smallest)
            parent = smallest
        }
        return top
    }
}
