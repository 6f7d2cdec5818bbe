import SessionModel

/// Timing of a site's control plane. The defaults detect a dead member within about a second
/// and elect a new leader within two.
public struct ControlPlaneSettings: Hashable, Sendable {
    /// A follower that hears no leader for a random time in this range starts an election.
    public var electionTimeoutMilliseconds: ClosedRange<UInt64> = 1_000...1_500
    /// The leader's AppendEntries interval (its heartbeat).
    public var leaderHeartbeatMilliseconds: UInt64 = 100
    /// Every member reports to the leader this often.
    public var memberHeartbeatMilliseconds: UInt64 = 200
    /// The leader marks a member down after this long without a report.
    public var failureTimeoutMilliseconds: UInt64 = 1_000
    /// The log is compacted into a snapshot of the cluster map beyond this many entries.
    public var snapshotThreshold = 256
    public var maximumEntriesPerMessage = 64
    /// How long a new copy of a partition takes to catch up before the member reports it in
    /// sync (until the data plane reports real catch-up).
    public var catchUpMilliseconds: UInt64 = 0
    /// How long a node may act on the cluster map (as primary of its partitions) after the
    /// last report the leader answered (the leader: after the latest append a majority
    /// answered), counted from when it sent it. Shorter than the failure timeout and the
    /// election timeout by a margin for clock-rate drift: by the time the leader moves a
    /// silent member's partitions, or a new leader is elected, the old holder has stopped.
    public var leaseMilliseconds: UInt64 = 750
    /// Rebalancing starts a move (a planned handover, or a new copy) only while fewer than
    /// this many are under way: each copies a whole partition to its new member.
    public var rebalanceMovesInFlight = 2

    public init() {}
}

/// Raft (Ongaro and Ousterhout, 2014) among a site's voter nodes, with pre-vote and
/// check-quorum, replicating the cluster map. What to change in the map is the
/// `MapController`'s to decide, from the member reports and silences the leader observes;
/// the leader proposes its batches and replicates them.
///
/// Nodes keep nothing on disk. A restarted node comes back as a new incarnation of its name
/// with empty state: it never votes as the old one; it follows as a learner until the leader
/// has brought it up to date and appended its new incarnation to the voter set (a
/// configuration counts once appended, so the other voters count it from then on, even if
/// the leader dies before the entry commits). (One process per name makes the swap safe:
/// once the new incarnation exists the old one is dead.) A leader that dies before the new
/// incarnation holds its log leaves no safe majority: the old incarnation may have
/// acknowledged entries that only the dead leader still held.
/// A node that finds no established cluster and sees every voter fresh bootstraps one.
///
/// Pure: time arrives as `now`, randomness as a seed, messages go out as return values.
public struct RaftNode: Sendable {
    public enum Role: String, Sendable {
        case bootstrapping, learner, follower, preCandidate = "pre-candidate", candidate, leader
    }

    public let id: MemberID
    public let settings: ControlPlaneSettings
    public let voterNames: [String]
    /// The non-voters this node's topology lists, and its version. Non-voters join the map
    /// (and leave it) by committed commands, never from a node's own topology: while a new
    /// topology rolls through the site, nodes running different versions keep one map.
    public let listedNonVoters: Set<String>
    public let topologyVersion: UInt64
    var random: SeededGenerator

    // Raft state (kept in memory only).
    public private(set) var term: UInt64 = 0
    var votedFor: MemberID?
    var log: RaftLog
    public private(set) var commitIndex: UInt64 = 0
    /// The applied cluster map.
    public private(set) var map: ClusterMap
    /// Set once bootstrapped or taught by a leader.
    var bootstrapVoters: [String: UInt64]?
    /// Which history this node's log belongs to (`RaftEnvelope.cluster`; 0: none yet).
    public private(set) var cluster: UInt64 = 0

    var state: RoleState
    public var role: Role { state.role }
    /// Until when (this node's clock) it may act as primary of the partitions its map gives it.
    public private(set) var leaseUntil: UInt64 = 0
    public private(set) var leader: MemberID?
    var electionDeadline: UInt64 = 0
    var lastLeaderContact: UInt64?
    /// The last leader this node heard (kept through elections until this node leads).
    var previousLeader: MemberID?
    /// When this node last received anything from each member.
    var lastHeard: [String: (incarnation: UInt64, at: UInt64)] = [:]
    var nextMemberHeartbeat: UInt64 = 0
    /// When a learner took the leader it reports to from another node's answer.
    var learnerLeaderSince: UInt64 = 0
    /// Applied in the current step, handed out in its `RaftReady`.
    var applied: [LogEntry] = []
    var copiesHeldSince: [PartitionEpoch: UInt64] = [:]
    /// Set by a runtime whose data plane copies partitions: the copies it reports caught up
    /// (nil: every copy counts as caught up `catchUpMilliseconds` after the map gave it).
    public var caughtUpCopies: Set<PartitionEpoch>?
    /// Set by the data plane: primaries sealed for a planned handover whose writes are all
    /// committed (reported to the leader, which then starts the next epoch).
    public var handedOffCopies: Set<PartitionEpoch> = [] {
        // The partition's commands wait for the next epoch: report at the next tick rather
        // than at the next periodic report.
        didSet { if !handedOffCopies.isSubset(of: oldValue) { nextMemberHeartbeat = 0 } }
    }
    /// Set by the runtime when this node is leaving (SIGTERM, `sessionfed drain`): reported
    /// to the leader, which moves every copy it holds to other members.
    public var draining = false {
        didSet { if draining != oldValue { nextMemberHeartbeat = 0 } }
    }

    /// The leader reviews member reports this often.
    static let decisionIntervalMilliseconds: UInt64 = 20

    /// The leader's state while this node leads (read and changed in place).
    var leading: LeaderState? {
        get {
            if case .leader(let leader) = state { return leader }
            return nil
        }
        set {
            guard let newValue else { return }
            precondition(role == .leader, "Invalid state: leader state set on a \(role)")
            state = .leader(newValue)
        }
    }

    public init(
        id: MemberID, voters: [String], nonVoters: [String] = [], topologyVersion: UInt64 = 1, partitionCount: Int, backupCount: Int,
        roles: SiteRoles = .standalone, settings: ControlPlaneSettings = ControlPlaneSettings(), seed: UInt64, now: UInt64
    ) {
        self.id = id
        self.settings = settings
        voterNames = voters.sorted()
        listedNonVoters = Set(nonVoters)
        self.topologyVersion = topologyVersion
        random = SeededGenerator(seed: seed)
        map = ClusterMap(voters: voters, partitionCount: partitionCount, backupCount: backupCount, roles: roles)
        log = RaftLog(map: map)
        state = voters.contains(id.name) ? .bootstrapping(probes: [:]) : .learner
        resetElectionTimer(now: now)
    }

    // MARK: Indexes and configuration

    public var lastIndex: UInt64 { log.lastIndex }

    /// The voter set in effect: incarnations from the applied map, overridden by incarnation
    /// changes appended to the log (a configuration takes effect when appended, as in Raft's
    /// single-server changes), or the bootstrap set before any is known.
    public var voters: [String: UInt64] {
        var result: [String: UInt64] = [:]
        for name in voterNames { result[name] = 0 }
        if let bootstrapVoters { result.merge(bootstrapVoters) { $1 } }
        for (name, member) in map.members where member.voter && member.votingIncarnation != 0 { result[name] = member.votingIncarnation }
        for entry in log.entries(after: map.appliedIndex) {
            switch entry.command {
            case .memberIncarnation(let name, let incarnation), .voterIncarnation(let name, let incarnation):
                if result[name] != nil { result[name] = incarnation }
            default:
                break
            }
        }
        return result
    }

    /// Whether `member` is a voter of the configuration this node knows.
    func isVoter(_ member: MemberID) -> Bool {
        guard let incarnation = voters[member.name] else { return false }
        return incarnation != 0 && incarnation == member.incarnation
    }

    /// Whether this node belongs to a cluster that has a history (log entries): a restarted
    /// node that hears this must join it, not bootstrap. Having bootstrapped without a leader
    /// yet does not count: such nodes still let late voters bootstrap with them.
    var isEstablished: Bool { lastIndex > 0 }

    var quorum: Int { voterNames.count / 2 + 1 }

    // MARK: Timers

    /// `retry`: an election of this node just failed (a split vote, or no majority reachable):
    /// it tries again after a quarter to a half of the election timeout, randomized like the
    /// first attempt, so a split vote after a leader's death costs ~0.4 s instead of another
    /// full timeout. Pre-vote keeps quick retries harmless: they cannot disturb a live leader.
    mutating func resetElectionTimer(now: UInt64, retry: Bool = false) {
        let range = settings.electionTimeoutMilliseconds
        let lower = retry ? max(1, range.lowerBound / 4) : range.lowerBound
        let upper = retry ? max(lower, range.lowerBound / 2) : range.upperBound
        electionDeadline = now + lower + random.next() % (upper - lower + 1)
    }

    /// When `tick` next has work to do; a runtime may sleep until then (or any message).
    public var nextTimerAt: UInt64 {
        switch state {
        case .leader(let leader): return min(nextMemberHeartbeat, leader.quorumCheckAt, leader.nextHeartbeat, leader.nextDecision)
        case .follower, .preCandidate, .candidate: return isVoter(id) ? min(nextMemberHeartbeat, electionDeadline) : nextMemberHeartbeat
        case .bootstrapping, .learner: return nextMemberHeartbeat
        }
    }

    /// Advances timers: elections, the leader's heartbeats and decisions, member reports.
    public mutating func tick(now: UInt64) -> RaftReady {
        let before = (role: role, leader: leader, leaseUntil: leaseUntil)
        return ready(advance(now: now), since: before)
    }

    /// Every step ends here: the invariants are checked once its changes are complete, and
    /// what it produced goes out as one value. Outgoing messages carry this node's cluster.
    mutating func ready(_ envelopes: [RaftEnvelope], since before: (role: Role, leader: MemberID?, leaseUntil: UInt64)) -> RaftReady {
        checkInvariants()
        var ready = RaftReady()
        ready.messages = envelopes.map { var envelope = $0; envelope.cluster = cluster; return envelope }
        ready.applied = applied
        applied = []
        if role != before.role { ready.role = role }
        if leader != before.leader { ready.leader = leader.map { .known($0) } ?? .unknown }
        if leaseUntil != before.leaseUntil { ready.leaseUntil = leaseUntil }
        return ready
    }

    /// What holds between steps, whatever happened (TigerBeetle asserts its invariants where
    /// they must hold): nothing is committed beyond the log, applied beyond the commit, or
    /// compacted beyond what was applied; a node names itself leader exactly when it leads.
    func checkInvariants() {
        precondition(commitIndex <= log.lastIndex, "Invalid state: commit index \(commitIndex) beyond the log's last index \(log.lastIndex)")
        precondition(map.appliedIndex <= commitIndex, "Invalid state: applied \(map.appliedIndex) beyond the commit index \(commitIndex)")
        precondition(log.snapshotIndex <= map.appliedIndex, "Invalid state: snapshot at \(log.snapshotIndex) beyond what was applied (\(map.appliedIndex))")
        precondition((role == .leader) == (leader == id), "Invalid state: role \(role) with leader \(leader.map { "\($0)" } ?? "none")")
    }

    mutating func advance(now: UInt64) -> [RaftEnvelope] {
        var out: [RaftEnvelope] = []
        switch state {
        case .leader(let leader):
            if now >= leader.quorumCheckAt {
                // Check-quorum: a leader that has not heard from a majority within an election
                // timeout steps down, so an isolated leader stops acting as one.
                let heard = voterNames.filter { $0 == id.name || (leader.lastAcknowledged[$0].map { now - $0 <= settings.electionTimeoutMilliseconds.lowerBound } ?? false) }
                if heard.count < quorum {
                    becomeFollower(term: term, leader: nil, now: now)
                    return out
                }
                leading!.quorumCheckAt = now + settings.electionTimeoutMilliseconds.lowerBound
            }
            if quorum == 1 {
                leaseUntil = max(leaseUntil, now + settings.leaseMilliseconds)
                leading!.leaseUntil = leaseUntil
            }
            if now >= leader.nextHeartbeat {
                out += replicateToAll(now: now)
                leading!.nextHeartbeat = now + settings.leaderHeartbeatMilliseconds
            }
            if now >= leader.nextDecision {
                leading!.nextDecision = now + Self.decisionIntervalMilliseconds
                leading!.memberSeen[id.name] = (id.incarnation, now)
                leading!.memberInSync[id.name] = (Set(copiesInSync(now: now)), map.appliedIndex)
                leading!.memberHandedOff[id.name] = reportedHandedOff
                leading!.memberDraining[id.name] = draining
                out += decide(now: now)
                advanceCommit()
            }
        case .follower, .preCandidate, .candidate:
            if now >= electionDeadline, isVoter(id) {
                out += startElection(preVote: true, now: now)
            }
        case .bootstrapping, .learner:
            break
        }
        if now >= nextMemberHeartbeat {
            nextMemberHeartbeat = now + settings.memberHeartbeatMilliseconds
            out += report(now: now)
            if role == .bootstrapping { bootstrapIfAllFresh(now: now) }
        }
        return out
    }

    /// The member's periodic report: to the leader, or to every voter when it knows none.
    mutating func report(now: UInt64) -> [RaftEnvelope] {
        // The leader hears itself directly (`decide` records its own copies).
        guard role != .leader else { return [] }
        if role == .learner, let known = leader, now - max(learnerLeaderSince, lastHeard[known.name]?.at ?? 0) > settings.electionTimeoutMilliseconds.upperBound {
            // The leader a learner reports to went silent (it died, or left the site): a new
            // leader replicates only to voters and to members it hears, so it would never reach
            // this node. Ask every voter again; their answers name the new leader.
            leader = nil
        }
        let inSync = copiesInSync(now: now)
        let message = RaftMessage.heartbeat(
            term: term, fresh: !isEstablished, inSync: inSync, handedOff: reportedHandedOff.sorted(), draining: draining, topologyVersion: topologyVersion,
            sentAt: now, mapIndex: map.appliedIndex
        )
        if let leader, role != .bootstrapping {
            return [RaftEnvelope(from: id, to: leader.name, message: message)]
        }
        return voterNames.filter { $0 != id.name }.map { RaftEnvelope(from: id, to: $0, message: message) }
    }

    /// The copies this node holds that count as caught up: held for `catchUpMilliseconds` (the
    /// data plane's state transfer; immediate until synchronous replication exists).
    mutating func copiesInSync(now: UInt64) -> [PartitionEpoch] {
        if let caughtUpCopies {
            return map.partitions.filter { $0.holders.contains(id.name) }.map { PartitionEpoch(partition: $0.partition, epoch: $0.epoch) }
                .filter(caughtUpCopies.contains)
        }
        var inSync: [PartitionEpoch] = []
        var held: [PartitionEpoch: UInt64] = [:]
        for assignment in map.partitions where assignment.holders.contains(id.name) {
            let copy = PartitionEpoch(partition: assignment.partition, epoch: assignment.epoch)
            let since = copiesHeldSince[copy] ?? now
            held[copy] = since
            if now - since >= settings.catchUpMilliseconds { inSync.append(copy) }
        }
        copiesHeldSince = held
        return inSync
    }

    /// On the leader: members that reported within the failure timeout but follow an older
    /// map than this one. A leader about to stop waits for them, so that they see the map it
    /// leaves behind (every member leaving, say) rather than wait for a new leader.
    public func membersBehindMap(now: UInt64) -> [String] {
        guard let leader = leading else { return [] }
        return leader.memberSeen.filter { name, seen in
            name != id.name && now - seen.at <= settings.failureTimeoutMilliseconds && (leader.memberInSync[name]?.mapIndex ?? 0) < map.appliedIndex
        }.map(\.key).sorted()
    }

    /// The primaries this node reports handed off. Without a data plane (nil
    /// `caughtUpCopies`) a primary holds no writes to finish: it hands off at once.
    var reportedHandedOff: Set<PartitionEpoch> {
        guard caughtUpCopies == nil else { return handedOffCopies }
        return Set(map.partitions.filter { $0.primary == id.name && $0.handoverTo != nil }.map { PartitionEpoch(partition: $0.partition, epoch: $0.epoch) })
    }

    /// A fresh voter that heard every other voter answer `fresh` bootstraps the cluster with
    /// the incarnations it heard: nobody has state that could be contradicted.
    mutating func bootstrapIfAllFresh(now: UInt64) {
        let others = voterNames.filter { $0 != id.name }
        guard case .bootstrapping(let probes) = state, others.allSatisfy({ probes[$0]?.fresh == true }) else { return }
        var set: [String: UInt64] = [id.name: id.incarnation]
        for name in others { set[name] = probes[name]!.incarnation }
        bootstrapVoters = set
        cluster = Self.fingerprint(of: set)
        state = .follower
        resetElectionTimer(now: now)
    }

    // MARK: Elections

    mutating func startElection(preVote: Bool, now: UInt64) -> [RaftEnvelope] {
        // From a (pre-)candidate: either its pre-vote just won (the vote itself should take
        // a round trip; a split vote retries soon) or its last attempt failed.
        resetElectionTimer(now: now, retry: role == .preCandidate || role == .candidate)
        leader = nil
        if preVote {
            state = .preCandidate(votes: [id.name])
        } else {
            state = .candidate(votes: [id.name])
            term += 1
            votedFor = id
        }
        if 1 >= quorum { return preVote ? startElection(preVote: false, now: now) : becomeLeader(now: now) }
        let message = RaftMessage.voteRequest(term: preVote ? term + 1 : term, lastLogIndex: lastIndex, lastLogTerm: log.lastTerm, preVote: preVote)
        return voterNames.filter { $0 != id.name }.map { RaftEnvelope(from: id, to: $0, message: message) }
    }

    mutating func becomeFollower(term newTerm: UInt64, leader newLeader: MemberID?, now: UInt64) {
        if newTerm > term {
            term = newTerm
            votedFor = nil
        }
        // A voter follows; a node outside the voter set keeps bootstrapping or learning.
        if isVoter(id) {
            state = .follower
        } else if role != .bootstrapping {
            state = .learner
        }
        leader = newLeader
        resetElectionTimer(now: now)
    }

    mutating func becomeLeader(now: UInt64) -> [RaftEnvelope] {
        var fresh = LeaderState(nextHeartbeat: now + settings.leaderHeartbeatMilliseconds, quorumCheckAt: now + settings.electionTimeoutMilliseconds.lowerBound)
        leader = id
        for name in voterNames where name != id.name { fresh.lastAcknowledged[name] = now }
        // Silence is measured afresh: what an earlier term of this node saw is stale. Every
        // member the map has up counts as just seen, except the leader this node followed
        // last: it has been silent since this node last heard from it (an election starts only
        // after an election timeout without a leader), so a dead leader's partitions move at
        // the first decision instead of a failure timeout later. A deposed leader that is alive
        // keeps reporting to every voter, which `lastHeard` records.
        for member in map.members.values where member.state == .up { fresh.memberSeen[member.name] = (member.incarnation, now) }
        if let previousLeader, previousLeader.name != id.name, let lastLeaderContact,
            let member = map.members[previousLeader.name], member.state == .up, member.incarnation == previousLeader.incarnation
        {
            var silentSince = lastLeaderContact
            if let heard = lastHeard[previousLeader.name], heard.incarnation == previousLeader.incarnation { silentSince = max(silentSince, heard.at) }
            fresh.memberSeen[previousLeader.name] = (previousLeader.incarnation, min(silentSince, now))
        }
        state = .leader(fresh)
        // Used once: a later term of this node must not judge a leader from long ago.
        previousLeader = nil
        if lastIndex == 0, let bootstrapVoters {
            // The cluster's first entries: the voters' incarnations.
            for (name, incarnation) in bootstrapVoters.sorted(by: { $0.key < $1.key }) {
                append(.memberIncarnation(name: name, incarnation: incarnation))
            }
        }
        append(.noop)
        advanceCommit()
        return replicateToAll(now: now)
    }

    mutating func append(_ command: ClusterCommand) {
        log.append(term: term, command: command)
    }

    /// Appends a command the runtime asks for (a role change from an operator or learned from
    /// another site) when this node leads; nil when it does not, and the caller asks the
    /// leader. Committed like the leader's own decisions; the returned step carries it once
    /// applied (at once in a site of one voter).
    public mutating func propose(_ command: ClusterCommand, now: UInt64) -> RaftReady? {
        guard role == .leader else { return nil }
        let before = (role: role, leader: leader, leaseUntil: leaseUntil)
        append(command)
        advanceCommit()
        return ready(replicateToAll(now: now), since: before)
    }

    // MARK: Receiving

    public mutating func receive(_ envelope: RaftEnvelope, now: UInt64) -> RaftReady {
        let before = (role: role, leader: leader, leaseUntil: leaseUntil)
        return ready(handle(envelope, now: now), since: before)
    }

    /// The cluster of the voters that bootstrapped a history (FNV-1a over the sorted
    /// names and incarnations; never 0).
    static func fingerprint(of voters: [String: UInt64]) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for (name, incarnation) in voters.sorted(by: { $0.key < $1.key }) {
            for byte in Array(name.utf8) + withUnsafeBytes(of: incarnation.littleEndian, Array.init) {
                hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3
            }
        }
        return max(1, hash)
    }

    /// Whether a leader's message from `other` cluster may be taken: a node with no history
    /// adopts the leader's cluster; a non-voter with another history drops it (it has no vote
    /// and counts for no commitment) and follows; a voter never mixes two histories.
    mutating func acceptsLeader(of other: UInt64) -> Bool {
        guard other != 0, other != cluster else { return true }
        if cluster != 0 && lastIndex > 0 {
            guard !isVoter(id) else { return false }
            forgetHistory()
        }
        cluster = other
        return true
    }

    mutating func handle(_ envelope: RaftEnvelope, now: UInt64) -> [RaftEnvelope] {
        guard envelope.to == id.name, envelope.from.name != id.name else { return [] }
        switch envelope.message {
        case .appendRequest, .snapshot:
            guard acceptsLeader(of: envelope.cluster) else { return [] }
        default:
            break
        }
        let from = envelope.from
        lastHeard[from.name] = (from.incarnation, now)
        switch envelope.message {
        case .voteRequest(let candidateTerm, let lastLogIndex, let lastLogTerm, let preVote):
            return [RaftEnvelope(from: id, to: from.name, message: handleVote(from: from, term: candidateTerm, lastLogIndex: lastLogIndex, lastLogTerm: lastLogTerm, preVote: preVote, now: now))]
        case .voteReply(let replyTerm, let granted, let preVote):
            return handleVoteReply(from: from, term: replyTerm, granted: granted, preVote: preVote, now: now)
        case .appendRequest(let leaderTerm, let previousIndex, let previousTerm, let entries, let leaderCommit, let sentAt):
            return handleAppend(
                from: from, term: leaderTerm, previousIndex: previousIndex, previousTerm: previousTerm, entries: entries, leaderCommit: leaderCommit,
                sentAt: sentAt, now: now
            )
        case .appendReply(let replyTerm, let success, let match, let echo):
            return handleAppendReply(from: from, term: replyTerm, success: success, matchIndex: match, echo: echo, now: now)
        case .snapshot(let leaderTerm, let snapshotLastIndex, let snapshotLastTerm, let snapshot):
            return handleSnapshot(from: from, term: leaderTerm, lastIndex: snapshotLastIndex, lastTerm: snapshotLastTerm, map: snapshot, now: now)
        case .heartbeat(let memberTerm, let fresh, let inSync, let handedOff, let draining, let version, let sentAt, let mapIndex):
            return handleHeartbeat(
                from: from, term: memberTerm, fresh: fresh, inSync: inSync, handedOff: handedOff, draining: draining, topologyVersion: version, sentAt: sentAt,
                mapIndex: mapIndex, now: now
            )
        case .heartbeatReply(_, let established, let fresh, let knownLeader, let granted, let leaderCommit):
            // The leader itself answered this node's report and granted a lease: it counts
            // this node as alive from then, so this node may act until the lease it computed
            // from the report's send time — once its map is as new as the leader's was (a stale
            // map may still name it primary of partitions that moved).
            if knownLeader == from, granted > 0, granted <= now + settings.leaseMilliseconds, map.appliedIndex >= leaderCommit {
                leaseUntil = max(leaseUntil, granted)
            }
            if case .bootstrapping(var probes) = state {
                probes[from.name] = RoleState.Probe(fresh: fresh, established: established, incarnation: from.incarnation)
                // A cluster exists: join it as a learner; its leader will adopt this incarnation.
                state = established ? .learner : .bootstrapping(probes: probes)
            }
            if role == .learner || role == .bootstrapping {
                // A learner reports to the leader it knows; when that node answers that another
                // one leads (or none), the learner reports there instead — or the real leader,
                // which replicates only to voters and to members it hears, never reaches it.
                if leader == nil || (leader?.name == from.name && knownLeader != from) {
                    leader = knownLeader
                    learnerLeaderSince = now
                }
            }
            return []
        }
    }

    mutating func handleVote(from candidate: MemberID, term candidateTerm: UInt64, lastLogIndex: UInt64, lastLogTerm: UInt64, preVote: Bool, now: UInt64) -> RaftMessage {
        // Only a voter of the known configuration votes, and only for one.
        guard isVoter(id), isVoter(candidate) else { return .voteReply(term: term, granted: false, preVote: preVote) }
        if preVote {
            // Leader stickiness: while a leader is heard, nobody disrupts it.
            let leaderAlive = role == .leader || (lastLeaderContact.map { now - $0 < settings.electionTimeoutMilliseconds.lowerBound } ?? false)
            let granted = candidateTerm > term && !leaderAlive && log.candidateIsUpToDate(lastLogIndex: lastLogIndex, lastLogTerm: lastLogTerm)
            return .voteReply(term: candidateTerm, granted: granted, preVote: true)
        }
        if candidateTerm > term { becomeFollower(term: candidateTerm, leader: nil, now: now) }
        let granted = candidateTerm == term && (votedFor == nil || votedFor == candidate)
            && log.candidateIsUpToDate(lastLogIndex: lastLogIndex, lastLogTerm: lastLogTerm)
        if granted {
            votedFor = candidate
            resetElectionTimer(now: now)
        }
        return .voteReply(term: term, granted: granted, preVote: false)
    }

    mutating func handleVoteReply(from voter: MemberID, term replyTerm: UInt64, granted: Bool, preVote: Bool, now: UInt64) -> [RaftEnvelope] {
        if !preVote && replyTerm > term {
            becomeFollower(term: replyTerm, leader: nil, now: now)
            return []
        }
        guard granted, isVoter(voter) else { return [] }
        switch state {
        case .preCandidate(var votes) where preVote && replyTerm == term + 1:
            votes.insert(voter.name)
            state = .preCandidate(votes: votes)
            if votes.count >= quorum { return startElection(preVote: false, now: now) }
        case .candidate(var votes) where !preVote && replyTerm == term:
            votes.insert(voter.name)
            state = .candidate(votes: votes)
            if votes.count >= quorum { return becomeLeader(now: now) }
        default:
            break
        }
        return []
    }

    mutating func handleAppend(
        from sender: MemberID, term leaderTerm: UInt64, previousIndex: UInt64, previousTerm: UInt64, entries: [LogEntry], leaderCommit: UInt64,
        sentAt: UInt64, now: UInt64
    ) -> [RaftEnvelope] {
        // Every answer echoes the request's send time (the leader's lease). A non-voter takes
        // no part in elections: it follows whoever leads, whatever term it last knew (after
        // a re-bootstrap of every voter, its old term is higher than the new cluster's).
        guard leaderTerm >= term || !isVoter(id) else {
            return [RaftEnvelope(from: id, to: sender.name, message: .appendReply(term: term, success: false, matchIndex: 0, echo: sentAt))]
        }
        // (Its answers must carry the leader's term, or the leader ignores them.)
        if !isVoter(id) { term = leaderTerm }
        becomeFollower(term: leaderTerm, leader: sender, now: now)
        lastLeaderContact = now
        previousLeader = sender
        if role == .bootstrapping { state = .learner }
        if !isVoter(id), contradictsCommitted(previousIndex: previousIndex, previousTerm: previousTerm, entries: entries) {
            forgetHistory()
        }
        guard previousIndex <= lastIndex, previousIndex < log.snapshotIndex || log.term(at: previousIndex) == previousTerm else {
            // Missing or conflicting: hint the leader back to what might match.
            let hint = min(lastIndex, previousIndex > 0 ? previousIndex - 1 : 0)
            return [RaftEnvelope(from: id, to: sender.name, message: .appendReply(term: term, success: false, matchIndex: max(hint, commitIndex), echo: sentAt))]
        }
        log.accept(entries, committed: commitIndex)
        let matched = max(previousIndex, entries.last?.index ?? previousIndex)
        // Never backwards: an append that matched less than this node holds (a probe from a
        // leader that has not learnt this node's progress) says nothing against what it
        // already knows committed.
        if min(leaderCommit, matched) > commitIndex {
            commitIndex = min(leaderCommit, matched)
            applyCommitted()
        }
        if isVoter(id) && role == .learner { state = .follower }
        return [RaftEnvelope(from: id, to: sender.name, message: .appendReply(term: term, success: true, matchIndex: matched, echo: sentAt))]
    }

    /// Whether a leader's entries (or the entry before them) disagree with an entry this node
    /// applied as committed: the leader belongs to another history (the voters re-bootstrapped).
    func contradictsCommitted(previousIndex: UInt64, previousTerm: UInt64, entries: [LogEntry]) -> Bool {
        if previousIndex > log.snapshotIndex, previousIndex <= commitIndex, let mine = log.term(at: previousIndex), mine != previousTerm { return true }
        return entries.contains { entry in
            entry.index > log.snapshotIndex && entry.index <= commitIndex && log.term(at: entry.index).map { $0 != entry.term } == true
        }
    }

    /// A non-voter drops the history a leader contradicts and starts again from nothing (it
    /// holds no vote and counts for no commitment, so nothing depends on what it had).
    mutating func forgetHistory() {
        precondition(!isVoter(id), "Invalid state: a voter may never drop committed entries")
        commitIndex = 0
        bootstrapVoters = nil
        map = ClusterMap(voters: voterNames, partitionCount: map.partitions.count, backupCount: map.backupCount, roles: map.roles)
        log = RaftLog(map: map)
        copiesHeldSince = [:]
    }

    mutating func handleSnapshot(from sender: MemberID, term leaderTerm: UInt64, lastIndex snapshotLastIndex: UInt64, lastTerm snapshotLastTerm: UInt64, map snapshot: ClusterMap, now: UInt64) -> [RaftEnvelope] {
        guard leaderTerm >= term || !isVoter(id) else {
            return [RaftEnvelope(from: id, to: sender.name, message: .appendReply(term: term, success: false, matchIndex: 0, echo: 0))]
        }
        if !isVoter(id) { term = leaderTerm }
        becomeFollower(term: leaderTerm, leader: sender, now: now)
        lastLeaderContact = now
        previousLeader = sender
        if role == .bootstrapping { state = .learner }
        if !isVoter(id), snapshotLastIndex <= commitIndex, snapshotLastIndex > log.snapshotIndex, log.term(at: snapshotLastIndex) != snapshotLastTerm {
            forgetHistory()
        }
        if snapshotLastIndex > commitIndex {
            log.install(snapshotIndex: snapshotLastIndex, term: snapshotLastTerm, map: snapshot)
            map = snapshot
            commitIndex = snapshotLastIndex
            applied.append(LogEntry(index: snapshotLastIndex, term: snapshotLastTerm, command: .noop))
        }
        if isVoter(id) && role == .learner { state = .follower }
        return [RaftEnvelope(from: id, to: sender.name, message: .appendReply(term: term, success: true, matchIndex: max(snapshotLastIndex, commitIndex), echo: 0))]
    }

    mutating func handleAppendReply(from follower: MemberID, term replyTerm: UInt64, success: Bool, matchIndex match: UInt64, echo: UInt64, now: UInt64) -> [RaftEnvelope] {
        // Only a voter's higher term deposes a leader: a non-voter's term can be left over
        // from a cluster that no longer exists.
        if replyTerm > term, isVoter(follower) {
            becomeFollower(term: replyTerm, leader: nil, now: now)
            return []
        }
        guard role == .leader, replyTerm == term else { return [] }
        leading!.progress.note(follower)
        // Check-quorum counts voters only: a learner (a restarted node's new incarnation)
        // answering does not make a leader that lost its majority legitimate.
        if isVoter(follower) {
            leading!.lastAcknowledged[follower.name] = now
            if echo > 0, echo <= now {
                leading!.acknowledgedSentAt[follower.name] = max(leading!.acknowledgedSentAt[follower.name] ?? 0, echo)
                extendLeaderLease()
            }
        }
        if success {
            leading!.progress.replicated(follower.name, through: match)
            advanceCommit()
            if admitsVoter(follower, now: now) {
                // It votes from the moment the others append this: replicate it at once.
                append(.voterIncarnation(name: follower.name, incarnation: follower.incarnation))
                return replicateToAll(now: now)
            }
            if (leading?.progress.next[follower.name] ?? 1) <= lastIndex { return [replicate(to: follower.name, now: now)] }
            return []
        }
        leading!.progress.refused(follower.name, hint: match, lastIndex: lastIndex)
        return [replicate(to: follower.name, now: now)]
    }

    mutating func handleHeartbeat(
        from member: MemberID, term memberTerm: UInt64, fresh: Bool, inSync: [PartitionEpoch], handedOff: [PartitionEpoch], draining: Bool, topologyVersion version: UInt64,
        sentAt: UInt64, mapIndex: UInt64, now: UInt64
    ) -> [RaftEnvelope] {
        if case .bootstrapping(var probes) = state {
            probes[member.name] = RoleState.Probe(fresh: fresh, established: !fresh, incarnation: member.incarnation)
            state = .bootstrapping(probes: probes)
        }
        var catchUp: [RaftEnvelope] = []
        if role == .leader {
            leading!.memberSeen[member.name] = (member.incarnation, now)
            leading!.memberInSync[member.name] = (Set(inSync), mapIndex)
            leading!.memberHandedOff[member.name] = Set(handedOff)
            leading!.memberDraining[member.name] = draining
            leading!.memberTopologyVersion[member.name] = version
            leading!.progress.note(member)
            if isVoter(member) { leading!.lastAcknowledged[member.name] = now }
            // A member this leader has sent nothing yet (a restarted node's new incarnation):
            // its catch-up starts now rather than at the next heartbeat.
            if leading!.progress.next[member.name] == nil { catchUp = [replicate(to: member.name, now: now)] }
        }
        return catchUp + [
            RaftEnvelope(
                from: id, to: member.name,
                message: .heartbeatReply(
                    term: term, established: isEstablished, fresh: !isEstablished, leader: role == .leader ? id : leader,
                    leaseUntil: grantedLease(to: member, sentAt: sentAt, now: now), leaderCommit: commitIndex
                )
            )
        ]
    }

    // MARK: Replication (leader)

    mutating func replicateToAll(now: UInt64) -> [RaftEnvelope] {
        var targets = Set(voterNames)
        for (name, seen) in leading?.memberSeen ?? [:] where now - seen.at <= settings.failureTimeoutMilliseconds * 2 { targets.insert(name) }
        targets.remove(id.name)
        return targets.sorted().map { replicate(to: $0, now: now) }
    }

    mutating func replicate(to name: String, now: UInt64) -> RaftEnvelope {
        let next = leading?.progress.next[name] ?? (lastIndex + 1)
        if next <= log.snapshotIndex {
            return RaftEnvelope(from: id, to: name, message: .snapshot(term: term, lastIndex: log.snapshotIndex, lastTerm: log.snapshotTerm, map: log.snapshotMap))
        }
        let previous = next - 1
        let entries = log.entries(from: next, limit: settings.maximumEntriesPerMessage)
        return RaftEnvelope(
            from: id, to: name,
            message: .appendRequest(term: term, previousIndex: previous, previousTerm: log.term(at: previous) ?? 0, entries: entries, leaderCommit: commitIndex, sentAt: now)
        )
    }

    /// The leader's lease: a majority (itself included) answered appends it sent at or after
    /// the quorum's oldest such send time. Until that time plus a lease, no other node can
    /// have won an election (a voter answering this leader does not vote for another
    /// within an election timeout).
    mutating func extendLeaderLease() {
        guard let leader = leading else { return }
        let others = voters.keys.filter { $0 != id.name }.compactMap { leader.acknowledgedSentAt[$0] }.sorted(by: >)
        guard quorum >= 2, others.count >= quorum - 1 else { return }
        leaseUntil = max(leaseUntil, others[quorum - 2] + settings.leaseMilliseconds)
        leading!.leaseUntil = max(leader.leaseUntil, others[quorum - 2] + settings.leaseMilliseconds)
    }

    /// The leader grants a member a lease only while the map has that incarnation up and no
    /// proposed entry takes it down: once the leader has decided a member is gone, a late
    /// report must not let it act again before the decision is committed.
    func grantsLease(to member: MemberID) -> Bool {
        guard let known = map.members[member.name], known.state == .up, known.incarnation == member.incarnation else { return false }
        for entry in log.entries(after: map.appliedIndex) {
            switch entry.command {
            case .memberState(member.name, .down), .memberIncarnation(member.name, _): return false
            default: continue
            }
        }
        return true
    }

    /// The lease a leader grants for a report sent at `sentAt` (the member's clock): a lease
    /// from then, but no longer than the leader's own remaining lease — a leader that has
    /// been replaced without knowing it must not keep members acting past its own end.
    func grantedLease(to member: MemberID, sentAt: UInt64, now: UInt64) -> UInt64 {
        guard role == .leader, sentAt > 0, leaseUntil > now, grantsLease(to: member) else { return 0 }
        return sentAt + min(settings.leaseMilliseconds, leaseUntil - now)
    }

    /// Whether this node may act as primary of the partitions its map gives it now.
    public func holdsLease(now: UInt64) -> Bool { now < leaseUntil }

    /// The partitions this node may act as primary for now: its applied map has this
    /// incarnation up and names it their primary, and its lease is valid.
    public func actingPrimaries(now: UInt64) -> [PartitionEpoch] {
        guard holdsLease(now: now), let member = map.members[id.name], member.incarnation == id.incarnation, member.state == .up else { return [] }
        return map.partitions.filter { $0.primary == id.name }.map { PartitionEpoch(partition: $0.partition, epoch: $0.epoch) }
    }

    /// The epoch at which this node may act as primary of `partition` now (see
    /// `actingPrimaries`), or nil.
    public func actingPrimaryEpoch(of partition: Int, now: UInt64) -> UInt64? {
        guard holdsLease(now: now), partition >= 0, partition < map.partitions.count, map.partitions[partition].primary == id.name,
            let member = map.members[id.name], member.incarnation == id.incarnation, member.state == .up
        else { return nil }
        return map.partitions[partition].epoch
    }

    /// Whether `member` is a new incarnation of a voter that holds this leader's whole log, so
    /// that its vote may replace the old incarnation's now: it has every entry the old one
    /// could have acknowledged. One configuration change at a time (Raft's single-server
    /// changes): not while another is appended and uncommitted.
    ///
    /// Only under this leader's lease (a majority of the current voters answered it within the
    /// lease, so no other leader can exist): a deposed leader that does not know it yet could
    /// otherwise make a majority of itself and an empty new incarnation, and commit entries
    /// that contradict what the real leader committed.
    func admitsVoter(_ member: MemberID, now: UInt64) -> Bool {
        guard let leader = leading, now < leader.leaseUntil, voterNames.contains(member.name), voters[member.name] != member.incarnation,
            leader.progress.holds(member.name, incarnation: member.incarnation, through: lastIndex)
        else { return false }
        return !log.entries(after: commitIndex).contains { entry in
            switch entry.command {
            case .memberIncarnation, .voterIncarnation: return true
            default: return false
            }
        }
    }

    /// Commits the highest index of this term a majority of the voters holds.
    mutating func advanceCommit() {
        guard let progress = leading?.progress else { return }
        let current = voters
        var candidate = lastIndex
        while candidate > commitIndex {
            guard log.term(at: candidate) == term else { break }
            let holders = current.keys.filter { name in
                name == id.name || progress.holds(name, incarnation: current[name], through: candidate)
            }
            if holders.count >= quorum {
                commitIndex = candidate
                applyCommitted()
                return
            }
            candidate -= 1
        }
    }

    mutating func applyCommitted() {
        while map.appliedIndex < commitIndex {
            let entry = log.entry(at: map.appliedIndex + 1)
            map.apply(entry.command, index: entry.index)
            applied.append(entry)
        }
        if log.count > settings.snapshotThreshold { log.compact(through: map.appliedIndex, map: map) }
        if role != .leader && role != .bootstrapping { state = isVoter(id) ? .follower : .learner }
    }

    // MARK: Decisions (leader)

    /// Proposes what the `MapController` decides from the committed map and this leader's
    /// observations, one batch at a time: only when everything proposed so far is committed
    /// and applied.
    mutating func decide(now: UInt64) -> [RaftEnvelope] {
        guard commitIndex == lastIndex, map.appliedIndex == commitIndex, let leader = leading else { return [] }
        let committed = commitIndex
        let node = self
        let observed = MapController.Observations(
            seen: leader.memberSeen, inSync: leader.memberInSync, handedOff: leader.memberHandedOff,
            draining: leader.memberDraining,
            topologyVersions: leader.memberTopologyVersion.merging([id.name: topologyVersion]) { $1 },
            listing: MapController.Listing(version: topologyVersion, nonVoters: listedNonVoters),
            holdsLog: { leader.progress.holds($0.name, incarnation: $0.incarnation, through: committed) },
            admitsVoter: { node.admitsVoter($0, now: now) }
        )
        let commands = MapController(failureTimeoutMilliseconds: settings.failureTimeoutMilliseconds, rebalanceMovesInFlight: settings.rebalanceMovesInFlight).proposals(map: map, voters: voters, observed: observed, now: now)
        guard !commands.isEmpty else { return [] }
        for command in commands { append(command) }
        advanceCommit()
        leading!.nextHeartbeat = now + settings.leaderHeartbeatMilliseconds
        return replicateToAll(now: now)
    }
}
