import ControlPlane
import Logging
import NIOCore
import ServiceLifecycle
import UnixSignals
import Synchronization

/// A node leaving its site on purpose (SIGTERM, SIGINT, `sessionfed drain`): it turns
/// unready at once (`/healthz` 503, for load balancers), reports itself draining to the
/// control plane, whose leader moves every copy it holds to the other nodes — primaries by
/// planned handover, backups re-created elsewhere before they are dropped — and keeps
/// answering and forwarding its clients meanwhile. It stops once the map shows it holding
/// nothing, or at `drainTimeoutMilliseconds` (or a second signal), naming what it still held.
struct DrainState: Sendable {
    let startedAt: UInt64
    let reason: String
    /// Set when the drain ended: nil while it runs.
    var outcome: DrainOutcome?
}

enum DrainOutcome: Sendable, Equatable {
    /// The map shows this node leaving and holding no copy.
    case handedOver
    /// Nothing to hand over to: a site of one node, or every other member down or leaving.
    case nobodyToTakeOver
    /// The bound or a second signal ended it; what was still held.
    case cutShort(String)
}

extension NodeState {
    /// Starts draining; false if a drain already runs.
    @discardableResult
    func beginDrain(reason: String, logger: Logger) -> Bool {
        eventLoop.preconditionInEventLoop()
        guard drain == nil else { return false }
        drain = DrainState(startedAt: WallClock.monotonicMilliseconds(), reason: reason)
        controlPlane?.raft.draining = true
        controlPlane?.scheduleWakeup(now: WallClock.monotonicMilliseconds())
        logger.notice("draining: handing every partition copy to the site's other nodes before stopping", metadata: [
            "reason": "\(reason)", "drain_timeout_ms": "\(configuration.topology.defaults.drainTimeoutMilliseconds)",
        ])
        return true
    }

    /// Whether the drain is over, and how; nil while copies are still moving.
    func drainProgress() -> DrainOutcome? {
        guard let drain else { return nil }
        if let outcome = drain.outcome { return outcome }
        guard let raft = controlPlane?.raft, configuration.site.nodes.count > 1 else { return .nobodyToTakeOver }
        let copies = dataPlane?.copies
        switch raft.drainDecision(holdsCopies: !(copies?.primaries.isEmpty ?? true) || !(copies?.backups.isEmpty ?? true), now: WallClock.monotonicMilliseconds()) {
        case .wait: return nil
        case .handedOver: return .handedOver
        case .nobodyToTakeOver: return .nobodyToTakeOver
        }
    }

    /// What this node still holds, for the log of a drain cut short.
    func drainRemainder() -> String {
        guard let map = controlPlane?.raft.map else { return "no control plane" }
        let name = configuration.node.name
        let primaries = map.partitions.filter { $0.primary == name }.map(\.partition)
        let backups = map.partitions.filter { $0.backups.contains(name) }.map(\.partition)
        var parts: [String] = []
        if map.members[name]?.draining != true { parts.append("the leader never marked this node draining (no leader reachable?)") }
        if !map.leavesAMajorityOfVoters(without: name) { parts.append("stopping would leave fewer than a majority of the site's voters up and staying") }
        if !primaries.isEmpty { parts.append("primary of partitions \(primaries)") }
        if !backups.isEmpty { parts.append("backup of partitions \(backups)") }
        return parts.isEmpty ? "nothing" : parts.joined(separator: "; ")
    }

    /// Client commands still waiting for another node or for backups (closed connections
    /// would leave their outcome unknown).
    var commandsInFlight: Int {
        guard let dataPlane else { return 0 }
        return dataPlane.forwards.count + dataPlane.commits.count + dataPlane.transactions.count
    }
}

extension NodeServer {
    static let drainPollMilliseconds: Int64 = 50
    static let signalReason = "shutdown signal"
    /// After the hand-over, how long the node waits for commands in flight before it closes
    /// its clients.
    static let quietWaitMilliseconds: UInt64 = 2_000
    /// After the hand-over, how long the node goes on answering its peers: a node whose map
    /// still names this one primary forwards commands here, and gets "not primary" (it then
    /// routes them anew) instead of a connection that closes under them.
    static let lingerMilliseconds: UInt64 = 1_000

    /// Drains (unless the site has one node), then closes the client listener. Returns
    /// how the drain ended. A second SIGTERM or SIGINT ends it at once.
    func drainThenStop(listener: Channel, reason: String) async -> DrainOutcome {
        let state = self.state
        let logger = self.logger
        let bound = UInt64(configuration.topology.defaults.drainTimeoutMilliseconds)
        let started = (try? await state.eventLoop.submit { state.beginDrain(reason: reason, logger: logger) }.get()) ?? false
        guard started else { return .nobodyToTakeOver }
        // A drain begun by a signal ends early on the next one; one begun by `sessionfed
        // drain` only on the second (the first is the platform's ordinary stop).
        let interrupted = ManagedFlag()
        let needed = reason == Self.signalReason ? 1 : 2
        let signals = Task {
            var caught = 0
            for await _ in await UnixSignalsSequence(trapping: .sigterm, .sigint) {
                caught += 1
                if caught >= needed {
                    interrupted.set()
                    return
                }
            }
        }
        defer { signals.cancel() }
        let since = WallClock.monotonicMilliseconds()
        var outcome: DrainOutcome
        while true {
            if let done = try? await state.eventLoop.submit({ state.drainProgress() }).get() {
                outcome = done
                break
            }
            let elapsed = WallClock.monotonicMilliseconds() - since
            if interrupted.isSet || elapsed >= bound {
                let remainder = (try? await state.eventLoop.submit { state.drainRemainder() }.get()) ?? "unknown"
                outcome = .cutShort(remainder)
                break
            }
            try? await Task.sleep(for: .milliseconds(Self.drainPollMilliseconds))
        }
        switch outcome {
        case .handedOver:
            logger.notice("drained: every partition copy is held by other nodes", metadata: ["drain_ms": "\(WallClock.monotonicMilliseconds() - since)"])
        case .nobodyToTakeOver:
            logger.warning("stopping without handing partitions over: no other node of the site can take them (the federation's other sites, if any, hold the data)")
        case .cutShort(let remainder):
            logger.error("drain cut short: stopping while this node still holds copies; acknowledged writes are also on the partitions' in-sync backups where they have one, and the partitions below lose this copy", metadata: [
                "still_held": "\(remainder)", "by": "\(interrupted.isSet ? "a second signal" : "drainTimeoutMilliseconds (\(bound) ms)")",
            ])
        }
        // From here client commands not yet run are refused by closing their connection (the
        // client retries them elsewhere), and no new client connects.
        _ = try? await state.eventLoop.submit { state.drain?.outcome = outcome }.get()
        listener.close(promise: nil)
        // Commands already forwarded or waiting for backups get their replies; peers whose
        // map is a step behind get "not primary" answers rather than a closed connection.
        let linger = outcome == .handedOver ? Self.lingerMilliseconds : 0
        let quietSince = WallClock.monotonicMilliseconds()
        while true {
            let elapsed = WallClock.monotonicMilliseconds() - quietSince
            let inFlight = (try? await state.eventLoop.submit { state.commandsInFlight }.get()) ?? 0
            if (elapsed >= linger && inFlight == 0) || elapsed >= linger + Self.quietWaitMilliseconds { break }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return outcome
    }
}

/// A flag set from one task and read from another.
final class ManagedFlag: Sendable {
    private let value = Mutex(false)
    func set() { value.withLock { $0 = true } }
    var isSet: Bool { value.withLock { $0 } }
}
