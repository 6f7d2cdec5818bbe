import ControlPlane

/// Invariant checkers. They see every node's role, term and applied entries after every
/// simulated millisecond and report the first violation.
public struct Checkers: Sendable {
    /// Election safety: at most one leader per term.
    public private(set) var leaderByTerm: [UInt64: MemberID] = [:]
    /// State machine safety: the entry committed at each index (its term and command) — no
    /// node may ever apply another there.
    var committed: [UInt64: LogEntry] = [:]
    /// The cluster map after each applied index (all nodes must apply the same sequence).
    var mapAfter: [UInt64: ClusterMap] = [:]
    /// No two primaries per partition epoch.
    var primaryByEpoch: [PartitionEpoch: String] = [:]
    /// Members just committed down: the simulation checks that each had stopped acting as a
    /// primary (its lease had run out) before its partitions could move.
    var committedDown: [(index: UInt64, member: MemberID)] = []
    /// Epochs started from a planned handover's hand-off (completed or abandoned), for reports:
    /// seeds that pass without any say nothing about them.
    public var handoversCompleted: Int { continuedEpochs.count }
    var continuedEpochs: Set<PartitionEpoch> = []

    public init() {}

    mutating func observe(node: String, raft: RaftNode, applied: [LogEntry]) -> String? {
        if raft.role == .leader {
            if let existing = leaderByTerm[raft.term], existing != raft.id {
                return "two leaders in term \(raft.term): \(existing) and \(raft.id)"
            }
            leaderByTerm[raft.term] = raft.id
        }
        for entry in applied {
            if let known = committed[entry.index] {
                // A snapshot install shows as a `noop` marker at its index; the map comparison
                // below checks it.
                let isSnapshotMarker = entry.command == .noop && raft.map.appliedIndex == entry.index && known != entry
                if known != entry && !isSnapshotMarker {
                    return "\(node) applied \(entry) at index \(entry.index), but \(known) was committed there"
                }
            } else {
                committed[entry.index] = entry
                if case .assign(let assignment) = entry.command, assignment.continuing {
                    continuedEpochs.insert(PartitionEpoch(partition: assignment.partition, epoch: assignment.epoch))
                }
                if case .memberState(let name, .down) = entry.command, let member = raft.map.members[name] {
                    committedDown.append((entry.index, MemberID(name: name, incarnation: member.incarnation)))
                }
            }
        }
        if !applied.isEmpty {
            let index = raft.map.appliedIndex
            if let known = mapAfter[index], known != raft.map {
                return "\(node)'s cluster map after index \(index) differs from another node's"
            }
            mapAfter[index] = raft.map
            for assignment in raft.map.partitions {
                guard let primary = assignment.primary else { continue }
                let key = PartitionEpoch(partition: assignment.partition, epoch: assignment.epoch)
                if let existing = primaryByEpoch[key], existing != primary {
                    return "partition \(assignment.partition) has two primaries in epoch \(assignment.epoch): \(existing) and \(primary)"
                }
                primaryByEpoch[key] = primary
            }
        }
        return nil
    }
}
