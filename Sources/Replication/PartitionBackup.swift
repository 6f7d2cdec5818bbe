/// A message from a backup to its partition's primary.
public enum BackupMessage: Hashable, Sendable {
    /// Applied every write up to `sequence` (cumulative).
    case acknowledge(sequence: UInt64)
    /// Send a copy of the partition (attempt numbers tell a retry from a duplicate).
    case requestTransfer(attempt: UInt64)
    /// Merged chunk `chunk` of transfer `attempt`.
    case acknowledgeChunk(attempt: UInt64, chunk: UInt32)
}

/// What a backup asks its shell to do, in this order.
public enum BackupAction: Hashable, Sendable {
    /// Drop every key of the partition: a new copy starts empty.
    case discardPartition
    /// Merge these keys' full states (a state-transfer chunk).
    case merge([TransferredKey])
    /// Apply a write.
    case apply(ReplicatedWrite)
    /// Send to the primary.
    case send(BackupMessage)
    /// The copy holds the whole partition now: report it caught up to the control plane.
    case reportCaughtUp
}

/// A backup copy of one partition at one epoch (DESIGN.md §3). It starts empty, asks its
/// primary for a state transfer, merges the chunks and applies every write strictly in
/// sequence order, acknowledging cumulatively. Anything from an older epoch is refused by
/// construction: the shell routes messages by (partition, epoch) and a `PartitionBackup`
/// exists for one epoch only. A copy is caught up once the last chunk is merged; from then
/// on it has every write the primary committed: the primary waits for it from the end of
/// the transfer on, and every write committed before arrived ahead of the final chunk.
///
/// Pure: time comes in as `now`, effects go out as actions.
public struct PartitionBackup: Sendable {
    public let partition: Int
    public let epoch: UInt64
    public let primary: String
    public let settings: ReplicationSettings

    enum Phase: Hashable, Sendable {
        /// Asked for a copy; writes are ignored until it starts. (`attempt` 0: not asked yet.)
        case requesting(attempt: UInt64, askedAt: UInt64)
        /// Merging chunks of `attempt`; writes after the base already apply. `heardAt`: the
        /// last chunk.
        case transferring(attempt: UInt64, nextChunk: UInt32, heardAt: UInt64)
        /// Holds the whole partition.
        case following
    }

    var phase: Phase
    /// Attempts so far (a new one discards what an earlier one merged).
    var attempts: UInt64 = 0
    /// Every write up to here is applied.
    public private(set) var appliedSequence: UInt64 = 0

    /// A new copy. `start` gives its first actions.
    public init(partition: Int, epoch: UInt64, primary: String, settings: ReplicationSettings = ReplicationSettings(), now: UInt64) {
        self.partition = partition
        self.epoch = epoch
        self.primary = primary
        self.settings = settings
        phase = .requesting(attempt: 0, askedAt: now)
    }

    /// A copy carried over from the epoch a planned handover ended: it holds every write of
    /// that epoch, which is exactly what the new primary holds, so it follows from this
    /// epoch's first write without a transfer.
    public static func continuing(partition: Int, epoch: UInt64, primary: String, settings: ReplicationSettings = ReplicationSettings(), now: UInt64) -> PartitionBackup {
        var copy = PartitionBackup(partition: partition, epoch: epoch, primary: primary, settings: settings, now: now)
        copy.phase = .following
        return copy
    }

    public var isCaughtUp: Bool { phase == .following }

    /// Starts (or restarts) the copy from nothing.
    public mutating func start(now: UInt64) -> [BackupAction] {
        attempts += 1
        phase = .requesting(attempt: attempts, askedAt: now)
        appliedSequence = 0
        return [.discardPartition, .send(.requestTransfer(attempt: attempts))]
    }

    /// Writes `firstSequence`, `firstSequence + 1`, … from the primary.
    public mutating func receive(firstSequence: UInt64, writes: [ReplicatedWrite], now: UInt64) -> [BackupAction] {
        // Writes say nothing of the transfer's progress: a chunk acknowledgement lost with a
        // connection would stall it for ever if they kept its timeout from running out.
        if case .requesting = phase { return [] }
        var actions: [BackupAction] = []
        for (offset, write) in writes.enumerated() {
            let sequence = firstSequence + UInt64(offset)
            // Already applied (a resend), or past a gap (lost frames): the acknowledgement
            // below tells the primary where to resume.
            guard sequence == appliedSequence + 1 else { continue }
            actions.append(.apply(write))
            appliedSequence = sequence
        }
        actions.append(.send(.acknowledge(sequence: appliedSequence)))
        return actions
    }

    /// Chunk `chunk` of transfer `attempt`: keys' states as of write `baseSequence`.
    public mutating func receiveChunk(
        attempt: UInt64, chunk: UInt32, baseSequence: UInt64, keys: [TransferredKey], last: Bool, now: UInt64
    ) -> [BackupAction] {
        var actions: [BackupAction] = []
        switch phase {
        case .requesting(let asked, _) where asked == attempt && chunk == 0:
            // The transfer began at `baseSequence`: every later write reaches this copy.
            appliedSequence = baseSequence
        case .transferring(let current, let next, _) where current == attempt && next == chunk:
            break
        default:
            // A chunk of an abandoned attempt, or out of order: this attempt is unusable only
            // if it is the current one; restart then.
            if case .transferring(let current, _, _) = phase, current == attempt { return start(now: now) }
            return []
        }
        if !keys.isEmpty { actions.append(.merge(keys)) }
        if last {
            // The primary counts this copy for its commits from now on (it sent this chunk
            // only after the others were acknowledged): it may report itself caught up.
            phase = .following
            actions.append(.reportCaughtUp)
        } else {
            actions.append(.send(.acknowledgeChunk(attempt: attempt, chunk: chunk)))
            phase = .transferring(attempt: attempt, nextChunk: chunk + 1, heardAt: now)
        }
        return actions
    }

    /// Retries a transfer request nobody answered, and restarts a transfer that went silent.
    public mutating func tick(now: UInt64) -> [BackupAction] {
        switch phase {
        case .requesting(_, let askedAt):
            // A new attempt: the primary ignores repeats of one it already serves, and this
            // one's first chunk may have been lost with a connection.
            guard now >= askedAt + settings.transferRequestRetryMilliseconds else { return [] }
            return start(now: now)
        case .transferring(_, _, let heardAt):
            guard now >= heardAt + settings.transferTimeoutMilliseconds else { return [] }
            return start(now: now)
        case .following:
            return []
        }
    }
}
