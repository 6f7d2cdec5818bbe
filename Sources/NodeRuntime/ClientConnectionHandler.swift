import NIOCore
import RESP
import Synchronization

/// A client connection's socket side, on the event loop that carries the socket: reads the
/// bytes, parses them into commands and hands each read's commands, in order, to the
/// connection's `ClientConnection` on the node state's loop. With `threads: 1` both are the
/// same loop and the hand-over is a call; with more, the socket's reads, the parsing and the
/// writes (and TLS) run on a loop of their own and the state's loop only runs commands.
final class ClientConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    let state: NodeState
    let overTLS: Bool
    let ioThread: Int
    let maximumQueryBufferBytes: Int
    var parser: RESPRequestParser
    /// Bytes read and not parsed yet (the start of a command still arriving).
    var input: ByteBuffer?
    /// Commands parsed in this read, not handed over yet, and the input bytes they took.
    var batch: [[[UInt8]]] = []
    var batchBytes = 0
    /// The input stopped being RESP: no further byte is read.
    var protocolError: String?
    var failed = false
    let queryBuffer = QueryBuffer()
    var connection: ClientConnection?
    /// The socket is on the state's loop: commands are handed over by a call.
    var onStateLoop = true

    /// `ioThread`: which loop carries the socket (`ClientRecord.ioThread`).
    init(state: NodeState, overTLS: Bool, ioThread: Int) {
        self.state = state
        self.overTLS = overTLS
        self.ioThread = ioThread
        maximumQueryBufferBytes = state.configuration.limits.maximumQueryBufferBytes
        parser = RESPRequestParser(limits: state.configuration.limits)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        connection = ClientConnection(state: state, channel: context.channel, queryBuffer: queryBuffer, overTLS: overTLS, ioThread: ioThread)
        onStateLoop = context.eventLoop === state.eventLoop
    }

    /// Runs `body` with the connection on the state's loop, after everything handed over before.
    func onConnection(_ body: @escaping @Sendable (ClientConnection) -> Void) {
        guard let connection else { return }
        if onStateLoop {
            body(connection)
        } else {
            state.eventLoop.execute { body(connection) }
        }
    }

    func channelActive(context: ChannelHandlerContext) {
        onConnection { $0.activate() }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        onConnection { $0.deactivate() }
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !failed else { return }
        var incoming = unwrapInboundIn(data)
        if input == nil || input!.readableBytes == 0 {
            input = incoming
        } else {
            input!.writeBuffer(&incoming)
        }
        guard queryBuffer.bytes + batchBytes + input!.readableBytes <= maximumQueryBufferBytes else {
            // Redis closes a client over client-query-buffer-limit without a reply; the
            // commands read with it do not run.
            failed = true
            input = nil
            batch = []
            onConnection { $0.exceededQueryBuffer() }
            context.close(promise: nil)
            return
        }
        while input != nil {
            let before = input!.readableBytes
            switch parser.next(from: &input!) {
            case .incomplete:
                if input!.readableBytes == 0 { input = nil }
                return
            case .protocolError(let message):
                protocolError = message
                failed = true
                input = nil
            case .command(let arguments):
                batch.append(arguments)
                batchBytes += before - input!.readableBytes
            }
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        handOver()
        context.fireChannelReadComplete()
    }

    /// Hands this read's commands to the connection.
    func handOver() {
        guard !batch.isEmpty || protocolError != nil, let connection else { return }
        let bytes = batchBytes, error = protocolError
        queryBuffer.read(bytes)
        batchBytes = 0
        protocolError = nil
        if onStateLoop {
            connection.receive(&batch, bytes: bytes, protocolError: error)
        } else {
            let commands = batch
            batch = []
            state.eventLoop.execute {
                var commands = commands
                connection.receive(&commands, bytes: bytes, protocolError: error)
            }
        }
    }

    /// The client closed its side: what it sent is answered, then the connection closes.
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard case ChannelEvent.inputClosed? = event as? ChannelEvent else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        handOver()
        onConnection { $0.inputClosed() }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}

/// A client's query buffer as Redis counts it against `client-query-buffer-limit`: bytes read
/// whose commands have not run yet. The socket's loop adds, the state's loop subtracts.
final class QueryBuffer: Sendable {
    private let count = Atomic<Int>(0)

    var bytes: Int { count.load(ordering: .relaxed) }

    func read(_ bytes: Int) {
        count.add(bytes, ordering: .relaxed)
    }

    func ran(_ bytes: Int) {
        count.subtract(bytes, ordering: .relaxed)
    }
}
