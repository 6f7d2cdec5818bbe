import NIOCore
import NIOEmbedded
import Testing
@testable import NodeRuntime

/// Frames batched per connection: each flush writes a connection's frames once, in order,
/// as one buffer; a kept buffer never sends a frame twice; a frame appended while its
/// connection flushes goes out with the next flush; a dropped connection sends nothing.
@Suite struct OutgoingFramesTests {
    /// The frames the channel was handed, one array of payloads per write.
    func written(_ channel: EmbeddedChannel) throws -> [[[UInt8]]] {
        var writes: [[[UInt8]]] = []
        while var buffer = try channel.readOutbound(as: ByteBuffer.self) {
            var frames: [[UInt8]] = []
            while let length = buffer.readInteger(endianness: .big, as: UInt32.self) {
                let payload = buffer.readBytes(length: Int(length))
                frames.append(try #require(payload))
            }
            writes.append(frames)
        }
        return writes
    }

    /// An embedded channel as a transport's are when they send: connected.
    func connected(_ handler: (any ChannelHandler)? = nil) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        if let handler { try channel.pipeline.syncOperations.addHandler(handler) }
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return channel
    }

    @Test func eachFlush_writesEveryConnectionsFramesOnce_inOrder() throws {
        let frames = OutgoingFrames()
        let one = try connected(), other = try connected()
        frames.append([1], on: one)
        frames.append([2, 2], on: other)
        frames.append([3, 3, 3], on: one)
        frames.flushAll()
        #expect(try written(one) == [[[1], [3, 3, 3]]])
        #expect(try written(other) == [[[2, 2]]])

        // The kept buffers start empty: nothing is sent again.
        frames.append(Array(repeating: 4, count: 2_000), on: one)
        frames.flush(one)
        frames.flushAll()
        #expect(try written(one) == [[Array(repeating: 4, count: 2_000)]])
        #expect(try written(other) == [])

        frames.append([5], on: other)
        frames.drop(other)
        frames.flushAll()
        #expect(try written(other) == [], "a dropped connection sends nothing")
        _ = try one.finish()
        _ = try other.finish()
    }

    /// Appends a frame on its own channel when flushed the first time, as a transport may
    /// while a flush runs.
    final class AppendOnFlush: ChannelOutboundHandler, @unchecked Sendable {
        typealias OutboundIn = ByteBuffer
        let frames: OutgoingFrames
        var appended = false

        init(_ frames: OutgoingFrames) { self.frames = frames }

        func flush(context: ChannelHandlerContext) {
            if !appended {
                appended = true
                frames.append([9], on: context.channel)
            }
            context.flush()
        }
    }

    /// Closes its channel when flushed, and drops it from the frames when it goes inactive,
    /// as the transports do.
    final class CloseOnFlush: ChannelDuplexHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        typealias OutboundIn = ByteBuffer
        let frames: OutgoingFrames

        init(_ frames: OutgoingFrames) { self.frames = frames }

        func flush(context: ChannelHandlerContext) {
            context.flush()
            context.close(promise: nil)
        }

        func channelInactive(context: ChannelHandlerContext) {
            frames.drop(context.channel)
            context.fireChannelInactive()
        }
    }

    /// A connection that closes while `flushAll` runs is forgotten, the others still get their
    /// frames; a frame for it arriving after its close is sent nowhere and not kept either.
    @Test func aConnectionClosedByItsFlush_isForgotten_evenWhenFramesComeLate() throws {
        let frames = OutgoingFrames()
        let closing = try connected(CloseOnFlush(frames))
        let open = try connected()
        frames.append([1], on: closing)
        frames.append([2], on: open)
        frames.flushAll()
        #expect(!closing.isActive)
        #expect(try written(open) == [[[2]]])
        #expect(frames.connectionCount == 1, "the closed connection is dropped")
        frames.append([3], on: closing)  // a late reply
        frames.flushAll()
        #expect(frames.connectionCount == 1, "nor kept after a late frame")
        _ = try open.finish()
    }

    @Test func aFrameAppendedDuringItsConnectionsFlush_goesWithTheNext() throws {
        let frames = OutgoingFrames()
        let channel = try connected(AppendOnFlush(frames))
        frames.append([1], on: channel)
        frames.flushAll()
        #expect(try written(channel) == [[[1]]])
        frames.append([2], on: channel)
        frames.flushAll()
        #expect(try written(channel) == [[[9], [2]]], "kept, not overwritten by the emptied buffer")
        _ = try channel.finish()
    }
}
