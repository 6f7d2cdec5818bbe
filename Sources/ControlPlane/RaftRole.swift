/// A `RaftNode`'s role with the data only that role has (NIOHTTP2's state machines keep
/// per-state data in the state's case the same way): a candidate's votes die with its
/// candidacy, a leader's progress and member reports with its leadership, so nothing a role
/// computed can be used after the node left it.
enum RoleState: Sendable {
    /// A voter with no history yet, probing the others: what each answered.
    case bootstrapping(probes: [String: Probe])
    /// Not in the voter set (a restarted node's new incarnation, or a non-voter): follows.
    case learner
    case follower
    case preCandidate(votes: Set<String>)
    case candidate(votes: Set<String>)
    case leader(LeaderState)

    struct Probe: Sendable {
        var fresh: Bool
        var established: Bool
        var incarnation: UInt64
    }

    var role: RaftNode.Role {
        switch self {
        case .bootstrapping: return .bootstrapping
        case .learner: return .learner
        case .follower: return .follower
        case .preCandidate: return .preCandidate
        case .candidate: return .candidate
        case .leader: return .leader
        }
    }
}

/// What a leader keeps for the term it leads.
struct LeaderState: Sendable {
    var progress = ProgressTracker()
    /// Per voter, when it last answered (check-quorum), and the send time of the latest
    /// append it answered (the leader's lease).
    var lastAcknowledged: [String: UInt64] = [:]
    var acknowledgedSentAt: [String: UInt64] = [:]
    var nextHeartbeat: UInt64
    /// The lease this leadership earned (a majority of the voters answered appends sent
    /// since): until then no other leader can exist. A follower's lease from an earlier
    /// leader does not count.
    var leaseUntil: UInt64 = 0
    var nextDecision: UInt64 = 0
    var quorumCheckAt: UInt64
    /// Members' reports as this leader heard them: when each incarnation last reported, and
    /// the copies it holds caught up.
    var memberSeen: [String: (incarnation: UInt64, at: UInt64)] = [:]
    var memberInSync: [String: (copies: Set<PartitionEpoch>, mapIndex: UInt64)] = [:]
    /// Per member: the primaries it sealed for a handover with nothing left in flight.
    var memberHandedOff: [String: Set<PartitionEpoch>] = [:]
    /// Per member: whether its last report said it is leaving.
    var memberDraining: [String: Bool] = [:]
    /// Per member: the topology version its last report said it runs.
    var memberTopologyVersion: [String: UInt64] = [:]
}

/// A leader's view of its followers' logs (etcd's progress tracker): per member the next
/// index to send, the highest index known to be replicated there, and which incarnation
/// answers for the name — a new incarnation starts with an empty log, so what the old one
/// held never counts towards commitment.
struct ProgressTracker: Sendable {
    private(set) var next: [String: UInt64] = [:]
    private(set) var match: [String: UInt64] = [:]
    private(set) var incarnations: [String: UInt64] = [:]

    mutating func note(_ member: MemberID) {
        if let known = incarnations[member.name], known != member.incarnation {
            match[member.name] = 0
            next[member.name] = nil
        }
        incarnations[member.name] = member.incarnation
    }

    /// The member holds the log up to `index` (a successful append).
    mutating func replicated(_ name: String, through index: UInt64) {
        match[name] = max(match[name] ?? 0, index)
        next[name] = max(next[name] ?? 1, index + 1)
    }

    /// The member refused an append: send from after `hint` (or earlier) next time.
    mutating func refused(_ name: String, hint: UInt64, lastIndex: UInt64) {
        next[name] = max(1, min(next[name] ?? lastIndex, hint + 1))
    }

    /// Whether `incarnation` of `name` holds the log up to `index`.
    func holds(_ name: String, incarnation: UInt64?, through index: UInt64) -> Bool {
        (match[name] ?? 0) >= index && incarnations[name] == incarnation
    }
}
