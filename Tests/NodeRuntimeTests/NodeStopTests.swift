import Logging
import NIOConcurrencyHelpers
import ServiceLifecycle
import Testing
@testable import NodeRuntime

/// What a stopped node answers to the admin endpoint's questions.
@Suite struct NodeStopTests {
    /// The admin endpoint outlives the client listener during shutdown (services stop in
    /// reverse order), so a /status poll can arrive after the node's loop is gone. It must get
    /// an error: a task handed to a shut-down loop is dropped, and waiting for it never ends,
    /// which keeps the process from exiting.
    @Test func askingAStoppedNodeForItsState_failsInsteadOfWaitingForever() async throws {
        let configuration = try NodeConfiguration(topology: NodeLimitsTests.topology(), nodeName: "local-1")
        let server = NodeServer(configuration: configuration, logger: Logger(label: "test"))
        let group = ServiceGroup(services: [server], logger: Logger(label: "test"))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            _ = try await server.boundPort()
            #expect(try await server.withState { $0.loading } == false)
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
        // Asked from a task of its own: in the defect, its wait never ends and cannot be cancelled.
        let answer = NIOLockedValueBox<String?>(nil)
        Task {
            do {
                _ = try await server.withState { $0.loading }
                answer.withLockedValue { $0 = "answered" }
            } catch {
                answer.withLockedValue { $0 = "failed: \(error)" }
            }
        }
        for _ in 0..<500 where answer.withLockedValue({ $0 }) == nil {
            try await Task.sleep(for: .milliseconds(10))
        }
        let outcome = answer.withLockedValue { $0 } ?? "still waiting after 5 s"
        #expect(outcome.hasPrefix("failed"), "\(outcome)")
    }
}
