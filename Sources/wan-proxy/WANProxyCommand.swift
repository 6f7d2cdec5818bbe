import ArgumentParser
import Logging
import Topology

/// `wan-proxy`: a test tool, not part of the product. Tests and rehearsals put it between the
/// sites of a federation to give their links a wide-area delay, and to cut, blackhole and
/// restore them.
@main
struct WANProxyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wan-proxy",
        abstract: "A TCP proxy emulating a wide-area link between sites, for tests and rehearsals.",
        discussion: """
            Every chunk is delayed by --delay-ms in each direction. Send lines to the control port \
            (e.g. with `nc`): `delay MS`, `cut` (close connections, refuse new ones), `blackhole` \
            (drop bytes silently), `restore`, `status`.
            """
    )

    @Option(help: "Address to listen on (host:port).") var listen: String
    @Option(help: "Address to forward to (host:port).") var target: String
    @Option(help: "Control address (host:port).") var control: String
    @Option(help: "One-way delay in milliseconds.") var delayMs: Int64 = 0

    func run() async throws {
        guard let listen = Topology.Address(listen), let target = Topology.Address(target), let control = Topology.Address(control) else {
            throw ValidationError("addresses are host:port")
        }
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .notice
            return handler
        }
        try await WANProxy(listen: listen, target: target, control: control, delayMilliseconds: delayMs, logger: Logger(label: "wan-proxy")).run()
    }
}
