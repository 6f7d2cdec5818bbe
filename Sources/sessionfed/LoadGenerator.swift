import Histogram
import NIOCore
import NIOPosix
import SessionModel

/// What `sessionfed bench` sends and how much of it.
struct LoadSettings: Sendable {
    enum Command: String, CaseIterable, Sendable {
        case set, hset, get
    }

    var host: String
    var ports: [Int]
    var clients: Int
    var pipeline: Int
    var requests: Int
    var command: Command
    var keyspace: Int
    var valueBytes: Int
    /// Send `WAIT n 0` after every write and count the write done when it answers (how a
    /// Redis primary with replicas is made to acknowledge only replicated writes).
    var waitReplicas: Int?
    /// Route as a cluster-aware client: read the slot map (CLUSTER NODES) from the first port
    /// and give each connection only keys whose primary it is connected to.
    var cluster = false
}

/// What a run measured: latencies in microseconds, from a request's send to its (last) reply.
struct LoadResult: Sendable {
    var requests: Int
    var errors: Int
    var seconds: Double
    var latency: Histogram<UInt64>
    var firstError: String?

    var requestsPerSecond: Double { Double(requests) / seconds }
}

/// A closed-loop load generator: `clients` connections spread over the ports, each keeping
/// `pipeline` requests in flight and sending the next batch when the last reply of the
/// previous one arrived (as redis-benchmark does). Everything runs on one event loop, so
/// the shared counters need no locks.
final class LoadGenerator: @unchecked Sendable {
    let settings: LoadSettings
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    var loop: EventLoop { group.next() }
    var latency = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
    var sent = 0
    var completed = 0
    var errors = 0
    var firstError: String?
    var done: EventLoopPromise<Void>?
    var random = UInt64(0x9E37_79B9_7F4A_7C15)

    init(settings: LoadSettings) {
        self.settings = settings
    }

    /// Where a connection sends: its address and, in cluster mode, the keys (indices into
    /// the keyspace; for HSET, hash numbers) whose primary is there.
    struct Target {
        var host: String
        var port: Int
        var keys: [Int]?
    }

    func run() async throws -> LoadResult {
        let loop = self.loop
        let promise = loop.makePromise(of: Void.self)
        done = promise
        var channels: [Channel] = []
        do {
            let targets: [Target]
            if settings.cluster {
                let owners = try await ClusterMapReader.slotOwners(host: settings.host, port: settings.ports[0], group: group)
                targets = try Self.clusterTargets(owners: owners, settings: settings)
            } else {
                targets = settings.ports.map { Target(host: settings.host, port: $0) }
            }
            for index in 0..<settings.clients {
                let target = settings.cluster ? Self.weighted(targets, client: index, of: settings.clients) : targets[index % targets.count]
                let channel = try await ClientBootstrap(group: loop)
                    .channelOption(.socketOption(.tcp_nodelay), value: 1)
                    .channelInitializer { channel in
                        channel.eventLoop.makeCompletedFuture {
                            try channel.pipeline.syncOperations.addHandler(LoadConnection(generator: self, keys: target.keys))
                        }
                    }
                    .connect(host: target.host, port: target.port)
                    .get()
                channels.append(channel)
            }
        } catch {
            // A server that is not there (or not a cluster) is an answer, not a crash: the
            // error reaches the command line with every connection closed.
            promise.fail(error)
            for channel in channels { try? await channel.close() }
            try? await group.shutdownGracefully()
            throw error
        }
        let started = NIODeadline.now()
        try await loop.submit {
            for channel in channels { (try? channel.pipeline.syncOperations.handler(type: LoadConnection.self))?.sendBatch(context: nil, channel: channel) }
        }.get()
        try await promise.futureResult.get()
        let seconds = Double((NIODeadline.now() - started).nanoseconds) / 1e9
        for channel in channels { try? await channel.close() }
        let result = try await loop.submit { LoadResult(requests: self.completed, errors: self.errors, seconds: seconds, latency: self.latency, firstError: self.firstError) }.get()
        try await group.shutdownGracefully()
        return result
    }

    /// The next request's RESP bytes (a random key of the keyspace, as redis-benchmark -r).
    /// With `keys` (cluster mode), a random one of those: keys whose primary this connection
    /// reaches.
    func nextRequest(into buffer: inout ByteBuffer, keys: [Int]?) {
        random ^= random << 13
        random ^= random >> 7
        random ^= random << 17
        let anyKey = Int(random % UInt64(settings.keyspace))
        // The name a cluster client routes by: the key itself, or for HSET the hash.
        let routed = keys.map { $0[Int(random % UInt64($0.count))] }
        let key = "key:\(settings.command == .hset ? anyKey : routed ?? anyKey)"
        let value = String(repeating: "x", count: settings.valueBytes)
        let arguments: [String]
        switch settings.command {
        case .set: arguments = ["SET", key, value]
        case .hset: arguments = ["HSET", "hash:\(routed ?? Int(random % UInt64(Self.hashCount)))", key, value]
        case .get: arguments = ["GET", key]
        }
        Self.encode(arguments, into: &buffer)
        if let replicas = settings.waitReplicas, settings.command != .get { Self.encode(["WAIT", String(replicas), "0"], into: &buffer) }
    }

    /// HSET writes fields of this many hashes (`hash:0` …).
    static let hashCount = 100

    /// One target per primary, with the keys it is primary for: every key of the keyspace
    /// (for HSET, every hash) belongs to exactly one, so together they draw the keys a run
    /// without `--cluster` draws.
    static func clusterTargets(owners: [ClusterMapReader.Endpoint], settings: LoadSettings) throws -> [Target] {
        let names = settings.command == .hset ? (0..<hashCount).map { (index: $0, name: "hash:\($0)") } : (0..<settings.keyspace).map { (index: $0, name: "key:\($0)") }
        var keys: [ClusterMapReader.Endpoint: [Int]] = [:]
        for endpoint in Set(owners) { keys[endpoint] = [] }
        for (index, name) in names { keys[owners[Partitioning.slot(of: Array(name.utf8))], default: []].append(index) }
        let targets = keys.sorted { ($0.key.host, $0.key.port) < ($1.key.host, $1.key.port) }.map { Target(host: $0.key.host, port: $0.key.port, keys: $0.value) }
        if let empty = targets.first(where: { $0.keys!.isEmpty }) {
            throw ClusterMapReader.Failure(description: "no key drawn (\(names.count) \(settings.command == .hset ? "hashes" : "keys, --keyspace")) has its primary at \(empty.host):\(empty.port): use a larger --keyspace")
        }
        return targets
    }

    /// The target of connection `client` of `clients`: connections are shared out in
    /// proportion to each target's keys, so every key is sent about as often.
    static func weighted(_ targets: [Target], client: Int, of clients: Int) -> Target {
        let total = targets.reduce(0) { $0 + $1.keys!.count }
        let position = (2 * client + 1) * total / (2 * clients)
        var seen = 0
        for target in targets {
            seen += target.keys!.count
            if position < seen { return target }
        }
        return targets[targets.count - 1]
    }

    static func encode(_ arguments: [String], into buffer: inout ByteBuffer) {
        buffer.writeString("*\(arguments.count)\r\n")
        for argument in arguments {
            buffer.writeString("$\(argument.utf8.count)\r\n\(argument)\r\n")
        }
    }

    /// Replies one request produces.
    var repliesPerRequest: Int { settings.waitReplicas != nil && settings.command != .get ? 2 : 1 }
}

/// One benchmark connection: sends a batch, counts replies, records latencies.
final class LoadConnection: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let generator: LoadGenerator
    let keys: [Int]?
    var pending: [NIODeadline] = []
    var repliesLeftForHead = 0
    var input = ByteBuffer()

    init(generator: LoadGenerator, keys: [Int]?) {
        self.generator = generator
        self.keys = keys
    }

    func sendBatch(context: ChannelHandlerContext?, channel: Channel) {
        let count = min(generator.settings.pipeline, generator.settings.requests - generator.sent)
        guard count > 0 else { return }
        var buffer = channel.allocator.buffer(capacity: 64 * count)
        for _ in 0..<count { generator.nextRequest(into: &buffer, keys: keys) }
        generator.sent += count
        let now = NIODeadline.now()
        pending += Array(repeating: now, count: count)
        if repliesLeftForHead == 0 { repliesLeftForHead = generator.repliesPerRequest }
        channel.writeAndFlush(buffer, promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        input.writeBuffer(&incoming)
        while let reply = Self.nextReply(&input) {
            if reply.isError {
                generator.errors += 1
                if generator.firstError == nil { generator.firstError = reply.text }
            }
            repliesLeftForHead -= 1
            guard repliesLeftForHead == 0, !pending.isEmpty else { continue }
            let sentAt = pending.removeFirst()
            _ = generator.latency.record(UInt64(max(1, (NIODeadline.now() - sentAt).nanoseconds / 1_000)))
            generator.completed += 1
            repliesLeftForHead = pending.isEmpty ? 0 : generator.repliesPerRequest
        }
        input.discardReadBytes()
        if pending.isEmpty {
            if generator.completed >= generator.settings.requests {
                generator.done?.succeed(())
                generator.done = nil
            } else {
                sendBatch(context: context, channel: context.channel)
            }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        generator.done?.fail(error)
        generator.done = nil
        context.close(promise: nil)
    }

    /// One complete reply off the front of `buffer` (simple string, error, integer, bulk or
    /// null), or nil while incomplete.
    static func nextReply(_ buffer: inout ByteBuffer) -> (isError: Bool, text: String)? {
        let view = buffer.readableBytesView
        guard let newline = view.firstIndex(of: UInt8(ascii: "\n")) else { return nil }
        let line = String(decoding: view[view.startIndex..<newline].dropLast(), as: UTF8.self)
        var consumed = newline - view.startIndex + 1
        if line.first == "$", let length = Int(line.dropFirst()), length >= 0 {
            guard view.count >= consumed + length + 2 else { return nil }
            consumed += length + 2
        }
        buffer.moveReaderIndex(forwardBy: consumed)
        return (line.first == "-", line)
    }
}

/// Reads a cluster's slot map the way redis-benchmark --cluster does: CLUSTER NODES, and for
/// each master line its slot ranges.
enum ClusterMapReader {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    struct Endpoint: Hashable {
        var host: String
        var port: Int
    }

    static func slotOwners(host: String, port: Int, group: EventLoopGroup) async throws -> [Endpoint] {
        let reply = try await BulkReplyReader.fetch(["CLUSTER", "NODES"], host: host, port: port, group: group)
        return try slotOwners(nodes: reply)
    }

    /// `<id> <host:port@cport> <flags> <master> … <slot ranges>` per line; `[…]` entries
    /// (slots being migrated) are skipped.
    static func slotOwners(nodes text: String) throws -> [Endpoint] {
        var owners: [Endpoint?] = Array(repeating: nil, count: Partitioning.slotCount)
        for line in text.split(whereSeparator: \.isNewline) {
            let fields = line.split(separator: " ")
            guard fields.count >= 8, fields[2].split(separator: ",").contains("master") else { continue }
            let address = fields[1].split(separator: "@")[0]
            guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]) else {
                throw Failure(description: "CLUSTER NODES: cannot read the address in '\(line)'")
            }
            let endpoint = Endpoint(host: String(address[..<colon]), port: port)
            for range in fields.dropFirst(8) where !range.hasPrefix("[") {
                let bounds = range.split(separator: "-").compactMap { Int($0) }
                guard let first = bounds.first, let last = bounds.last, first <= last, last < owners.count else {
                    throw Failure(description: "CLUSTER NODES: cannot read the slot range '\(range)'")
                }
                for slot in first...last { owners[slot] = endpoint }
            }
        }
        if let uncovered = owners.firstIndex(where: { $0 == nil }) {
            throw Failure(description: "CLUSTER NODES: slot \(uncovered) has no master (the cluster is not ready)")
        }
        return owners.compactMap { $0 }
    }
}

/// Sends one command on a fresh connection and returns its reply, which must be a bulk
/// string (or an error, thrown).
final class BulkReplyReader: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer

    let promise: EventLoopPromise<String>
    var input = ByteBuffer()

    init(promise: EventLoopPromise<String>) {
        self.promise = promise
    }

    static func fetch(_ arguments: [String], host: String, port: Int, group: EventLoopGroup) async throws -> String {
        let loop = group.next()
        let promise = loop.makePromise(of: String.self)
        let channel: Channel
        do {
            channel = try await ClientBootstrap(group: loop)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(BulkReplyReader(promise: promise)) }
                }
                .connect(host: host, port: port)
                .get()
        } catch {
            promise.fail(error)
            throw error
        }
        defer { channel.close(promise: nil) }
        // A server that never answers is an error, not a bench that waits for ever.
        let timeout = loop.scheduleTask(in: .seconds(10)) { promise.fail(ClusterMapReader.Failure(description: "no answer to \(arguments.joined(separator: " ")) within 10 s")) }
        defer { timeout.cancel() }
        var request = channel.allocator.buffer(capacity: 64)
        LoadGenerator.encode(arguments, into: &request)
        try await channel.writeAndFlush(request)
        return try await promise.futureResult.get()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        input.writeBuffer(&incoming)
        let view = input.readableBytesView
        guard let newline = view.firstIndex(of: UInt8(ascii: "\n")) else { return }
        let header = String(decoding: view[view.startIndex..<newline].dropLast(), as: UTF8.self)
        // RESP3's verbatim string (`=`) carries a 4-byte format prefix (`txt:`).
        guard let kind = header.first, kind == "$" || kind == "=", let length = Int(header.dropFirst()), length >= 0 else {
            promise.fail(ClusterMapReader.Failure(description: "CLUSTER NODES answered '\(header)': --cluster needs a Redis Cluster node or a sessionfed node"))
            return
        }
        let body = view.index(after: newline)
        guard view.endIndex - body >= length else { return }
        let text = String(decoding: view[body..<(body + length)], as: UTF8.self)
        promise.succeed(kind == "=" ? String(text.dropFirst(4)) : text)
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise.fail(ClusterMapReader.Failure(description: "the server closed the connection before replying"))
    }
}
