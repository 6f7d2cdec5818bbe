import ControlPlane

/// What a node's partition copies ask the shell to do. Actions of one step are performed in
/// order (a discard before the transfer request that follows it; replication messages before
/// the commits that release replies).
public enum CopyAction: Hashable, Sendable {
    /// Drop every key of the partition: the copy was given away, or a new one starts empty.
    case discard(partition: Int)
    /// This node is the partition's primary from now on, at `epoch`: its keys' expiries are
    /// its to run (a backup skipped them).
    case becamePrimary(partition: Int, epoch: UInt64)
    /// This node is no longer the partition's primary: commands waiting for its commits will
    /// never see them (their outcome is unknown: the new primary may hold them).
    case stoppedPrimary(partition: Int)
    /// The primary's machine asks for this.
    case primary(partition: Int, epoch: UInt64, PrimaryAction)
    /// A backup's machine asks for this; `primary` is where its messages go.
    case backup(partition: Int, epoch: UInt64, primary: String, BackupAction)
}

/// Every partition copy one node holds, following the committed cluster map (DESIGN.md §3):
/// a `PartitionPrimary` for each partition the map makes it primary of, a `PartitionBackup`
/// for each it backs up. It decides what becomes of a copy when the map changes:
/// - a new epoch as primary keeps the keys if this node held a whole copy (a caught-up backup
///   promoted, or its own copy coming back), else starts empty;
/// - a new backup role (or a new primary to follow) starts a fresh copy: discard, then a
///   state transfer;
/// - a partition given away is discarded, unless it waits, orphaned, for this node's copy.
///
/// Pure: the node's runtime and the simulator drive the same code.
public struct PartitionCopies: Sendable {
    public let node: String
    public let settings: ReplicationSettings
    public private(set) var primaries: [Int: PartitionPrimary] = [:]
    public private(set) var backups: [Int: PartitionBackup] = [:]
    /// Partitions orphaned from this node (as their primary or an in-sync backup): it holds a
    /// complete copy, kept for the moment the map reinstates it.
    public private(set) var orphanedCopies: Set<Int> = []

    public init(node: String, settings: ReplicationSettings = ReplicationSettings()) {
        self.node = node
        self.settings = settings
    }

    /// Brings the copies in line with the map's partition table. `adopted`: the map's member
    /// entry for this node is this process's incarnation. Until it is (a restarted node whose
    /// map still shows its previous life), the roles the map names are the old incarnation's,
    /// whose copies died with it: this node holds nothing.
    public mutating func follow(_ partitions: [PartitionAssignment], adopted: Bool = true, now: UInt64) -> [CopyAction] {
        var actions: [CopyAction] = []
        for var assignment in partitions {
            if !adopted {
                assignment = PartitionAssignment(partition: assignment.partition, epoch: assignment.epoch)
            }
            let partition = assignment.partition
            // A planned handover's next epoch: copies whole at its end carry on.
            let carriesOn = assignment.continuing && assignment.epoch > 0 && assignment.inSync.union([assignment.primary ?? ""]).contains(node)
                && holdsWholeCopy(partition, ofEpoch: assignment.epoch - 1)
            if assignment.primary == node {
                if primaries[partition]?.epoch != assignment.epoch {
                    let wasPrimary = primaries[partition] != nil
                    if wasPrimary { actions.append(.stoppedPrimary(partition: partition)) }
                    let backup = backups.removeValue(forKey: partition)
                    let wasOrphanedHere = orphanedCopies.remove(partition) != nil
                    if !(backup?.isCaughtUp ?? false) && !wasPrimary && !wasOrphanedHere { actions.append(.discard(partition: partition)) }
                    primaries[partition] = PartitionPrimary(partition: partition, epoch: assignment.epoch, settings: settings)
                    actions.append(.becamePrimary(partition: partition, epoch: assignment.epoch))
                }
                if primaries[partition]!.sealed != (assignment.handoverTo != nil) {
                    primaries[partition]!.sealed = assignment.handoverTo != nil
                }
                actions += primary(partition, primaries[partition]!.updateBackups(assignment.backups, inSync: assignment.inSync, now: now))
            } else if assignment.backups.contains(node), let primary = assignment.primary {
                guard backups[partition]?.epoch != assignment.epoch || backups[partition]?.primary != primary else { continue }
                orphanedCopies.remove(partition)
                if primaries.removeValue(forKey: partition) != nil { actions.append(.stoppedPrimary(partition: partition)) }
                if carriesOn {
                    backups[partition] = .continuing(partition: partition, epoch: assignment.epoch, primary: primary, settings: settings, now: now)
                    continue
                }
                var backup = PartitionBackup(partition: partition, epoch: assignment.epoch, primary: primary, settings: settings, now: now)
                let started = backup.start(now: now)
                backups[partition] = backup
                actions += self.backup(partition, started)
            } else {
                let held = primaries[partition] != nil || backups[partition] != nil || orphanedCopies.contains(partition)
                if primaries.removeValue(forKey: partition) != nil { actions.append(.stoppedPrimary(partition: partition)) }
                backups[partition] = nil
                if assignment.orphanedFrom?.name == node || assignment.orphanedCopies.contains(where: { $0.name == node }) {
                    // The partition waits for this node's copy: keep it, and remember it.
                    if held { orphanedCopies.insert(partition) }
                } else {
                    orphanedCopies.remove(partition)
                    if held { actions.append(.discard(partition: partition)) }
                }
            }
        }
        return actions
    }

    /// Whether this node's copy of `partition` at `epoch` held every write of that epoch when
    /// it ended: its primary sealed with everything committed, or a backup following it.
    /// (A backup the map counted in sync acknowledged every write the sealed primary
    /// committed; one still copying holds less.)
    func holdsWholeCopy(_ partition: Int, ofEpoch epoch: UInt64) -> Bool {
        if let primary = primaries[partition], primary.epoch == epoch { return primary.handedOff }
        if let backup = backups[partition], backup.epoch == epoch { return backup.isCaughtUp }
        return false
    }

    /// Primaries sealed for a planned handover with every write committed (reported to the
    /// control plane, which then starts the next epoch).
    public var handedOffCopies: Set<PartitionEpoch> {
        Set(primaries.values.filter(\.handedOff).map { PartitionEpoch(partition: $0.partition, epoch: $0.epoch) })
    }

    /// The copies that hold their whole partition (reported to the control plane).
    public var caughtUpCopies: Set<PartitionEpoch> {
        var copies = Set(primaries.map { PartitionEpoch(partition: $0.key, epoch: $0.value.epoch) })
        for (partition, backup) in backups where backup.isCaughtUp {
            copies.insert(PartitionEpoch(partition: partition, epoch: backup.epoch))
        }
        return copies
    }

    // MARK: As primary

    /// Numbers a write of `partition` (this node must be its primary) and sends it on.
    public mutating func submit(_ write: ReplicatedWrite, partition: Int, now: UInt64) -> (sequence: UInt64, actions: [CopyAction]) {
        guard primaries[partition] != nil else { preconditionFailure("Invalid state: a write to partition \(partition) on a node that is not its primary") }
        let (sequence, actions) = primaries[partition]!.submit(write, now: now)
        return (sequence, primary(partition, actions))
    }

    /// A backup's message about `partition` at `epoch`; one about another epoch is ignored.
    /// `keys`: the partition's keys now, read only for a transfer request.
    public mutating func receive(_ message: BackupMessage, from backup: String, partition: Int, epoch: UInt64, keys: () -> [[UInt8]], now: UInt64) -> [CopyAction] {
        guard primaries[partition]?.epoch == epoch else { return [] }
        let actions: [PrimaryAction]
        switch message {
        case .acknowledge(let sequence): actions = primaries[partition]!.acknowledge(from: backup, sequence: sequence, now: now)
        case .requestTransfer(let attempt): actions = primaries[partition]!.requestTransfer(from: backup, attempt: attempt, keys: keys(), now: now)
        case .acknowledgeChunk(let attempt, let chunk): actions = primaries[partition]!.acknowledgeChunk(from: backup, attempt: attempt, chunk: chunk, now: now)
        }
        return primary(partition, actions)
    }

    // MARK: As backup

    /// Writes from `sender` for `partition` at `epoch`: taken only by the backup of that epoch
    /// that follows that primary (an old primary's writes never count again).
    public mutating func receiveWrites(from sender: String, partition: Int, epoch: UInt64, firstSequence: UInt64, writes: [ReplicatedWrite], now: UInt64) -> [CopyAction] {
        guard var copy = backups[partition], copy.epoch == epoch, copy.primary == sender else { return [] }
        let actions = copy.receive(firstSequence: firstSequence, writes: writes, now: now)
        backups[partition] = copy
        return backup(partition, actions)
    }

    public mutating func receiveChunk(
        from sender: String, partition: Int, epoch: UInt64, attempt: UInt64, chunk: UInt32, baseSequence: UInt64, keys: [TransferredKey], last: Bool, now: UInt64
    ) -> [CopyAction] {
        guard var copy = backups[partition], copy.epoch == epoch, copy.primary == sender else { return [] }
        let actions = copy.receiveChunk(attempt: attempt, chunk: chunk, baseSequence: baseSequence, keys: keys, last: last, now: now)
        backups[partition] = copy
        return backup(partition, actions)
    }

    // MARK: Timers

    /// Resends stalled writes (primaries) and retries stalled transfers (backups).
    public mutating func tick(now: UInt64) -> [CopyAction] {
        var actions: [CopyAction] = []
        for partition in primaries.keys.sorted() {
            actions += primary(partition, primaries[partition]!.tick(now: now))
        }
        for partition in backups.keys.sorted() {
            let step = backups[partition]!.tick(now: now)
            actions += backup(partition, step)
        }
        return actions
    }

    func primary(_ partition: Int, _ actions: [PrimaryAction]) -> [CopyAction] {
        let epoch = primaries[partition]!.epoch
        return actions.map { .primary(partition: partition, epoch: epoch, $0) }
    }

    func backup(_ partition: Int, _ actions: [BackupAction]) -> [CopyAction] {
        let copy = backups[partition]!
        return actions.map { .backup(partition: partition, epoch: copy.epoch, primary: copy.primary, $0) }
    }
}
