import Federation
import SessionModel
import Testing

/// `sessionfed dr take-offline` / `bring-online` in the federation core.
@Suite struct SiteOfflineTests {
    /// Seoul takes tokyo offline: seoul ships tokyo nothing more (tokyo's own anti-entropy
    /// rounds are still answered), its outboxes for tokyo are released, frankfurt still gets
    /// everything. Back online, seoul's anti-entropy catches tokyo up.
    @Test func offlineSite_getsNothing_outboxReleased_onlineAgain_caughtUp() {
        var harness = FederationHarness(sites: [1, 2, 3])
        harness.connectAll()
        harness.settle()
        harness.cutLink(seoul, tokyo)
        harness.run(seoul, "SET", "queued", "1")
        harness.settle()
        #expect(harness.status(seoul, link: tokyo).lagDeltas == 1, "queued for tokyo while the link is cut")
        harness.perform(harness.nodes[seoul]!.core.setOffline([tokyo]), at: seoul)
        let status = harness.status(seoul, link: tokyo)
        #expect(status.offline && status.lagDeltas == 0 && status.outboxBytes == 0, "the outbox is released")
        harness.restoreLink(seoul, tokyo)
        harness.settle(milliseconds: 200)  // tokyo's own connect round with seoul ends
        let sentBefore = harness.status(seoul, link: tokyo).statistics.deltasSent
        harness.run(seoul, "SET", "while-offline", "2")
        harness.settle(milliseconds: 200)
        #expect(harness.value(frankfurt, "GET", "while-offline") == "bulkString(\(Array("2".utf8)))")
        #expect(harness.status(seoul, link: tokyo).statistics.deltasSent == sentBefore, "nothing is shipped to an offline site")
        #expect(harness.value(tokyo, "GET", "while-offline") == "null")
        #expect(harness.status(seoul, link: tokyo).lagDeltas == 0 && !harness.status(seoul, link: tokyo).resyncInProgress)

        harness.perform(harness.nodes[seoul]!.core.setOffline([]), at: seoul)
        #expect(harness.status(seoul, link: tokyo).needsResync && !harness.status(seoul, link: tokyo).offline)
        harness.settle(milliseconds: 200)
        #expect(harness.value(tokyo, "GET", "while-offline") == "bulkString(\(Array("2".utf8)))", "anti-entropy caught tokyo up")
        #expect(harness.value(tokyo, "GET", "queued") == "bulkString(\(Array("1".utf8)))")
        #expect(!harness.status(seoul, link: tokyo).needsResync)
    }
}
