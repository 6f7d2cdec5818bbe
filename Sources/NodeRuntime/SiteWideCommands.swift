import Keyspace
import NIOCore
import RESP
import Replication
import SessionModel
import Wire

/// A keyless command over a site of several nodes that this node is answering: DBSIZE, KEYS,
/// FLUSHDB and FLUSHALL ask the primary of every partition about the partitions it leads
/// (about the client's database's keys, or every database's for FLUSHALL).
/// (SCAN needs no fan-out: its cursor names one partition, and each call runs on that
/// partition's primary like a one-key command.)
struct SiteQuery {
    let kind: PartitionQuery.Kind
    /// The client's database; nil: every database (FLUSHALL).
    let database: UInt32?
    let deadline: UInt64
    let sentAt: UInt64
    let done: (RESPValue) -> Void
    /// Nodes whose answer is awaited.
    var waiting: Set<String>
    var count: UInt64 = 0
    var keys: [[UInt8]] = []
    /// A node was not primary of the partitions asked any more: ask again on a newer map.
    var askAgain = false
}

extension DataPlane {
    /// The partitions a data command touches: its keys', or for SCAN the one its cursor
    /// names. Nil for the keyless commands answered by every primary (DBSIZE, KEYS, FLUSH*).
    func partitions(of arguments: [[UInt8]], name: String, keys: [[UInt8]]) -> Set<Int>? {
        if !keys.isEmpty { return Set(keys.map(partitioning.partition(of:))) }
        guard name == "scan" else { return nil }
        // A cursor that does not parse (or names no partition) gets its error anywhere.
        let cursor = UInt64(String(decoding: arguments[1], as: UTF8.self)) ?? 0
        return [min(Keyspace.scanPartition(ofCursor: cursor), partitioning.partitionCount - 1)]
    }

    /// Runs DBSIZE, KEYS, FLUSHDB or FLUSHALL over every partition of the site: the first
    /// three over the keys of the client's `database`, FLUSHALL over every database's.
    func runSiteWide(_ arguments: [[UInt8]], name: String, database: Int, done: @escaping (RESPValue) -> Void) {
        let kind: PartitionQuery.Kind
        switch name {
        case "dbsize": kind = .count
        case "keys": kind = .keysMatching(arguments[1])
        case "flushdb", "flushall":
            if arguments.count > 2 || (arguments.count == 2 && !["ASYNC", "SYNC"].contains(String(decoding: arguments[1], as: UTF8.self).uppercased())) {
                done(RedisError.syntax)
                return
            }
            kind = .flush
        default:
            done(.error("ERR '\(name)' over every node of a site is not supported"))
            return
        }
        let scope = name == "flushall" ? nil : UInt32(database)
        ask(kind, database: scope, deadline: WallClock.monotonicMilliseconds() + Self.routeDeadlineMilliseconds, done: done)
    }

    func ask(_ kind: PartitionQuery.Kind, database: UInt32?, deadline: UInt64, done: @escaping (RESPValue) -> Void) {
        let now = WallClock.monotonicMilliseconds()
        guard let map = state.controlPlane?.raft.map, map.partitions.allSatisfy({ $0.primary != nil }) else {
            askLater(kind, database: database, deadline: deadline, done: done)
            return
        }
        var owners: [String: [UInt32]] = [:]
        for assignment in map.partitions { owners[assignment.primary!, default: []].append(UInt32(assignment.partition)) }
        let request = nextRequest
        nextRequest += 1
        queries[request] = SiteQuery(kind: kind, database: database, deadline: deadline, sentAt: now, done: done, waiting: Set(owners.keys))
        for (owner, parts) in owners.sorted(by: { $0.key < $1.key }) {
            let query = PartitionQuery(request: request, partitions: parts, kind: kind, database: database)
            if owner == nodeName {
                answer(query) { self.queryAnswered($0, from: self.nodeName) }
            } else if transport?.sendData(.partitionQuery(query), to: owner) != true {
                queryAnswered(PartitionQueryReply(request: request, notPrimary: true), from: owner)
            }
        }
    }

    func askLater(_ kind: PartitionQuery.Kind, database: UInt32?, deadline: UInt64, done: @escaping (RESPValue) -> Void) {
        guard WallClock.monotonicMilliseconds() < deadline else {
            counters.tryAgainReplies += 1
            done(.error("TRYAGAIN some partitions of the site have no primary now; retry the command"))
            return
        }
        let later = NIOLoopBound(done, eventLoop: eventLoop)
        eventLoop.scheduleTask(in: .milliseconds(Self.routeRetryMilliseconds)) { self.ask(kind, database: database, deadline: deadline, done: later.value) }
    }

    func queryAnswered(_ reply: PartitionQueryReply, from owner: String) {
        guard var query = queries[reply.request], query.waiting.remove(owner) != nil else { return }
        query.askAgain = query.askAgain || reply.notPrimary
        query.count += reply.count
        query.keys += reply.keys
        queries[reply.request] = query
        guard query.waiting.isEmpty else { return }
        queries[reply.request] = nil
        if query.askAgain {
            // Partial answers are dropped; a flush already done somewhere is harmless to repeat.
            askLater(query.kind, database: query.database, deadline: query.deadline, done: query.done)
            return
        }
        switch query.kind {
        case .count: query.done(.integer(Int64(query.count)))
        case .keysMatching: query.done(.array(query.keys.sorted { $0.lexicographicallyPrecedes($1) }.map(RESPValue.bulkString)))
        case .flush: query.done(.ok)
        }
    }

    /// Answers a query about partitions this node leads (or says it does not lead them now).
    func answer(_ query: PartitionQuery, done: @escaping (PartitionQueryReply) -> Void) {
        let partitions = Set(query.partitions.map(Int.init).filter { $0 >= 0 && $0 < partitioning.partitionCount })
        guard partitions.count == query.partitions.count, actsAsPrimary(of: partitions, now: WallClock.monotonicMilliseconds()), !isLocked(partitions) else {
            done(PartitionQueryReply(request: query.request, notPrimary: true))
            return
        }
        let now = WallClock.nowMilliseconds()
        let database = query.database.map(Int.init)
        switch query.kind {
        case .count:
            let count = state.keyspace.count(now: now, inPartitions: partitions, database: database ?? 0)
            done(PartitionQueryReply(request: query.request, notPrimary: false, count: UInt64(count)))
        case .keysMatching(let pattern):
            let keys = state.keyspace.keys(matching: pattern, inPartitions: partitions, now: now, database: database ?? 0)
            done(PartitionQueryReply(request: query.request, notPrimary: false, keys: keys))
        case .flush:
            let deltas = state.keyspace.flush(partitions: partitions, now: now, database: database)
            let waits = submit(writes(deltas))
            whenCommitted(waits, then: {
                self.state.replicate(deltas, now: WallClock.nowMilliseconds())
                done(PartitionQueryReply(request: query.request, notPrimary: false))
            }, otherwise: { _ in done(PartitionQueryReply(request: query.request, notPrimary: true)) })
        }
    }

    /// Gives up on queries whose answers did not come in time.
    func expireQueries(now: UInt64) {
        for (request, query) in queries where now >= query.sentAt + Self.forwardTimeoutMilliseconds {
            queries[request] = nil
            counters.unknownOutcomes += 1
            switch query.kind {
            case .flush: query.done(.error("ERR a node did not answer in time; the flush may have been applied in part"))
            case .count, .keysMatching: query.done(.error("TRYAGAIN a node did not answer in time; retry the command"))
            }
        }
    }
}
