/// Whether a draining member may stop now. Shared by the node and the simulator, so the
/// simulator's drains end exactly when the nodes' do.
public enum DrainDecision: Hashable, Sendable {
    /// Copies are still moving, or stopping now would cost the site its majority.
    case wait
    /// The map shows it leaving and holding no copy, and it holds none itself.
    case handedOver
    /// Every other member is down or leaving too (a whole site stopping): nothing can move.
    case nobodyToTakeOver
}

extension ClusterMap {
    /// Whether `name` stopping leaves a majority of the voters up and staying (true for a
    /// non-voter): without one the site could no longer commit a map change — no failover,
    /// no leases.
    public func leavesAMajorityOfVoters(without name: String) -> Bool {
        guard members[name]?.voter == true else { return true }
        let voters = members.values.filter(\.voter)
        let staying = voters.filter { $0.name != name && $0.state == .up && !$0.draining }.count
        return staying >= voters.count / 2 + 1
    }
}

extension RaftNode {
    /// What this member's drain may do now. `holdsCopies`: the data plane still holds a
    /// copy of some partition.
    public func drainDecision(holdsCopies: Bool, now: UInt64) -> DrainDecision {
        let name = id.name
        // A leader stopping first lets the members it hears follow its last map.
        guard membersBehindMap(now: now).isEmpty, map.members[name]?.draining == true else { return .wait }
        if map.eligibleMembers.isEmpty { return .nobodyToTakeOver }
        guard !map.holdsCopies(name), !holdsCopies, map.leavesAMajorityOfVoters(without: name) else { return .wait }
        return .handedOver
    }
}
