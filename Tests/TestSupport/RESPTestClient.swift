import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A reply as the test reads it.
public indirect enum Reply: Equatable {
    case simple(String)
    case error(String)
    case integer(Int64)
    case bulk([UInt8]?)
    case array([Reply]?)
    case other(String)

    public static func text(_ text: String) -> Reply { .bulk(Array(text.utf8)) }
}

/// A blocking RESP2 client over a plain socket: sends exact bytes, reads exact replies.
public final class RESPTestClient {
    /// -1 once closed: a descriptor number is closed once only (tests run in parallel in
    /// one process, and a second close could hit another test's new socket).
    public private(set) var fd: Int32
    public var buffer: [UInt8] = []

    public init(port: Int, timeoutSeconds: Int = 5) throws {
        guard let fd = connectLoopback(port: port, timeoutSeconds: timeoutSeconds) else { throw ClientError.connectFailed }
        self.fd = fd
    }

    public func close() {
        guard fd >= 0 else { return }
        Glibc.close(fd)
        fd = -1
    }

    deinit {
        close()
    }

    public func send(raw bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if written <= 0 { return }
            offset += written
        }
    }

    public func send(_ words: [String]) {
        var bytes = Array("*\(words.count)\r\n".utf8)
        for word in words { bytes += Array("$\(word.utf8.count)\r\n\(word)\r\n".utf8) }
        send(raw: bytes)
    }

    public func command(_ words: String...) throws -> Reply {
        send(words)
        return try read()
    }

    /// True once the server closed the connection (reads return 0).
    public func isClosedByServer() -> Bool {
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = recv(fd, &chunk, chunk.count, 0)
            if count == 0 { return true }
            if count < 0 { return false }
            buffer += chunk[0..<count]
        }
    }

    public func read() throws -> Reply {
        while true {
            if let (reply, used) = parse(buffer[...]) {
                buffer.removeFirst(used)
                return reply
            }
            var chunk = [UInt8](repeating: 0, count: 65_536)
            let count = recv(fd, &chunk, chunk.count, 0)
            guard count > 0 else { throw count == 0 ? ClientError.closed : ClientError.timeout }
            buffer += chunk[0..<count]
        }
    }

    private func parse(_ bytes: ArraySlice<UInt8>) -> (Reply, Int)? {
        guard let lineEnd = firstCRLF(bytes) else { return nil }
        let start = bytes.startIndex
        let line = String(decoding: bytes[(start + 1)..<lineEnd], as: UTF8.self)
        let after = lineEnd + 2 - start
        switch bytes[start] {
        case UInt8(ascii: "+"): return (.simple(line), after)
        case UInt8(ascii: "-"): return (.error(line), after)
        case UInt8(ascii: ":"): return (.integer(Int64(line) ?? 0), after)
        case UInt8(ascii: "$"):
            let length = Int(line) ?? -1
            if length < 0 { return (.bulk(nil), after) }
            guard bytes.count >= after + length + 2 else { return nil }
            return (.bulk(Array(bytes[(start + after)..<(start + after + length)])), after + length + 2)
        case UInt8(ascii: "*"):
            let count = Int(line) ?? -1
            if count < 0 { return (.array(nil), after) }
            var items: [Reply] = []
            var used = after
            for _ in 0..<count {
                guard let (item, size) = parse(bytes[(start + used)...]) else { return nil }
                items.append(item)
                used += size
            }
            return (.array(items), used)
        default:
            return (.other(line), after)
        }
    }

    private func firstCRLF(_ bytes: ArraySlice<UInt8>) -> Int? {
        var index = bytes.startIndex
        while index + 1 < bytes.endIndex {
            if bytes[index] == 13 && bytes[index + 1] == 10 { return index }
            index += 1
        }
        return nil
    }
}

public enum ClientError: Error {
    case connectFailed
    case closed
    case timeout
}
