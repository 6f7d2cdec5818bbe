import Keyspace
import Logging
import NIOCore
import RESP
import Replication
import SessionModel
import Wire

/// Commands over partitions whose primaries are on several nodes (MGET/MSET/DEL of keys of
/// different nodes, RENAME across partitions, MULTI/EXEC): the node that runs the command
/// coordinates it as a small transaction with ordered steps —
///
/// 1. lock every partition it touches at its primary; each primary answers with its epochs
///    and the current states of the command's keys (a refusal — not primary now, or locked
///    by another transaction — releases every lock and the whole attempt is retried after a
///    short random pause, for up to `routeDeadlineMilliseconds`, then `-TRYAGAIN`);
/// 2. run the command on a scratch keyspace holding exactly those states: it produces the
///    same deltas (dots, contexts) the primaries would have produced, because nothing else
///    can write those partitions while they are locked;
/// 3. send each primary its part of the writes; it applies them only if it still holds the
///    lock at the same epoch, replicates them like its own writes, unlocks, and confirms once
///    its backups acknowledged.
///
/// A reader of a locked partition waits (it is routed again until the unlock), and each
/// primary unlocks only after applying, so no reader sees a half-done RENAME: never both keys,
/// never neither. A primary that dies between the steps leaves the outcome unknown, and the
/// client is told so.
struct CrossNodeTransaction {
    let id: UInt64
    /// Node → the partitions it is primary of.
    let owners: [String: [Int]]
    let keys: [[UInt8]]
    let deadline: UInt64
    let startedAt: UInt64
    let body: (inout Keyspace, UInt64) -> CommandResult
    let done: (RESPValue) -> Void
    var replies: [String: LockReply] = [:]
    /// Applying: the nodes whose confirmation is awaited, and whether any refused.
    var applying: Set<String>?
    var refused = false
    /// The command produced no write (MGET, EXISTS, …): a refusal then changed nothing.
    var wroteNothing = false
    var result: CommandResult?

    enum Outcome: Equatable { case answer, retry, unknown }

    /// Once every primary answered: a refusal means a primary changed under the locks, so the
    /// fetched states may be stale. A command that wrote nothing is simply run again; one that
    /// wrote may have landed at some primaries and not others, and only the client can decide.
    var outcome: Outcome {
        guard refused else { return .answer }
        return wroteNothing ? .retry : .unknown
    }
}

/// A partition locked here for another node's transaction.
struct HeldLock {
    let coordinator: String
    let transaction: UInt64
    let since: UInt64
}

extension DataPlane {
    /// A lock that outlives this is released: its coordinator died or was cut off (a live
    /// coordinator's late writes are then refused, since the lock is gone).
    static let lockTimeoutMilliseconds: UInt64 = 2_000
    /// A transaction whose locks are not all answered by then is abandoned and retried.
    static let lockReplyTimeoutMilliseconds: UInt64 = 1_000

    // MARK: Coordinator

    /// Runs `body` on the current states of `keys` with their partitions locked at their
    /// primaries, applies its writes there, and calls `done` with its reply (or an error).
    func runAcrossNodes(
        keys: [[UInt8]], deadline: UInt64? = nil, body: @escaping (inout Keyspace, UInt64) -> CommandResult, done: @escaping (RESPValue) -> Void
    ) {
        let now = WallClock.monotonicMilliseconds()
        let deadline = deadline ?? now + Self.routeDeadlineMilliseconds
        let partitions = Set(keys.map(partitioning.partition(of:)))
        guard let map = state.controlPlane?.raft.map, partitions.allSatisfy({ map.partitions[$0].primary != nil }) else {
            retryAcrossNodes(keys: keys, deadline: deadline, body: body, done: done)
            return
        }
        var owners: [String: [Int]] = [:]
        for partition in partitions.sorted() { owners[map.partitions[partition].primary!, default: []].append(partition) }
        let id = nextTransaction
        nextTransaction += 1
        transactions[id] = CrossNodeTransaction(id: id, owners: owners, keys: keys, deadline: deadline, startedAt: now, body: body, done: done)
        for (owner, parts) in owners.sorted(by: { $0.key < $1.key }) {
            let request = LockRequest(transaction: id, partitions: parts.map(UInt32.init), keys: keys.filter { parts.contains(partitioning.partition(of: $0)) })
            if owner == nodeName {
                lockReplied(lock(request, for: nodeName), from: nodeName)
            } else if transport?.sendData(.lockRequest(request), to: owner) != true {
                lockReplied(LockReply(transaction: id, granted: false), from: owner)
            }
        }
    }

    /// Tries the whole transaction again after a short random pause (two coordinators that
    /// refused each other do not collide again), or answers -TRYAGAIN past the deadline.
    func retryAcrossNodes(keys: [[UInt8]], deadline: UInt64, body: @escaping (inout Keyspace, UInt64) -> CommandResult, done: @escaping (RESPValue) -> Void) {
        guard WallClock.monotonicMilliseconds() < deadline else {
            counters.tryAgainReplies += 1
            done(.error("TRYAGAIN the keys of this command are locked or moving; retry the command"))
            return
        }
        counters.forwardRetries += 1
        let later = NIOLoopBound((body, done), eventLoop: eventLoop)
        eventLoop.scheduleTask(in: .milliseconds(Int64.random(in: 5...30))) {
            self.runAcrossNodes(keys: keys, deadline: deadline, body: later.value.0, done: later.value.1)
        }
    }

    func lockReplied(_ reply: LockReply, from owner: String) {
        guard var transaction = transactions[reply.transaction], transaction.applying == nil, transaction.owners[owner] != nil,
            transaction.replies[owner] == nil
        else { return }
        transaction.replies[owner] = reply
        transactions[reply.transaction] = transaction
        guard transaction.replies.count == transaction.owners.count else { return }
        if transaction.replies.values.allSatisfy(\.granted) {
            execute(transaction)
        } else {
            abandon(transaction)
            retryAcrossNodes(keys: transaction.keys, deadline: transaction.deadline, body: transaction.body, done: transaction.done)
        }
    }

    /// Releases the locks a transaction got (its writes are never sent).
    func abandon(_ transaction: CrossNodeTransaction) {
        transactions[transaction.id] = nil
        for (owner, reply) in transaction.replies where reply.granted {
            if owner == nodeName {
                _ = applyTransactionWrites(transaction: transaction.id, [], from: nodeName) { _ in }
            } else {
                _ = transport?.sendData(.transactionWrites(transaction: transaction.id, []), to: owner)
            }
        }
    }

    /// Every lock is held: run the command on the fetched states and send each primary its
    /// writes (every locked partition is named, so each is unlocked).
    func execute(_ transaction: CrossNodeTransaction) {
        var transaction = transaction
        let now = WallClock.nowMilliseconds()
        var scratch = Keyspace(configuration: state.keyspace.configuration)
        for reply in transaction.replies.values {
            for key in reply.keys { _ = scratch.merge(state: key.state, key: key.key, now: now) }
        }
        let result = transaction.body(&scratch, now)
        let writes = writes(result.deltas, expired: scratch.drainReleasedByExpiry())
        if lacksReplicas(Set(writes.partitions)) {
            abandon(transaction)
            transaction.done(Self.noReplicas)
            return
        }
        transaction.result = result
        transaction.wroteNothing = writes.isEmpty
        transaction.applying = Set(transaction.owners.keys)
        transactions[transaction.id] = transaction
        for (owner, parts) in transaction.owners.sorted(by: { $0.key < $1.key }) {
            let reply = transaction.replies[owner]!
            let batches = parts.map { partition in
                PartitionWrites(
                    partition: UInt32(partition), epoch: reply.epochs[UInt32(partition)] ?? 0, firstSequence: 0,
                    writes: writes[partition].map { [$0] } ?? []
                )
            }
            if owner == nodeName {
                let id = transaction.id
                _ = applyTransactionWrites(transaction: id, batches, from: nodeName) { applied in
                    self.applyConfirmed(transaction: id, applied: applied, from: self.nodeName)
                }
            } else if transport?.sendData(.transactionWrites(transaction: transaction.id, batches), to: owner) != true {
                applyConfirmed(transaction: transaction.id, applied: false, from: owner)
            }
        }
    }

    func applyConfirmed(transaction id: UInt64, applied: Bool, from owner: String) {
        guard var transaction = transactions[id], var waiting = transaction.applying, waiting.remove(owner) != nil else { return }
        transaction.refused = transaction.refused || !applied
        transaction.applying = waiting
        transactions[id] = transaction
        guard waiting.isEmpty else { return }
        transactions[id] = nil
        switch transaction.outcome {
        case .answer:
            let result = transaction.result!
            transaction.done(result.reply)
            state.announce(result.events)
        case .retry:
            retryAcrossNodes(keys: transaction.keys, deadline: transaction.deadline, body: transaction.body, done: transaction.done)
        case .unknown:
            counters.unknownOutcomes += 1
            transaction.done(.error("ERR a primary changed while this multi-node command was applied; it may have been applied in part"))
        }
    }

    // MARK: Primary

    /// A coordinator asks for locks: granted when this node may act as primary of every
    /// partition and none is locked by another transaction.
    func lock(_ request: LockRequest, for coordinator: String) -> LockReply {
        let now = WallClock.monotonicMilliseconds()
        let parts = request.partitions.map(Int.init)
        guard parts.allSatisfy({ $0 >= 0 && $0 < partitioning.partitionCount && locks[$0] == nil }), actsAsPrimary(of: Set(parts), now: now) else {
            return LockReply(transaction: request.transaction, granted: false)
        }
        var epochs: [UInt32: UInt64] = [:]
        for partition in parts {
            locks[partition] = HeldLock(coordinator: coordinator, transaction: request.transaction, since: now)
            epochs[UInt32(partition)] = copies.primaries[partition]!.epoch
        }
        let keys = request.keys.filter { parts.contains(partitioning.partition(of: $0)) }.compactMap { key in
            state.keyspace.state(of: key).map { TransferredKey(key: key, state: $0) }
        }
        return LockReply(transaction: request.transaction, granted: true, epochs: epochs, keys: keys)
    }

    /// A coordinator's writes for partitions it locked here: applied and replicated as this
    /// node's own (only at the epochs it locked, while it still holds the locks), then the
    /// partitions are unlocked; `done` follows the backups' acknowledgements. Returns whether
    /// the writes were taken.
    @discardableResult
    func applyTransactionWrites(transaction: UInt64, _ batches: [PartitionWrites], from coordinator: String, done: @escaping (Bool) -> Void) -> Bool {
        let now = WallClock.nowMilliseconds()
        let held = { (partition: Int) in self.locks[partition].map { $0.coordinator == coordinator && $0.transaction == transaction } ?? false }
        let valid = batches.allSatisfy { batch in
            let partition = Int(batch.partition)
            return partition >= 0 && partition < partitioning.partitionCount && held(partition) && copies.primaries[partition]?.epoch == batch.epoch
        }
        // Unlock what this transaction holds here, applied or not.
        for (partition, lock) in locks where lock.coordinator == coordinator && lock.transaction == transaction { locks[partition] = nil }
        guard valid else {
            done(false)
            return false
        }
        var writes = PartitionedWrites()
        var deltas: [Delta] = []
        for batch in batches {
            for write in batch.writes where !write.isEmpty {
                for delta in write.deltas { _ = state.keyspace.merge(delta, now: now) }
                for key in write.expiredKeys { state.keyspace.releaseExpired(key) }
                writes.modify(Int(batch.partition)) { batched in
                    batched.deltas += write.deltas
                    batched.expiredKeys += write.expiredKeys
                }
                deltas += write.deltas
            }
        }
        let waits = submit(writes)
        whenCommitted(waits, then: {
            self.state.replicate(deltas, now: WallClock.nowMilliseconds())
            done(true)
        }, otherwise: { _ in done(false) })
        return true
    }

    /// Whether any of `partitions` is locked by a transaction (plain commands wait for it).
    func isLocked(_ partitions: Set<Int>) -> Bool {
        !locks.isEmpty && partitions.contains { locks[$0] != nil }
    }

    /// Frames of cross-node transactions from `peer`.
    func receivedTransactionFrame(_ frame: Frame, from peer: String, on channel: Channel) {
        switch frame {
        case .lockRequest(let request):
            transport?.sendReply(.lockReply(lock(request, for: peer)), on: channel)
        case .lockReply(let reply):
            lockReplied(reply, from: peer)
        case .transactionWrites(let transaction, let batches):
            let answer = NIOLoopBound(channel, eventLoop: eventLoop)
            applyTransactionWrites(transaction: transaction, batches, from: peer) { applied in
                self.transport?.sendReply(.transactionDone(transaction: transaction, applied: applied), on: answer.value)
            }
        case .transactionDone(let transaction, let applied):
            applyConfirmed(transaction: transaction, applied: applied, from: peer)
        default:
            break
        }
    }

    /// Releases locks whose coordinator went silent, and abandons this node's transactions
    /// whose locks were not all answered.
    func expireTransactions(now: UInt64) {
        for (partition, lock) in locks where now >= lock.since + Self.lockTimeoutMilliseconds {
            locks[partition] = nil
            logger.warning("partition lock released: its coordinator did not finish", metadata: ["partition.id": "\(partition)", "coordinator": "\(lock.coordinator)"])
        }
        for (id, transaction) in transactions where transaction.applying == nil && now >= transaction.startedAt + Self.lockReplyTimeoutMilliseconds {
            abandon(transaction)
            _ = id
            retryAcrossNodes(keys: transaction.keys, deadline: transaction.deadline, body: transaction.body, done: transaction.done)
        }
    }

    /// A coordinator's connection closed: its locks here are released.
    func releaseLocks(of coordinator: String) {
        for (partition, lock) in locks where lock.coordinator == coordinator { locks[partition] = nil }
    }
}
