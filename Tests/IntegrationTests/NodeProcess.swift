import Foundation
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// A real `sessionfed node` process on fresh loopback ports, stopped (and checked) by the test.
final class NodeProcess {
    let process = Process()
    let clientPort: Int
    let adminPort: Int
    let directory: URL
    let output = Pipe()

    /// SESSIONFED_BIN, or the `sessionfed` built beside this test bundle.
    static func findBinary() -> URL {
        if let path = ProcessInfo.processInfo.environment["SESSIONFED_BIN"] { return URL(fileURLWithPath: path) }
        var directory = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        for _ in 0..<6 {
            directory = directory.deletingLastPathComponent()
            let candidate = directory.appendingPathComponent("sessionfed")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        }
        return URL(fileURLWithPath: ".build/debug/sessionfed")
    }

    /// `threads`: the topology's `defaults.threads` (client sockets on loops of their own
    /// above 1).
    init(extraTopology: String = "", threads: Int = 1) throws {
        let ports = try freePorts(4)
        clientPort = ports[0]
        adminPort = ports[3]
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("sessionfed-it-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let topology = """
            federation: integration
            topologyVersion: 1
            defaults:
              backupCount: 0
              threads: \(threads)
            \(extraTopology)
            sites:
              - name: local
                id: 1
                nodes:
                  - name: local-1
                    client: 127.0.0.1:\(ports[0])
                    peer: 127.0.0.1:\(ports[1])
                    federation: 127.0.0.1:\(ports[2])
                    admin: 127.0.0.1:\(ports[3])
            """
        let file = directory.appendingPathComponent("topology.yaml")
        try topology.write(to: file, atomically: true, encoding: .utf8)
        process.executableURL = Self.findBinary()
        process.arguments = ["node", "--topology", file.path, "--node", "local-1", "--log-level", "warning"]
        process.standardOutput = output
        process.standardError = output
        try process.run()
        try waitUntilListening()
    }

    /// Until both the client and the admin listener accept (they open independently).
    func waitUntilListening() throws {
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            if let client = try? RESPTestClient(port: clientPort), let admin = try? RESPTestClient(port: adminPort) {
                client.close()
                admin.close()
                return
            }
            guard process.isRunning else { throw NodeProcessError.exited(log) }
            usleep(20_000)
        }
        throw NodeProcessError.notListening(log)
    }

    var log: String {
        String(decoding: output.fileHandleForReading.availableData, as: UTF8.self)
    }

    /// SIGTERM, then the exit status (nil when it had to be killed after `seconds`).
    func terminate(within seconds: Double = 10) -> Int32? {
        defer { try? FileManager.default.removeItem(at: directory) }
        guard process.isRunning else { return process.terminationStatus }
        kill(process.processIdentifier, SIGTERM)
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            return nil
        }
        return process.terminationStatus
    }

    deinit {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }
}

enum NodeProcessError: Error {
    case exited(String)
    case notListening(String)
}
