import Testing
@testable import NodeRuntime

/// What a coordinator tells its client once every primary of a multi-node command answered.
@Suite struct CrossNodeOutcomeTests {
    static func transaction(refused: Bool, wroteNothing: Bool) -> CrossNodeTransaction {
        var transaction = CrossNodeTransaction(
            id: 1, owners: ["a": [0], "b": [1]], keys: [Array("k".utf8)], deadline: 0, startedAt: 0,
            body: { _, _ in fatalError("not run") }, done: { _ in }
        )
        transaction.refused = refused
        transaction.wroteNothing = wroteNothing
        return transaction
    }

    @Test func aConfirmedCommand_isAnswered() {
        #expect(Self.transaction(refused: false, wroteNothing: false).outcome == .answer)
        #expect(Self.transaction(refused: false, wroteNothing: true).outcome == .answer)
    }

    /// An MGET whose snapshot a primary change invalidated wrote nothing: running it again is
    /// safe, and "applied in part" would be false and alarming.
    @Test func aRefusedCommandThatWroteNothing_isRetried_notReportedAsAppliedInPart() {
        #expect(Self.transaction(refused: true, wroteNothing: true).outcome == .retry)
    }

    @Test func aRefusedCommandThatWrote_hasAnUnknownOutcome() {
        #expect(Self.transaction(refused: true, wroteNothing: false).outcome == .unknown)
    }
}
