#if canImport(Glibc)
import Glibc
#endif

/// A blocking loopback socket that sends and reads raw RESP text.
final class RawClient {
    private(set) var fd: Int32

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else {
            Glibc.close(fd)
            fd = -1
            throw RawClientError.connectFailed
        }
    }

    /// Closed once only: a second close could hit another parallel test's new socket.
    deinit { if fd >= 0 { Glibc.close(fd) } }

    func close() { shutdown(fd, Int32(SHUT_RDWR)) }

    func send(_ text: String) {
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    /// Whatever arrives next (one recv).
    func read() throws -> String {
        var chunk = [UInt8](repeating: 0, count: 65_536)
        let count = recv(fd, &chunk, chunk.count, 0)
        guard count > 0 else { throw RawClientError.closed }
        return String(decoding: chunk[0..<count], as: UTF8.self)
    }

    func roundTrip(_ text: String) throws -> String {
        send(text)
        return try read()
    }

    /// Everything until the server closes the connection.
    func readUntilClosed() -> String {
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

enum RawClientError: Error {
    case connectFailed
    case closed
}
