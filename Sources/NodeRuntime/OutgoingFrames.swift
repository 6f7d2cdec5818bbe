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
/// A connection's buffer is kept after its flush: once the channel wrote it (at once, when
/// the socket takes it all) nothing else holds it, and the next frames reuse its memory. A
/// buffer and its bytes were two allocations of every frame, and a replicated write sends
/// two frames. Should the channel still hold it, clearing it takes new memory, as a new
/// buffer would have.
///
/// Confined to the node's event loop, like the transports that own it.
final class OutgoingFrames: @unchecked Sendable {
    /// One connection's buffer; nil while the channel is handed it.
    private final class Connection {
        let channel: Channel
        var buffer: ByteBuffer?
        /// The connection closed while its buffer was out: it is not kept.
        var dropped = false

        init(channel: Channel) {
            self.channel = channel
        }
    }

    private var connections: [ObjectIdentifier: Connection] = [:]
    /// The connections with frames not flushed yet, in the order their first frame came.
    private var pending: [Connection] = []
    /// `pending` while `flushAll` walks it (kept for its capacity).
    private var flushing: [Connection] = []

    /// A buffer grown past this (a state-transfer chunk) is not kept after its flush.
    static let largestKeptBuffer = 64 * 1_024

    /// Appends one frame (its length prefix, then `payload`) to what `channel` sends next.
    func append(_ payload: [UInt8], on channel: Channel) {
        let key = ObjectIdentifier(channel)
        let connection = connections[key] ?? Connection(channel: channel)
        connections[key] = connection
        if connection.buffer == nil {
            connection.buffer = channel.allocator.buffer(capacity: max(4 + payload.count, 1_024))
        }
        if connection.buffer!.readableBytes == 0 { pending.append(connection) }
        connection.buffer!.writeInteger(UInt32(payload.count), endianness: .big)
        connection.buffer!.writeBytes(payload)
    }

    /// Writes what `channel` has pending, then flushes it.
    func flush(_ channel: Channel) {
        guard let connection = connections[ObjectIdentifier(channel)] else { return channel.flush() }
        pending.removeAll { $0 === connection }
        send(connection)
    }

    /// Flushes every connection with frames pending.
    func flushAll() {
        // Swapped out first: a flush may close a connection, which drops it from `pending`.
        // (Run once per event-loop turn, never from within a flush.)
        precondition(flushing.isEmpty, "Invalid state: flushAll re-entered")
        swap(&pending, &flushing)
        for connection in flushing where !connection.dropped { send(connection) }
        flushing.removeAll(keepingCapacity: true)
    }

    /// Writes and flushes a connection's frames, then keeps its emptied buffer.
    private func send(_ connection: Connection) {
        guard var buffer = connection.buffer, buffer.readableBytes > 0 else { return connection.channel.flush() }
        // Out of the connection while the channel has it, so that once the channel let go of
        // the bytes this is their only holder and clearing keeps them.
        connection.buffer = nil
        connection.channel.write(buffer, promise: nil)
        connection.channel.flush()
        guard connection.channel.isActive else {
            // Closed (or not yet open): a frame for a closed connection (a forwarded command
            // answered after its connection went) came after `drop`, so nothing else would
            // forget it and the channel would be held for good.
            // (Frames appended during the flush stay until theirs.)
            let key = ObjectIdentifier(connection.channel)
            if connection.buffer == nil, connections[key] === connection { connections[key] = nil }
            return
        }
        // (Frames appended while the channel flushed are in a buffer of their own: kept.)
        guard !connection.dropped, connection.buffer == nil, buffer.capacity <= Self.largestKeptBuffer else { return }
        buffer.clear()
        connection.buffer = buffer
    }

    /// How many connections have a buffer here (for tests).
    var connectionCount: Int { connections.count }

    /// The connection closed: what it had pending goes nowhere.
    func drop(_ channel: Channel) {
        guard let connection = connections.removeValue(forKey: ObjectIdentifier(channel)) else { return }
        connection.dropped = true
        connection.buffer = nil
        pending.removeAll { $0 === connection }
    }
}
