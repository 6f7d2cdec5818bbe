import Federation
import Keyspace
import RESP
import SessionModel
import Testing

let seoul = SiteID(1)
let tokyo = SiteID(2)
let frankfurt = SiteID(3)

@Suite struct FederationCoreTests {
    @Test func writesAtEverySiteConvergeAndOutboxesDrain() {
        var harness = FederationHarness(sites: [1, 2, 3])
        harness.connectAll()
        harness.settle()
        harness.run(seoul, "HSET", "session:1", "user", "ann", "cart", "1")
        harness.run(tokyo, "HSET", "session:1", "cart", "2")
        harness.run(frankfurt, "HSET", "session:1", "theme", "dark")
        harness.run(tokyo, "SET", "session:2", "x")
        harness.run(frankfurt, "SADD", "index:ann", "session:1")
        harness.settle()
        expectConverged(&harness)
        #expect(harness.value(frankfurt, "HGET", "session:1", "user") == harness.value(seoul, "HGET", "session:1", "user"))
        for site in harness.sites {
            for link in harness.nodes[site]!.core.settings.linkedSites {
                let status = harness.status(site, link: link)
                #expect(status.lagDeltas == 0)
                #expect(status.statistics.duplicateBatches == 0)
            }
        }
        // The concurrent writes to `cart` were counted as a conflict at least at one site.
        let conflicts = harness.sites.flatMap { site in harness.nodes[site]!.core.status(now: harness.now).map { $0.statistics.conflicts["lww", default: 0] } }
        #expect(conflicts.reduce(0, +) > 0)
    }

    /// Regression: an outbox that drained to empty restarted its sequence numbers at 1, so the
    /// receiver took later batches for repeats and dropped them.
    @Test func sequenceNumbersContinueAfterAnOutboxDrains() {
        var harness = FederationHarness(sites: [1, 2])
        harness.connectAll()
        for round in 0..<5 {
            harness.run(seoul, "SET", "k\(round)", "v")
            harness.settle(milliseconds: 20)
        }
        #expect(harness.value(tokyo, "DBSIZE") == "integer(5)")
        #expect(harness.status(tokyo, link: seoul).statistics.duplicateBatches == 0)
        expectConverged(&harness)
    }

    @Test func deleteConcurrentWithWritesWinsEverywhere() {
        var harness = FederationHarness(sites: [1, 2, 3])
        harness.connectAll()
        harness.run(seoul, "HSET", "session:9", "user", "ann")
        harness.settle()
        harness.run(frankfurt, "DEL", "session:9")
        harness.run(tokyo, "HSET", "session:9", "lastAccessedTime", "1")
        harness.run(seoul, "PEXPIRE", "session:9", "1800000")
        harness.settle()
        expectConverged(&harness)
        for site in harness.sites { #expect(harness.value(site, "EXISTS", "session:9") == "integer(0)") }
        // A duplicate of the losing write arriving later changes nothing.
        harness.settle()
        for site in harness.sites { #expect(harness.value(site, "EXISTS", "session:9") == "integer(0)") }
    }

    @Test func touchesAndFieldRewritesAreCoalescedInABatch() {
        var harness = FederationHarness(sites: [1, 2]) { $0.batchIntervalMilliseconds = 5 }
        harness.connectAll()
        harness.settle()
        harness.run(seoul, "HSET", "spring:session:sessions:1", "creationTime", "1", "maxInactiveInterval", "1800")
        for request in 0..<10 {
            harness.run(seoul, "HSET", "spring:session:sessions:1", "lastAccessedTime", "\(request)")
            harness.run(seoul, "PEXPIREAT", "spring:session:sessions:1", "\(harness.now + 1_800_000 + UInt64(request))")
        }
        harness.settle()
        let status = harness.status(seoul, link: tokyo)
        #expect(status.statistics.deltasCoalesced == 18)
        #expect(status.statistics.deltasSent == 3)
        expectConverged(&harness)
        #expect(harness.value(tokyo, "HGET", "spring:session:sessions:1", "lastAccessedTime") == harness.value(seoul, "HGET", "spring:session:sessions:1", "lastAccessedTime"))
    }

    /// HSET of another field is not folded; a field written then removed travels as the
    /// removal alone (its context names the write).
    @Test func writesToDifferentFieldsAreNotFolded() {
        var harness = FederationHarness(sites: [1, 2])
        harness.connectAll()
        harness.run(seoul, "HSET", "h", "a", "1")
        harness.run(seoul, "HSET", "h", "b", "2")
        harness.run(seoul, "HDEL", "h", "a")
        harness.settle()
        #expect(harness.status(seoul, link: tokyo).statistics.deltasCoalesced == 1)
        #expect(harness.status(seoul, link: tokyo).statistics.deltasSent == 2)
        expectConverged(&harness)
        #expect(harness.value(tokyo, "HGETALL", "h") == harness.value(seoul, "HGETALL", "h"))
    }

    @Test func unacknowledgedDeltasAreResentAfterAReconnect() {
        var harness = FederationHarness(sites: [1, 2])
        harness.connectAll()
        harness.settle()
        harness.run(seoul, "SET", "a", "1")
        // The batch is cut and sent, then the connection drops before it arrives.
        harness.now += 10
        harness.perform(harness.nodes[seoul]!.core.tick(now: harness.now), at: seoul)
        harness.cutLink(seoul, tokyo)
        #expect(harness.status(seoul, link: tokyo).lagDeltas == 1)
        harness.restoreLink(seoul, tokyo)
        harness.settle()
        #expect(harness.value(tokyo, "GET", "a") == harness.value(seoul, "GET", "a"))
        #expect(harness.status(seoul, link: tokyo).lagDeltas == 0)
        #expect(harness.status(seoul, link: tokyo).statistics.deltasResent == 1)
    }

    /// `mergesAtPrimaries`: the sites stand for sites of several nodes, whose repairs are
    /// merged, answered and sent by their partitions' primaries.
    @Test(arguments: [false, true]) func overflowingOutboxIsDroppedAndRepairedByAntiEntropy(mergesAtPrimaries: Bool) {
        var harness = FederationHarness(sites: [1, 2, 3], mergesAtPrimaries: mergesAtPrimaries) { $0.outboxLimitBytes = 2_048 }
        harness.connectAll()
        harness.settle()
        harness.cutLink(seoul, tokyo)
        for index in 0..<200 { harness.run(seoul, "HSET", "session:\(index)", "user", "u\(index)") }
        harness.run(tokyo, "SET", "only-at-tokyo", "1")
        harness.settle()
        let cutStatus = harness.status(seoul, link: tokyo)
        #expect(cutStatus.needsResync)
        #expect(cutStatus.statistics.outboxOverflows >= 1)
        #expect(cutStatus.statistics.deltasDropped > 0)
        #expect(harness.logs.contains { $0.level == .error && $0.message.contains("outbox over its limit") })
        harness.restoreLink(seoul, tokyo)
        harness.settle(milliseconds: 100)
        let healed = harness.status(seoul, link: tokyo)
        #expect(!healed.needsResync)
        #expect(healed.statistics.resyncRuns >= 1)
        #expect(harness.status(tokyo, link: seoul).statistics.keysRepaired > 0)
        // Seoul's states left for tokyo only once its writes were committed in its site.
        #expect((harness.committedSends > 0) == mergesAtPrimaries)
        expectConverged(&harness)
        #expect(harness.value(tokyo, "DBSIZE") == "integer(201)")
    }

    @Test func aSiteRestartedEmptyRecoversEverythingByAntiEntropy() {
        var harness = FederationHarness(sites: [1, 2, 3])
        harness.connectAll()
        for index in 0..<100 { harness.run(SiteID(UInt32(index % 3 + 1)), "SET", "key:\(index)", "\(index)") }
        harness.settle()
        harness.run(seoul, "DEL", "key:4")
        harness.settle()
        harness.cutLink(frankfurt, seoul)
        harness.cutLink(frankfurt, tokyo)
        harness.start(frankfurt)
        #expect(harness.value(frankfurt, "DBSIZE") == "integer(0)")
        harness.cut = []
        harness.connectAll()
        harness.settle(milliseconds: 100)
        #expect(harness.nodes[frankfurt]!.core.isSynchronized(with: seoul))
        #expect(harness.nodes[frankfurt]!.core.isSynchronized(with: tokyo))
        #expect(harness.value(frankfurt, "DBSIZE") == "integer(99)")
        expectConverged(&harness)
        // New writes at the restarted site follow the recovered dots: no reuse, no loss.
        harness.run(frankfurt, "SET", "key:7", "new")
        harness.settle()
        expectConverged(&harness)
        #expect(harness.value(seoul, "GET", "key:7") == harness.value(frankfurt, "GET", "key:7"))
        #expect(harness.value(seoul, "GET", "key:7") == "\(RESPValue.bulk("new"))")
    }

    @Test func aHubForwardsDeltasBetweenSpokesKeepingTheirDots() {
        let links: [SiteID: Set<SiteID>] = [seoul: [tokyo, frankfurt], tokyo: [seoul], frankfurt: [seoul]]
        var harness = FederationHarness(sites: [1, 2, 3], links: links)
        harness.connectAll()
        harness.run(tokyo, "HSET", "session:1", "user", "ann")
        harness.run(frankfurt, "HSET", "session:1", "cart", "3")
        harness.settle()
        expectConverged(&harness)
        #expect(harness.value(frankfurt, "HGET", "session:1", "user") == harness.value(tokyo, "HGET", "session:1", "user"))
        // The forwarded delta kept tokyo's dot: frankfurt's context names site 2.
        let state = harness.nodes[frankfurt]!.keyspace.state(of: Array("session:1".utf8))!
        #expect(state.context.maxCounter(of: tokyo) >= 1)
        #expect(harness.status(seoul, link: frankfurt).statistics.deltasSent >= 1)
    }

    @Test func handshakeRefusalsNameTheReason() {
        let harness = FederationHarness(sites: [1, 2])
        let core = harness.nodes[seoul]!.core
        let good = harness.nodes[tokyo]!.core.hello(to: seoul)
        #expect(core.refusal(of: good, certificateNames: nil) == nil)
        #expect(core.refusal(of: good, certificateNames: ["site2-1"]) == nil)

        var other = good
        other.federation = "someone-else"
        #expect(core.refusal(of: other, certificateNames: nil)?.contains("federation 'someone-else'") == true)
        other = good
        other.site = SiteID(9)
        #expect(core.refusal(of: other, certificateNames: nil)?.contains("not in this topology") == true)
        other = good
        other.nodeName = "intruder"
        #expect(core.refusal(of: other, certificateNames: nil)?.contains("not a node of site") == true)
        #expect(core.refusal(of: good, certificateNames: ["site1-1"])?.contains("certificate names") == true)
        // A topology rolling out: the next version (and the one before) meet; further apart, not.
        other = good
        other.topologyVersion = good.topologyVersion + 1
        #expect(core.refusal(of: other, certificateNames: nil) == nil)
        other.topologyVersion = good.topologyVersion + 2
        #expect(core.refusal(of: other, certificateNames: nil)?.contains("topology version \(good.topologyVersion + 2)") == true)
        other = good
        other.protocolVersion = 99
        #expect(core.refusal(of: other, certificateNames: nil)?.contains("protocol 99") == true)
        other = good
        other.targetSite = SiteID(3)
        #expect(core.refusal(of: other, certificateNames: nil)?.contains("meant to reach") == true)
    }

    @Test func unexpectedFramesCloseTheConnectionNotTheNode() {
        var harness = FederationHarness(sites: [1, 2])
        harness.connectAll()
        var node = harness.nodes[seoul]!
        let batch = DeltaBatch(originSite: tokyo, senderSite: tokyo, partition: 0, firstSequence: 1, deltas: [])
        // A delta batch must arrive on an inbound connection, never on the one this node dialed.
        let actions = node.core.receive(.deltaBatch(batch), on: .outbound(tokyo), store: &node.keyspace, now: harness.now)
        #expect(actions.contains { if case .close(.outbound(tokyo), _) = $0 { return true } else { return false } })
        // A batch from a site pretending to be another origin is refused too.
        let forged = DeltaBatch(originSite: seoul, senderSite: tokyo, partition: 0, firstSequence: 1, deltas: [])
        let refused = node.core.receive(.deltaBatch(forged), on: .inbound(tokyo, node: "site2-1"), store: &node.keyspace, now: harness.now)
        #expect(refused.contains { if case .close = $0 { return true } else { return false } })
        let beyond = DeltaBatch(originSite: tokyo, senderSite: tokyo, partition: 99, firstSequence: 1, deltas: [])
        #expect(node.core.receive(.deltaBatch(beyond), on: .inbound(tokyo, node: "site2-1"), store: &node.keyspace, now: harness.now).contains {
            if case .close = $0 { return true } else { return false }
        })
    }

    /// An outbox that overflows while the link is up (a slow link) is repaired without waiting
    /// for a reconnect, even with periodic anti-entropy switched off.
    @Test func overflowOnAConnectedLinkResyncsWithoutPeriodicRounds() {
        var harness = FederationHarness(sites: [1, 2]) {
            $0.outboxLimitBytes = 1_024
            $0.antiEntropyIntervalMilliseconds = 0
        }
        harness.connectAll()
        harness.settle()
        for index in 0..<100 { harness.run(seoul, "SET", "key:\(index)", String(repeating: "v", count: 40)) }
        #expect(harness.status(seoul, link: tokyo).needsResync)
        harness.settle(milliseconds: 100)
        #expect(!harness.status(seoul, link: tokyo).needsResync)
        #expect(harness.value(tokyo, "DBSIZE") == "integer(100)")
    }
}
