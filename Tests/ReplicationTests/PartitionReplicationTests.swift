import Replication
import SessionModel
import Testing

/// A copy of a partition as a test holds it: keys and their states, changed only by what the
/// state machines tell the shell to do.
struct CopyOfPartition: Equatable {
    var keys: [[UInt8]: KeyState] = [:]
    var clock: UInt64 = 1_000

    /// A local SET at the primary's copy; returns the write to replicate.
    mutating func set(_ key: String, _ value: String) -> ReplicatedWrite {
        clock += 1
        var state = keys[Array(key.utf8)] ?? KeyState()
        let delta = state.write(
            .setString(Array(value.utf8), keepExpiry: false), key: Array(key.utf8), site: SiteID(1),
            timestamp: HLCTimestamp(physicalMilliseconds: clock, logical: 0), now: clock
        )!
        keys[Array(key.utf8)] = state
        return ReplicatedWrite(deltas: [delta])
    }

    mutating func delete(_ key: String) -> ReplicatedWrite {
        clock += 1
        var state = keys[Array(key.utf8)]!
        let delta = state.write(.delete, key: Array(key.utf8), site: SiteID(1), timestamp: HLCTimestamp(physicalMilliseconds: clock, logical: 0), now: clock)!
        keys[Array(key.utf8)] = state.isEmpty ? nil : state
        return ReplicatedWrite(deltas: [delta])
    }

    func value(_ key: String) -> String? {
        guard case .string(let bytes)? = keys[Array(key.utf8)]?.value(now: clock, policy: .lastWriterWins) else { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }

    mutating func apply(_ write: ReplicatedWrite) {
        for delta in write.deltas {
            var state = keys[delta.key] ?? KeyState()
            state.merge(delta, policy: .default)
            keys[delta.key] = state.isEmpty ? nil : state
        }
        for key in write.expiredKeys { keys[key] = nil }
    }

    func transferred(_ names: [[UInt8]]) -> [TransferredKey] {
        names.compactMap { name in keys[name].map { TransferredKey(key: name, state: $0) } }
    }
}

/// A primary and one backup wired back to back with no I/O: the test decides which messages
/// arrive, in which order.
struct ReplicationPair {
    var primary: PartitionPrimary
    var backup: PartitionBackup
    var primaryCopy = CopyOfPartition()
    var backupCopy = CopyOfPartition()
    /// Messages in flight, in order.
    var toBackup: [PrimaryAction] = []
    var toPrimary: [BackupMessage] = []
    var committed: UInt64 = 0
    var caughtUp = false
    var now: UInt64 = 0

    init(settings: ReplicationSettings = ReplicationSettings()) {
        primary = PartitionPrimary(partition: 3, epoch: 2, settings: settings)
        backup = PartitionBackup(partition: 3, epoch: 2, primary: "node-1", settings: settings, now: 0)
    }

    mutating func primaryDid(_ actions: [PrimaryAction]) {
        for action in actions {
            switch action {
            case .replicate, .sendChunk: toBackup.append(action)
            case .commit(let sequence):
                #expect(sequence > committed, "commits only move forward")
                committed = sequence
            }
        }
    }

    mutating func backupDid(_ actions: [BackupAction]) {
        for action in actions {
            switch action {
            case .discardPartition: backupCopy.keys = [:]
            case .merge(let keys):
                for key in keys {
                    var state = backupCopy.keys[key.key] ?? KeyState()
                    state.merge(key.state, policy: .default)
                    backupCopy.keys[key.key] = state
                }
            case .apply(let write): backupCopy.apply(write)
            case .send(let message): toPrimary.append(message)
            case .reportCaughtUp: caughtUp = true
            }
        }
    }

    mutating func write(_ write: ReplicatedWrite) -> UInt64 {
        let (sequence, actions) = primary.submit(write, now: now)
        primaryDid(actions)
        return sequence
    }

    /// Delivers every message in flight (both ways) until none is left.
    mutating func deliverAll() {
        while !toBackup.isEmpty || !toPrimary.isEmpty {
            deliverToBackup(toBackup.count)
            deliverToPrimary(toPrimary.count)
        }
    }

    mutating func deliverToBackup(_ count: Int) {
        for action in toBackup.prefix(count) {
            switch action {
            case .replicate(_, let first, let writes): backupDid(backup.receive(firstSequence: first, writes: writes, now: now))
            case .sendChunk(_, let attempt, let chunk, let base, let keys, let last):
                backupDid(backup.receiveChunk(attempt: attempt, chunk: chunk, baseSequence: base, keys: primaryCopy.transferred(keys), last: last, now: now))
            case .commit: Issue.record("a commit is not a message")
            }
        }
        toBackup.removeFirst(count)
    }

    mutating func deliverToPrimary(_ count: Int) {
        for message in toPrimary.prefix(count) {
            switch message {
            case .acknowledge(let sequence): primaryDid(primary.acknowledge(from: "node-2", sequence: sequence, now: now))
            case .requestTransfer(let attempt):
                primaryDid(primary.requestTransfer(from: "node-2", attempt: attempt, keys: primaryCopy.keys.keys.sorted { $0.lexicographicallyPrecedes($1) }, now: now))
            case .acknowledgeChunk(let attempt, let chunk): primaryDid(primary.acknowledgeChunk(from: "node-2", attempt: attempt, chunk: chunk, now: now))
            }
        }
        toPrimary.removeFirst(count)
    }

    /// The map names the backup; it starts empty and its transfer request reaches the primary
    /// (the first chunk is then in flight).
    mutating func startTransfer() {
        primaryDid(primary.updateBackups(["node-2"], inSync: [], now: now))
        backupDid(backup.start(now: now))
        deliverToPrimary(1)
    }

    /// The backup joins: the map names it, it copies the partition, the map marks it in sync.
    mutating func joinBackup() {
        primaryDid(primary.updateBackups(["node-2"], inSync: [], now: now))
        backupDid(backup.start(now: now))
        deliverAll()
        #expect(caughtUp)
        primaryDid(primary.updateBackups(["node-2"], inSync: ["node-2"], now: now))
    }
}

@Suite struct PartitionReplicationTests {
    @Test func write_withoutBackups_commitsAtOnce() {
        var pair = ReplicationPair()
        let sequence = pair.write(pair.primaryCopy.set("a", "1"))
        #expect(sequence == 1)
        #expect(pair.committed == 1)
        #expect(pair.toBackup.isEmpty)
    }

    @Test func write_withInSyncBackup_commitsOnlyAfterItsAcknowledgement() {
        var pair = ReplicationPair()
        pair.joinBackup()
        let sequence = pair.write(pair.primaryCopy.set("session:1", "ann"))
        #expect(pair.committed < sequence, "no commit before the backup applied it")
        pair.deliverToBackup(1)
        #expect(pair.backupCopy.value("session:1") == "ann")
        #expect(pair.committed < sequence)
        pair.deliverToPrimary(1)
        #expect(pair.committed == sequence)
    }

    @Test func manyWritesInFlight_oneCumulativeAcknowledgement_commitsThemAll() {
        var pair = ReplicationPair()
        pair.joinBackup()
        var last: UInt64 = 0
        for index in 0..<10 { last = pair.write(pair.primaryCopy.set("k\(index)", "v\(index)")) }
        #expect(pair.toBackup.count == 10, "every write is sent at once, without waiting")
        pair.deliverToBackup(10)
        // Only the last acknowledgement reaches the primary.
        pair.toPrimary = [pair.toPrimary.last!]
        pair.deliverToPrimary(1)
        #expect(pair.committed == last)
        #expect(pair.backupCopy.keys == pair.primaryCopy.keys)
    }

    @Test func lostWrite_backupIgnoresTheGap_primaryResendsAfterStall() {
        var pair = ReplicationPair()
        pair.joinBackup()
        let first = pair.write(pair.primaryCopy.set("a", "1"))
        let second = pair.write(pair.primaryCopy.set("b", "2"))
        pair.toBackup.removeFirst()  // write 1 lost with a connection
        pair.deliverAll()
        #expect(pair.backupCopy.value("b") == nil, "writes apply strictly in order: 2 waits for 1")
        #expect(pair.committed < first)
        pair.now += 199
        pair.primaryDid(pair.primary.tick(now: pair.now))
        #expect(pair.toBackup.isEmpty, "no resend before the stall limit")
        pair.now += 1
        pair.primaryDid(pair.primary.tick(now: pair.now))
        pair.deliverAll()
        #expect(pair.committed == second)
        #expect(pair.backupCopy.keys == pair.primaryCopy.keys)
    }

    @Test func duplicatedWrites_applyOnce() {
        var pair = ReplicationPair()
        pair.joinBackup()
        _ = pair.write(pair.primaryCopy.set("a", "1"))
        pair.toBackup += pair.toBackup
        _ = pair.write(pair.primaryCopy.delete("a"))
        pair.toBackup.append(pair.toBackup[0])  // the SET again after the DEL
        pair.deliverAll()
        #expect(pair.backupCopy.value("a") == nil)
        #expect(pair.committed == 2)
    }

    @Test func stateTransfer_withWritesDuringIt_endsWithIdenticalCopies() {
        var settings = ReplicationSettings()
        settings.keysPerChunk = 3
        var pair = ReplicationPair(settings: settings)
        for index in 0..<10 { _ = pair.write(pair.primaryCopy.set("k\(index)", "old")) }
        #expect(pair.committed == 10)
        pair.startTransfer()  // the request: chunk 0 goes out
        // Writes while the transfer runs: an overwrite, a delete, a new key.
        _ = pair.write(pair.primaryCopy.set("k1", "new"))
        _ = pair.write(pair.primaryCopy.delete("k2"))
        _ = pair.write(pair.primaryCopy.set("fresh", "yes"))
        #expect(pair.committed == 13, "a copy that is not in sync holds no write back")
        pair.deliverAll()
        #expect(pair.caughtUp)
        #expect(pair.backupCopy.keys == pair.primaryCopy.keys)
        #expect(pair.backupCopy.value("k1") == "new")
        #expect(pair.backupCopy.value("k2") == nil)
        #expect(pair.backup.appliedSequence == 13)
    }

    /// The leader adds a copy to the in-sync set when the backup reports it caught up. Every
    /// write the primary commits from then on must wait for that backup: a commit in between
    /// could be lost when the backup is promoted. So the backup reports only after the
    /// primary has started counting it, which the primary says with the final chunk.
    @Test func transferEnd_primaryCountsTheBackupBeforeItCanReportCaughtUp() {
        var pair = ReplicationPair()
        _ = pair.write(pair.primaryCopy.set("a", "1"))
        pair.startTransfer()    // the request
        pair.deliverToBackup(1)     // chunk 0 (the only key chunk): merged, acknowledged
        #expect(!pair.caughtUp, "key chunks alone do not make a copy caught up")
        pair.deliverToPrimary(1)    // its acknowledgement: the primary counts the backup now
        let sequence = pair.write(pair.primaryCopy.set("b", "2"))
        #expect(pair.committed < sequence, "a write after the transfer waits for the backup, in sync in the map or not")
        pair.deliverAll()
        #expect(pair.caughtUp)
        #expect(pair.committed == sequence)
        #expect(pair.backupCopy.keys == pair.primaryCopy.keys)
    }

    @Test func writesBeforeTheTransferStarts_areIgnoredByTheBackup() {
        var pair = ReplicationPair()
        pair.backupDid(pair.backup.start(now: 0))
        let actions = pair.backup.receive(firstSequence: 1, writes: [pair.primaryCopy.set("a", "1")], now: 0)
        #expect(actions.isEmpty)
    }

    @Test func lostFirstChunk_backupRetriesWithNewAttempt_andOldChunksAreIgnored() {
        var pair = ReplicationPair()
        _ = pair.write(pair.primaryCopy.set("a", "1"))
        pair.startTransfer()
        let lost = pair.toBackup.removeFirst()
        pair.now = 250
        pair.backupDid(pair.backup.tick(now: pair.now))
        #expect(pair.toPrimary == [.requestTransfer(attempt: 2)])
        // The first attempt's chunk arrives late: ignored.
        pair.toBackup.insert(lost, at: 0)
        pair.deliverToBackup(1)
        #expect(!pair.caughtUp)
        pair.deliverAll()
        #expect(pair.caughtUp)
        #expect(pair.backupCopy.keys == pair.primaryCopy.keys)
    }

    /// Found by `sessionfed simulate --seed 14 --nodes 5 --faults chaos --steps 4000
    /// --data-plane`: a chunk's acknowledgement was lost; the writes that kept arriving kept
    /// the transfer's timeout from running out, and the copy never caught up.
    @Test func lostChunkAcknowledgement_writesKeepFlowing_transferRestartsAfterTimeout() {
        var pair = ReplicationPair()
        _ = pair.write(pair.primaryCopy.set("a", "1"))
        pair.startTransfer()
        pair.deliverToBackup(1)
        pair.toPrimary.removeAll()  // the chunk's acknowledgement is lost
        for second in 1...3 {
            pair.now = UInt64(second) * 1_000
            _ = pair.write(pair.primaryCopy.set("b", "\(second)"))
            pair.deliverToBackup(pair.toBackup.count)
            pair.toPrimary.removeAll()
        }
        pair.backupDid(pair.backup.tick(now: pair.now))
        #expect(pair.toPrimary.contains(.requestTransfer(attempt: 2)), "the silent transfer starts again")
        pair.deliverAll()
        #expect(pair.caughtUp)
        #expect(pair.backupCopy.keys == pair.primaryCopy.keys)
    }

    @Test func backupLeavesTheInSyncSet_pendingWritesCommit() {
        var pair = ReplicationPair()
        pair.joinBackup()
        let sequence = pair.write(pair.primaryCopy.set("a", "1"))
        #expect(pair.committed < sequence)
        // The control plane decided the backup is gone.
        pair.primaryDid(pair.primary.updateBackups([], inSync: [], now: 0))
        #expect(pair.committed == sequence)
    }

    @Test func unknownInSyncBackup_holdsCommitsBack() {
        var pair = ReplicationPair()
        pair.primaryDid(pair.primary.updateBackups(["node-2"], inSync: ["node-2"], now: 0))
        let sequence = pair.write(pair.primaryCopy.set("a", "1"))
        #expect(pair.committed < sequence)
    }

    @Test func catchingUpBackupBeyondTheLogBound_isSentBackToTheStart() {
        var settings = ReplicationSettings()
        settings.maximumLogWrites = 10
        var pair = ReplicationPair(settings: settings)
        pair.startTransfer()  // the transfer starts; the backup goes silent
        pair.toBackup = []
        // Its writes pile up until the bound.
        for index in 0..<11 { _ = pair.write(pair.primaryCopy.set("k\(index)", "v")) }
        pair.toBackup = []
        pair.primaryDid(pair.primary.tick(now: 10_000))
        #expect(pair.toBackup.isEmpty, "an abandoned copy is sent nothing more")
        #expect(pair.primary.lagWrites.isEmpty)
    }

    @Test func readBarrier_isTheLastNumberedWrite() {
        var pair = ReplicationPair()
        pair.joinBackup()
        #expect(pair.primary.readBarrier == 0)
        let sequence = pair.write(pair.primaryCopy.set("a", "1"))
        #expect(pair.primary.readBarrier == sequence)
        #expect(pair.primary.committedSequence < pair.primary.readBarrier, "a read now must wait")
    }
}
