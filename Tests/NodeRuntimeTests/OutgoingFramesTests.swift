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

    @Test func eachFlush_writesEveryConnectionsFramesOnce_inOrder() throws {
        let frames = OutgoingFrames()
        let one = EmbeddedChannel(), other = EmbeddedChannel()
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

    @Test func aFrameAppendedDuringItsConnectionsFlush_goesWithTheNext() throws {
        let frames = OutgoingFrames()
        let channel = EmbeddedChannel(handler: AppendOnFlush(frames))
        frames.append([1], on: channel)
        frames.flushAll()
        #expect(try written(channel) == [[[1]]])
        frames.append([2], on: channel)
        frames.flushAll()
        #expect(try written(channel) == [[[9], [2]]], "kept, not overwritten by the emptied buffer")
        _ = try channel.finish()
    }
}
