/// What one step of a `RaftNode` produced — a tick or a received message (etcd raft's
/// `Ready`): the messages to send, the entries applied to the map, and the role, leader and
/// lease where the step changed them. The runtime acts on this value; it never compares the
/// node's getters before and after a step to find out what happened.
public struct RaftReady: Sendable {
    public var messages: [RaftEnvelope] = []
    /// Entries applied to the cluster map in this step, in order (a snapshot install shows
    /// as one `noop` at its last index).
    public var applied: [LogEntry] = []
    /// The role after the step, when the step changed it.
    public var role: RaftNode.Role?
    /// The leader this node knows after the step, when the step changed it.
    public var leader: LeaderChange?
    /// Until when this node may act as primary of its partitions, when the step moved it.
    public var leaseUntil: UInt64?

    public enum LeaderChange: Hashable, Sendable {
        case known(MemberID)
        /// This node knows no leader now (it lost contact, or an election is under way).
        case unknown
    }

    public var isEmpty: Bool { messages.isEmpty && applied.isEmpty && role == nil && leader == nil && leaseUntil == nil }
}
