import NIOCore
import NIOPosix
import Topology

/// A minimal HTTP/1.1 client for the admin endpoints of other nodes (`sessionfed status`).
public enum AdminClient {
    public struct Response: Sendable {
        public var status: Int
        public var body: [UInt8]
    }

    public struct Failure: Error, CustomStringConvertible {
        public var description: String

        public init(description: String) {
            self.description = description
        }
    }

    /// GET `path` from `address`; fails after `timeout`.
    public static func get(_ address: Topology.Address, path: String, timeout: TimeAmount = .seconds(3)) async throws -> Response {
        try await send("GET", address, path: path, timeout: timeout)
    }

    /// POST (no body) to `path` at `address`; fails after `timeout`.
    public static func post(_ address: Topology.Address, path: String, timeout: TimeAmount = .seconds(3)) async throws -> Response {
        try await send("POST", address, path: path, timeout: timeout)
    }

    static func send(_ method: String, _ address: Topology.Address, path: String, timeout: TimeAmount) async throws -> Response {
        let group = MultiThreadedEventLoopGroup.singleton
        let promise = group.next().makePromise(of: [UInt8].self)
        let channel: Channel
        do {
            channel = try await ClientBootstrap(group: group)
                .connectTimeout(timeout)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(CollectingHandler(promise: promise))
                    }
                }
                .connect(host: address.host, port: address.port).get()
        } catch {
            promise.fail(error)
            throw Failure(description: "cannot reach \(address): \(error)")
        }
        let request = "\(method) \(path) HTTP/1.1\r\nHost: \(address)\r\nConnection: close\r\nAccept: application/json\r\nContent-Length: 0\r\n\r\n"
        try await channel.writeAndFlush(channel.allocator.buffer(string: request))
        let deadline = channel.eventLoop.scheduleTask(in: timeout) {
            promise.fail(Failure(description: "no answer from \(address) within \(timeout.nanoseconds / 1_000_000) ms"))
            channel.close(promise: nil)
        }
        defer { deadline.cancel() }
        let bytes = try await promise.futureResult.get()
        return try parse(bytes, from: address)
    }

    static func parse(_ bytes: [UInt8], from address: Topology.Address) throws -> Response {
        let separator: [UInt8] = [13, 10, 13, 10]
        guard let split = (0...(max(0, bytes.count - 4))).first(where: { bytes.count >= 4 && Array(bytes[$0..<$0 + 4]) == separator }) else {
            throw Failure(description: "malformed HTTP answer from \(address)")
        }
        let head = String(decoding: bytes[..<split], as: UTF8.self)
        let statusLine = head.split(separator: "\r\n").first ?? ""
        let parts = statusLine.split(separator: " ")
        guard parts.count >= 2, let status = Int(parts[1]) else { throw Failure(description: "malformed HTTP status line from \(address)") }
        var body = Array(bytes[(split + 4)...])
        if head.lowercased().contains("transfer-encoding: chunked") { body = dechunk(body) }
        return Response(status: status, body: body)
    }

    static func dechunk(_ bytes: [UInt8]) -> [UInt8] {
        var result: [UInt8] = []
        var index = 0
        while index < bytes.count {
            guard let lineEnd = (index..<bytes.count - 1).first(where: { bytes[$0] == 13 && bytes[$0 + 1] == 10 }),
                let size = Int(String(decoding: bytes[index..<lineEnd], as: UTF8.self).split(separator: ";").first ?? "", radix: 16), size > 0
            else { break }
            let start = lineEnd + 2
            result += bytes[start..<min(bytes.count, start + size)]
            index = start + size + 2
        }
        return result
    }

    final class CollectingHandler: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        let promise: EventLoopPromise<[UInt8]>
        var bytes: [UInt8] = []

        init(promise: EventLoopPromise<[UInt8]>) {
            self.promise = promise
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            bytes += unwrapInboundIn(data).readableBytesView
        }

        func channelInactive(context: ChannelHandlerContext) {
            promise.succeed(bytes)
        }

        func errorCaught(context: ChannelHandlerContext, error: Error) {
            promise.fail(error)
            context.close(promise: nil)
        }
    }
}
