import ArgumentParser
import Foundation
import NodeRuntime
import Topology

/// `sessionfed drain`: asks a running node to drain — hand every partition copy to the other
/// nodes of its site, then exit — and waits until it has exited, printing its progress.
struct Drain: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Drain a node: move its partitions to the site's other nodes, then stop it; wait until it has stopped.",
        discussion: "The node drains as on SIGTERM: /healthz answers 503 at once, it keeps serving its clients, and it exits once the other nodes hold its partitions (or at drainTimeoutMilliseconds, exit 1, naming what it still held)."
    )

    @Option(help: "The topology file.") var topology: String
    @Option(help: "The node to drain.") var node: String
    @Option(help: "Seconds to wait for the node to stop (default: its drainTimeoutMilliseconds plus 10 s).") var timeout: Int?

    func run() async throws {
        let topology = try loadTopology(self.topology)
        guard let target = topology.sites.flatMap(\.nodes).first(where: { $0.name == node }) else {
            throw ValidationError("no node \"\(node)\" in \(self.topology) (nodes: \(topology.sites.flatMap(\.nodes).map(\.name).joined(separator: ", ")))")
        }
        let answer = try await AdminClient.post(target.admin, path: "/drain")
        let text = String(decoding: answer.body, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard answer.status == 202 else { throw ValidationError("\(node): \(text) (HTTP \(answer.status))") }
        print("\(node): \(text)")
        let bound = timeout.map { Double($0) } ?? Double(topology.defaults.drainTimeoutMilliseconds) / 1000 + 10
        let started = Date()
        var last = ""
        var unanswered = 0
        while Date().timeIntervalSince(started) < bound {
            guard let response = try? await AdminClient.get(target.admin, path: "/status", timeout: .seconds(2)), response.status == 200,
                let status = try? JSONDecoder().decode(NodeSnapshot.self, from: Data(response.body))
            else {
                // Three misses in a row: gone (one may be a busy loop).
                unanswered += 1
                if unanswered >= 3 {
                    print("\(node): stopped after \(String(format: "%.1f", Date().timeIntervalSince(started))) s (its admin endpoint no longer answers)")
                    return
                }
                try await Task.sleep(for: .milliseconds(100))
                continue
            }
            unanswered = 0
            let held = status.controlPlane.map { control in
                control.partitionTable.filter { $0.primary == node || $0.backups.contains(node) }.count
            } ?? 0
            let line = "\(node): draining · copies still held: \(held)"
            if line != last {
                print(line)
                last = line
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        throw ValidationError("\(node) has not stopped within \(Int(bound)) s; see its log and `sessionfed status`")
    }
}
