/// One entry of the control plane's replicated log.
public struct LogEntry: Hashable, Sendable {
    public var index: UInt64
    public var term: UInt64
    public var command: ClusterCommand

    public init(index: UInt64, term: UInt64, command: ClusterCommand) {
        self.index = index
        self.term = term
        self.command = command
    }
}

/// A message between the control planes of one site's nodes, addressed by node name: the
/// runtime delivers it to whichever process runs that node now.
public struct RaftEnvelope: Hashable, Sendable {
    public var from: MemberID
    public var to: String
    public var message: RaftMessage
    /// The sender's cluster: a fingerprint of the voters that bootstrapped its history (0:
    /// none yet). Terms and indexes start again when every voter restarts and the site
    /// bootstraps anew, so only this tells two histories apart.
    public var cluster: UInt64

    public init(from: MemberID, to: String, message: RaftMessage, cluster: UInt64 = 0) {
        self.from = from
        self.to = to
        self.message = message
        self.cluster = cluster
    }
}

public enum RaftMessage: Hashable, Sendable {
    /// A (pre-)vote request: `term` is the candidate's term (for a pre-vote: the term it would
    /// start). Pre-votes change nothing at the receiver.
    case voteRequest(term: UInt64, lastLogIndex: UInt64, lastLogTerm: UInt64, preVote: Bool)
    case voteReply(term: UInt64, granted: Bool, preVote: Bool)
    /// `sentAt`: the leader's clock when sent; the reply echoes it (the leader's lease).
    case appendRequest(term: UInt64, previousIndex: UInt64, previousTerm: UInt64, entries: [LogEntry], leaderCommit: UInt64, sentAt: UInt64)
    /// `matchIndex` is the follower's last matching index on success; on failure a hint of
    /// where the leader should retry from. `echo`: the request's `sentAt` (0: none).
    case appendReply(term: UInt64, success: Bool, matchIndex: UInt64, echo: UInt64)
    case snapshot(term: UInt64, lastIndex: UInt64, lastTerm: UInt64, map: ClusterMap)
    /// Every node's periodic report: to the leader when it knows one, else to every voter (a
    /// probe). `fresh` = it has no cluster state yet (bootstrap); `inSync` = the partitions
    /// (and their epochs) it holds a caught-up copy of; `sentAt` = its clock when sent;
    /// `topologyVersion` = the topology it runs (the leader adds and removes non-voters only
    /// once every member runs its own).
    case heartbeat(
        term: UInt64, fresh: Bool, inSync: [PartitionEpoch], handedOff: [PartitionEpoch] = [], draining: Bool = false, topologyVersion: UInt64 = 0,
        sentAt: UInt64, mapIndex: UInt64
    )
    /// The answer to a report or probe: whether the sender belongs to an established
    /// cluster, and the leader it follows. From the leader: `leaseUntil` = the lease it grants,
    /// on the member's clock (the report's `sentAt` plus at most the leader's own remaining
    /// lease; 0: none), valid once the member has applied the map up to `leaderCommit`.
    case heartbeatReply(term: UInt64, established: Bool, fresh: Bool, leader: MemberID?, leaseUntil: UInt64, leaderCommit: UInt64)
}

public struct PartitionEpoch: Hashable, Sendable, Comparable {
    public var partition: Int
    public var epoch: UInt64

    public init(partition: Int, epoch: UInt64) {
        self.partition = partition
        self.epoch = epoch
    }

    public static func < (lhs: PartitionEpoch, rhs: PartitionEpoch) -> Bool {
        (lhs.partition, lhs.epoch) < (rhs.partition, rhs.epoch)
    }
}
