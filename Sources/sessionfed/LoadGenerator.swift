import Histogram
import NIOCore
import NIOPosix

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

    func run() async throws -> LoadResult {
        let loop = self.loop
        let promise = loop.makePromise(of: Void.self)
        done = promise
        var channels: [Channel] = []
        for index in 0..<settings.clients {
            let port = settings.ports[index % settings.ports.count]
            let channel = try await ClientBootstrap(group: loop)
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(LoadConnection(generator: self))
                    }
                }
                .connect(host: settings.host, port: port)
                .get()
            channels.append(channel)
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
    func nextRequest(into buffer: inout ByteBuffer) {
        random ^= random << 13
        random ^= random >> 7
        random ^= random << 17
        let key = "key:\(random % UInt64(settings.keyspace))"
        let value = String(repeating: "x", count: settings.valueBytes)
        let arguments: [String]
        switch settings.command {
        case .set: arguments = ["SET", key, value]
        case .hset: arguments = ["HSET", "hash:\(random % 100)", key, value]
        case .get: arguments = ["GET", key]
        }
        Self.encode(arguments, into: &buffer)
        if let replicas = settings.waitReplicas, settings.command != .get { Self.encode(["WAIT", String(replicas), "0"], into: &buffer) }
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
    var pending: [NIODeadline] = []
    var repliesLeftForHead = 0
    var input = ByteBuffer()

    init(generator: LoadGenerator) {
        self.generator = generator
    }

    func sendBatch(context: ChannelHandlerContext?, channel: Channel) {
        let count = min(generator.settings.pipeline, generator.settings.requests - generator.sent)
        guard count > 0 else { return }
        var buffer = channel.allocator.buffer(capacity: 64 * count)
        for _ in 0..<count { generator.nextRequest(into: &buffer) }
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
