import ArgumentParser
import Foundation

/// `sessionfed bench`: a load generator for this server and redis-server alike, so both are
/// measured by the same client on the same machine (Benchmarks/ compares them).
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Drive a Redis-protocol server (sessionfed or redis-server) with writes or reads; print throughput and latency percentiles."
    )

    @Option(help: "Server host.") var host = "127.0.0.1"
    @Option(name: .customLong("port"), help: "Server port; repeat to spread the clients over several nodes.") var ports: [Int] = [6379]
    @Option(help: "Connections.") var clients = 50
    @Option(help: "Requests in flight per connection.") var pipeline = 1
    @Option(help: "Requests in all.") var requests = 100_000
    @Option(help: "set, hset or get.") var command = "set"
    @Option(help: "Distinct keys (random, as redis-benchmark -r).") var keyspace = 100_000
    @Option(help: "Bytes per value.") var valueBytes = 3
    @Option(help: "Send WAIT <n> 0 after every write (a Redis primary acknowledging only replicated writes).") var waitReplicas: Int?
    @Flag(help: "Route as a cluster-aware client: read the slot map (CLUSTER NODES) from the first --port and send each key to its primary.") var cluster = false
    @Flag(help: "Print one JSON object instead of text.") var json = false

    func run() async throws {
        guard let kind = LoadSettings.Command(rawValue: command.lowercased()) else {
            throw ValidationError("unknown command '\(command)' (\(LoadSettings.Command.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        guard clients >= 1, pipeline >= 1, requests >= 1, keyspace >= 1, valueBytes >= 0, !ports.isEmpty else {
            throw ValidationError("--clients, --pipeline, --requests and --keyspace must be at least 1")
        }
        let settings = LoadSettings(
            host: host, ports: ports, clients: clients, pipeline: pipeline, requests: requests, command: kind,
            keyspace: keyspace, valueBytes: valueBytes, waitReplicas: waitReplicas, cluster: cluster
        )
        let result = try await LoadGenerator(settings: settings).run()
        let percentiles = [50.0, 99.0, 99.9].map { result.latency.valueAtPercentile($0) }
        if json {
            let object: [String: Any] = [
                "command": kind.rawValue, "clients": clients, "pipeline": pipeline, "requests": result.requests, "errors": result.errors,
                "seconds": result.seconds, "requestsPerSecond": result.requestsPerSecond,
                "p50Microseconds": percentiles[0], "p99Microseconds": percentiles[1], "p999Microseconds": percentiles[2],
                "maxMicroseconds": result.latency.max, "waitReplicas": waitReplicas ?? 0, "cluster": cluster,
            ]
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            print(
                "\(kind.rawValue.uppercased())\(waitReplicas.map { " + WAIT \($0) 0" } ?? ""): \(result.requests) requests in \(String(format: "%.2f", result.seconds)) s "
                    + "= \(Int(result.requestsPerSecond)) req/s; latency p50 \(percentiles[0]) µs, p99 \(percentiles[1]) µs, p99.9 \(percentiles[2]) µs, max \(result.latency.max) µs"
                    + (result.errors > 0 ? "; \(result.errors) errors (first: \(result.firstError ?? "?"))" : "")
            )
        }
        if result.errors > 0 { throw ExitCode(2) }
    }
}
