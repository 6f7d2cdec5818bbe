import NIOCore

/// The frames written on each connection of a transport since its last flush, in one buffer
/// per connection: a flush hands each connection's frames to the channel as one write.
///
/// Why: a replicated write sends several frames (forwarded command, writes to the backup,
/// acknowledgement, reply), each of which was a buffer of its own and a trip through the
/// channel's pipeline: about a twentieth of a site's CPU under writes. Frames keep their order
/// on a connection because every write and every flush of a transport's connections goes
/// through here (`FramedTransport.writeIfFits` and `flush`).
///
/// Confined to the node's event loop, like the transports that own it.
final class OutgoingFrames: @unchecked Sendable {
    private var pending: [ObjectIdentifier: (channel: Channel, buffer: ByteBuffer)] = [:]

    /// Appends one frame (its length prefix, then `payload`) to what `channel` sends next.
    func append(_ payload: [UInt8], on channel: Channel) {
        let key = ObjectIdentifier(channel)
        if pending[key] == nil {
            pending[key] = (channel, channel.allocator.buffer(capacity: max(4 + payload.count, 1_024)))
        }
        pending[key]!.buffer.writeInteger(UInt32(payload.count), endianness: .big)
        pending[key]!.buffer.writeBytes(payload)
    }

    /// Writes what `channel` has pending, then flushes it.
    func flush(_ channel: Channel) {
        if let (_, buffer) = pending.removeValue(forKey: ObjectIdentifier(channel)) {
            channel.write(buffer, promise: nil)
        }
        channel.flush()
    }

    /// Flushes every connection with frames pending.
    func flushAll() {
        let channels = pending.values.map(\.channel)
        for channel in channels { flush(channel) }
    }

    /// The connection closed: what it had pending goes nowhere.
    func drop(_ channel: Channel) {
        pending[ObjectIdentifier(channel)] = nil
    }
}
