#if canImport(Glibc)
import Glibc
#endif

/// A blocking loopback socket that sends and reads raw RESP text.
public final class RawClient {
    public private(set) var fd: Int32

    public init(port: Int) throws {
        guard let fd = connectLoopback(port: port, timeoutSeconds: 5) else { throw RawClientError.connectFailed }
        self.fd = fd
    }

    /// Closed once only: a second close could hit another parallel test's new socket.
    deinit { if fd >= 0 { Glibc.close(fd) } }

    public func close() { shutdown(fd, Int32(SHUT_RDWR)) }

    public func send(_ text: String) {
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    /// Whatever arrives next (one recv).
    public func read() throws -> String {
        var chunk = [UInt8](repeating: 0, count: 65_536)
        let count = recv(fd, &chunk, chunk.count, 0)
        guard count > 0 else { throw RawClientError.closed }
        return String(decoding: chunk[0..<count], as: UTF8.self)
    }

    public func roundTrip(_ text: String) throws -> String {
        send(text)
        return try read()
    }

    /// Everything until the server closes the connection.
    public func readUntilClosed() -> String {
        var all: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4_096)
        while true {
            let count = recv(fd, &chunk, chunk.count, 0)
            if count <= 0 { break }
            all += chunk[0..<count]
        }
        return String(decoding: all, as: UTF8.self)
    }
}

public enum RawClientError: Error {
    case connectFailed
    case closed
}
