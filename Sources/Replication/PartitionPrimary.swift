/// What the primary of a partition asks its shell to do. Order matters within one step:
/// the shell sends the replication messages before it releases the replies `commit` names,
/// so a backup never lags a reply it could have prevented.
public enum PrimaryAction: Hashable, Sendable {
    /// Send these writes, numbered from `firstSequence`, to `backup`.
    case replicate(to: String, firstSequence: UInt64, writes: [ReplicatedWrite])
    /// Send `backup` the current state of these keys as chunk `chunk` of transfer `attempt`;
    /// writes after `baseSequence` reach it as ordinary replication. The shell skips keys
    /// that no longer exist. `last` (a chunk without keys) ends the transfer: the primary
    /// counts the backup for every commit from now on, so it may report itself caught up.
    case sendChunk(to: String, attempt: UInt64, chunk: UInt32, baseSequence: UInt64, keys: [[UInt8]], last: Bool)
    /// Every in-sync backup applied every write up to `sequence`: release the replies
    /// waiting for it (and ship those writes to other sites).
    case commit(upTo: UInt64)
}

/// The primary of one partition at one epoch (DESIGN.md §3). It numbers the partition's
/// writes, sends each to every backup that holds a live copy, keeps many writes in flight,
/// and commits a write — lets its reply go — only once every *in-sync* backup acknowledged
/// it (acknowledgements are cumulative). Backups that are not in sync yet get a state
/// transfer (the partition's keys in chunks) and, from its start on, every write; the
/// control plane adds them to the in-sync set once they report the transfer finished.
///
/// A new epoch is a new `PartitionPrimary`: sequence numbers, followers and log start
/// afresh, and every backup copies the partition again, so copies that saw different
/// suffixes of the old primary's writes can never be mixed up. The exception is a planned
/// handover's next epoch (`continuing`): the old primary sealed and committed everything
/// first, so the copies reported caught up hold exactly the same keys and follow from
/// sequence 1 without a transfer.
///
/// Pure: time comes in as `now`, messages go out as actions.
public struct PartitionPrimary: Sendable {
    public let partition: Int
    public let epoch: UInt64
    public let settings: ReplicationSettings
    /// The last sequence number given to a write.
    public private(set) var lastSequence: UInt64 = 0
    /// Every in-sync backup applied every write up to here.
    public private(set) var committedSequence: UInt64 = 0
    /// Writes some live follower has not acknowledged yet; `log[0]` has sequence `logStart`.
    var log: [ReplicatedWrite] = []
    var logStart: UInt64 = 1
    var followers: [String: Follower] = [:]
    /// `followers`' names in order, kept as they change (only `updateBackups` adds or drops
    /// one): every write visits them in this order, without sorting them each time.
    private(set) var followerNames: [String] = []
    /// Sealed for a planned handover: the shell runs no command and no merge here any more
    /// (it waits for the map to name the next primary). A handover ends with the next epoch,
    /// even an abandoned one (the old primary then carries on at that epoch), so a seal is
    /// never lifted within its epoch; `follow` would lift it only for a map that dropped the
    /// handover without a new epoch, which the leader never commits.
    public var sealed = false

    /// Sealed, and every write numbered here is committed: the in-sync backups hold exactly
    /// this copy, so the next epoch may start from them.
    public var handedOff: Bool { sealed && committedSequence == lastSequence }

    struct Transfer: Hashable, Sendable {
        var attempt: UInt64
        /// The keys the partition held when the transfer started (later keys arrive as writes).
        var keys: [[UInt8]]
        var nextKey = 0
        var nextChunk: UInt32 = 0
    }

    enum Phase: Hashable, Sendable {
        /// Named a backup by the map; nothing is sent until it asks for a transfer.
        case awaitingRequest
        /// Copying the keys; writes after the transfer's base already flow.
        case transferring(Transfer)
        /// Holds the whole partition and gets every write.
        case live
    }

    struct Follower: Hashable, Sendable {
        var phase: Phase = .awaitingRequest
        /// The control plane counts this copy in sync: commits wait for it.
        var inSync = false
        var acknowledged: UInt64 = 0
        var sent: UInt64 = 0
        /// When `acknowledged` last advanced (or the follower was last sent everything anew).
        var progressAt: UInt64 = 0

        var receivesWrites: Bool {
            if case .awaitingRequest = phase { return false }
            return true
        }

        /// Commits wait for this backup.
        var counts: Bool { inSync || phase == .live }
    }

    public init(partition: Int, epoch: UInt64, settings: ReplicationSettings = ReplicationSettings()) {
        self.partition = partition
        self.epoch = epoch
        self.settings = settings
    }

    /// The backups the primary replicates to now and which of them are in sync (both from the
    /// cluster map). Dropping a backup, or one leaving the in-sync set, can let writes commit.
    public mutating func updateBackups(_ backups: [String], inSync: Set<String>, now: UInt64) -> [PrimaryAction] {
        for name in followers.keys where !backups.contains(name) { followers[name] = nil }
        for name in backups {
            var follower = followers[name] ?? Follower(progressAt: now)
            if inSync.contains(name) && !follower.inSync, case .awaitingRequest = follower.phase {
                // In sync in the map but never copied from this primary: a copy carried over
                // from the epoch a planned handover ended (it holds every write of it). It
                // follows from this epoch's first write, and commits wait for it.
                follower.phase = .live
            }
            follower.inSync = inSync.contains(name)
            followers[name] = follower
        }
        followerNames = followers.keys.sorted()
        var actions: [PrimaryAction] = []
        advanceCommit(into: &actions)
        return actions
    }

    /// Numbers a write and sends it to every backup that holds a copy. Returns its sequence;
    /// its reply waits for `commit(upTo:)` covering it.
    public mutating func submit(_ write: ReplicatedWrite, now: UInt64) -> (sequence: UInt64, actions: [PrimaryAction]) {
        lastSequence += 1
        log.append(write)
        var actions: [PrimaryAction] = []
        for name in followerNames where followers[name]!.receivesWrites {
            if followers[name]!.sent == lastSequence - 1 {
                followers[name]!.sent = lastSequence
                actions.append(.replicate(to: name, firstSequence: lastSequence, writes: [write]))
            }
        }
        advanceCommit(into: &actions)
        trimLog()
        assertInvariants()
        return (lastSequence, actions)
    }

    /// What a read must wait for: the last write numbered so far. A read answered before the
    /// writes it can see are committed could show a value a failover then loses.
    public var readBarrier: UInt64 { lastSequence }

    /// A backup applied every write up to `sequence`.
    public mutating func acknowledge(from name: String, sequence: UInt64, now: UInt64) -> [PrimaryAction] {
        guard var follower = followers[name], follower.receivesWrites, sequence <= lastSequence else { return [] }
        if sequence > follower.acknowledged {
            follower.acknowledged = sequence
            follower.progressAt = now
        }
        follower.sent = max(follower.sent, follower.acknowledged)
        followers[name] = follower
        var actions: [PrimaryAction] = []
        advanceCommit(into: &actions)
        trimLog()
        return actions
    }

    /// A backup asks for a copy of the partition (it holds nothing of it, or its last
    /// transfer broke off). `keys`: every key the partition holds now.
    public mutating func requestTransfer(from name: String, attempt: UInt64, keys: [[UInt8]], now: UInt64) -> [PrimaryAction] {
        guard var follower = followers[name] else { return [] }
        if case .transferring(let current) = follower.phase, current.attempt == attempt { return [] }
        // From here on every write reaches the backup; the chunks carry what came before.
        follower.phase = .transferring(Transfer(attempt: attempt, keys: keys))
        follower.acknowledged = lastSequence
        follower.sent = lastSequence
        follower.progressAt = now
        followers[name] = follower
        return nextChunk(for: name)
    }

    /// The backup merged chunk `chunk` of transfer `attempt`: send the next one, or — all
    /// keys sent — count the backup for commits and end the transfer.
    ///
    /// Why the order matters: the control plane adds the copy to the in-sync set once the
    /// backup reports it caught up, and may promote it after that. Every write this primary
    /// commits from then on must have waited for the backup. The backup reports only on the
    /// `last` chunk, which leaves after the primary started counting it; writes committed
    /// before left before that chunk on the same connection, so the backup applied them first.
    public mutating func acknowledgeChunk(from name: String, attempt: UInt64, chunk: UInt32, now: UInt64) -> [PrimaryAction] {
        guard var follower = followers[name], case .transferring(let transfer) = follower.phase,
            transfer.attempt == attempt, transfer.nextChunk == chunk + 1
        else { return [] }
        follower.progressAt = now
        if transfer.nextKey >= transfer.keys.count {
            follower.phase = .live
            followers[name] = follower
            return [.sendChunk(to: name, attempt: attempt, chunk: transfer.nextChunk, baseSequence: follower.acknowledged, keys: [], last: true)]
        }
        followers[name] = follower
        return nextChunk(for: name)
    }

    mutating func nextChunk(for name: String) -> [PrimaryAction] {
        guard case .transferring(var transfer) = followers[name]?.phase else { return [] }
        let end = min(transfer.keys.count, transfer.nextKey + settings.keysPerChunk)
        let keys = Array(transfer.keys[transfer.nextKey..<end])
        let chunk = transfer.nextChunk
        transfer.nextKey = end
        transfer.nextChunk += 1
        followers[name]!.phase = .transferring(transfer)
        return [.sendChunk(to: name, attempt: transfer.attempt, chunk: chunk, baseSequence: followers[name]!.acknowledged, keys: keys, last: false)]
    }

    /// Resends to backups whose acknowledgements stalled (frames lost with a connection).
    public mutating func tick(now: UInt64) -> [PrimaryAction] {
        var actions: [PrimaryAction] = []
        for name in followerNames {
            var follower = followers[name]!
            guard follower.receivesWrites, follower.acknowledged < lastSequence,
                now >= follower.progressAt + settings.resendAfterMilliseconds
            else { continue }
            follower.progressAt = now
            follower.sent = lastSequence
            followers[name] = follower
            // (A follower behind the log's start could not be caught up from it. None is: a
            // carried-over copy joins at sequence 0 and counts, so the log keeps every write it
            // has not acknowledged; the others start with a transfer.)
            var first = max(follower.acknowledged + 1, logStart)
            while first <= lastSequence {
                let last = min(lastSequence, first + UInt64(settings.maximumWritesPerMessage) - 1)
                let writes = Array(log[Int(first - logStart)...Int(last - logStart)])
                actions.append(.replicate(to: name, firstSequence: first, writes: writes))
                first = last + 1
            }
        }
        return actions
    }

    /// Commits up to the lowest acknowledgement among the backups that count: those in the
    /// map's in-sync set and those whose transfer from this primary ended (all writes when none).
    /// (Runs on every write and acknowledgement: a loop, not arrays of followers.)
    mutating func advanceCommit(into actions: inout [PrimaryAction]) {
        let target = lowestAcknowledged(where: \.counts) ?? lastSequence
        guard target > committedSequence else { return }
        committedSequence = target
        assertInvariants()
        actions.append(.commit(upTo: target))
    }

    /// The lowest acknowledgement among the followers `included` takes; nil when it takes none.
    func lowestAcknowledged(where included: (Follower) -> Bool) -> UInt64? {
        var lowest: UInt64?
        for follower in followers.values where included(follower) {
            lowest = min(lowest ?? follower.acknowledged, follower.acknowledged)
        }
        return lowest
    }

    /// Drops writes every follower that receives writes has acknowledged. A follower that is
    /// still catching up and holds the log past its bound is sent back to the start of its
    /// transfer (it will ask again) instead of growing the log further.
    mutating func trimLog() {
        if log.count > settings.maximumLogWrites {
            for name in followers.keys where !followers[name]!.counts && followers[name]!.receivesWrites
                && followers[name]!.acknowledged < lastSequence - UInt64(settings.maximumLogWrites / 2)
            {
                followers[name]!.phase = .awaitingRequest
            }
        }
        let floor = max(lowestAcknowledged(where: \.receivesWrites) ?? lastSequence, logStart - 1)
        let drop = Int(min(floor, lastSequence) + 1 - logStart)
        guard drop > 0 else { return }
        log.removeFirst(drop)
        logStart += UInt64(drop)
    }

    func assertInvariants() {
        assert(followerNames == followers.keys.sorted(), "followerNames follows followers")
        precondition(committedSequence <= lastSequence, "Invalid state: committed \(committedSequence) beyond last \(lastSequence)")
        precondition(logStart + UInt64(log.count) == lastSequence + 1, "Invalid state: log \(logStart)+\(log.count) does not end at \(lastSequence)")
    }

    /// The backups holding a live copy (for status).
    public var liveBackups: [String] {
        followers.filter { $0.value.phase == .live }.map(\.key).sorted()
    }

    /// Per backup, how many writes it has not acknowledged (for status and metrics).
    public var lagWrites: [String: UInt64] {
        followers.filter(\.value.receivesWrites).mapValues { lastSequence - $0.acknowledged }
    }
}
