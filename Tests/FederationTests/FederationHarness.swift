import ControlPlane
import Federation
import Foundation
import Testing
import Keyspace
import RESP
import SessionModel
import Wire

/// Several sites of one node each, wired through in-memory connections that carry real
/// encoded frames. Pure and deterministic: the test moves time and delivers frames.
struct FederationHarness {
    struct Node {
        var keyspace: Keyspace
        var core: FederationCore
    }

    /// Frames in flight, per (sender, receiver's connection).
    struct Route: Hashable {
        var from: SiteID
        var to: SiteID
        var connection: FederationConnection
    }

    var nodes: [SiteID: Node] = [:]
    var inFlight: [Route: [[UInt8]]] = [:]
    var cut: Set<Set<SiteID>> = []
    var now: UInt64 = 1_700_000_000_000
    var logs: [FederationLog] = []
    var closes: [String] = []
    var incarnations: UInt64 = 1
    /// Frames sent through `sendCommitted` (key states leaving a site of several nodes).
    var committedSends = 0
    /// Restarted sites refuse writes until they synchronized with every linked site, as a node
    /// answers -LOADING (writing earlier could reuse a dot the site issued before it crashed).
    var loading: Set<SiteID> = []
    /// Every dot any site issued, per key, with the write it named: a dot issued twice names
    /// two writes, which no merge or repair can tell apart (the sites never converge).
    /// Each site's DR roles as its control plane committed them (a site of one node commits
    /// at once); a restart starts again from the topology's (`FederationSettings.initialRoles`).
    var roles: [SiteID: SiteRoles] = [:]
    var issued: [[UInt8]: [Dot: Delta]] = [:]
    var dotReuses: [String] = []
    let template: (SiteID) -> FederationSettings
    /// Each node stands for the primaries of a site of several nodes: its core hands merges,
    /// answers and repairs out as actions, which the harness runs as the primary would.
    let mergesAtPrimaries: Bool
    /// Every site's merge policies (`policies:` in a topology).
    let policies: KeyPolicies

    init(
        sites: [UInt32], links: [SiteID: Set<SiteID>]? = nil, mergesAtPrimaries: Bool = false, policies: KeyPolicies = KeyPolicies(),
        configure: @escaping (inout FederationSettings) -> Void = { _ in }
    ) {
        self.mergesAtPrimaries = mergesAtPrimaries
        self.policies = policies
        let ids = sites.map(SiteID.init)
        var graph: [SiteID: Set<SiteID>] = [:]
        for id in ids { graph[id] = Set(ids.filter { $0 != id }) }
        let linkGraph = links ?? graph
        let infos = Dictionary(uniqueKeysWithValues: ids.map { ($0, FederationSettings.SiteInfo(name: "site\($0.rawValue)", nodes: ["site\($0.rawValue)-1"])) })
        template = { id in
            var settings = FederationSettings(
                federation: "test", topologyVersion: 1, localSite: id, localNode: "site\(id.rawValue)-1",
                sites: infos, links: linkGraph, partitioning: Partitioning(partitionCount: Self.partitionCount), merkleLeaves: 16, policies: policies
            )
            configure(&settings)
            return settings
        }
        for id in ids { start(id) }
    }

    /// Starts (or restarts, empty) the node of `site`. A restart takes time: at least a
    /// millisecond passes, as dot uniqueness assumes (`Dot.lineageFloor`).
    mutating func start(_ site: SiteID) {
        if nodes[site] != nil {
            loading.insert(site)
            now += 1
            // The old process's connections die with it: the peers notice and dial the new
            // one (a Hello exchange), and what was in flight to or from it is lost.
            for peer in nodes[site]!.core.settings.linkedSites { nodes[peer]?.core.outboundDisconnected(from: site) }
            inFlight = inFlight.filter { $0.key.from != site && $0.key.to != site }
        }
        incarnations += 1
        nodes[site] = Node(
            keyspace: Keyspace(
                configuration: KeyspaceConfiguration(
                    site: site, policy: policies.defaultPolicy, rules: policies.rules, retainTombstones: true,
                    partitioning: Partitioning(partitionCount: Self.partitionCount), merkleLeafCount: 16
                )
            ),
            core: FederationCore(settings: template(site), incarnation: incarnations)
        )
        nodes[site]!.core.mergesAtPrimaries = mergesAtPrimaries
        roles[site] = nodes[site]!.core.roles.map { SiteRoles(site: site, assignment: $0) } ?? SiteRoles(site: site, assignment: RoleAssignment(epoch: 0, issuer: site, active: [site]))
    }

    /// Whether `site` takes client writes: its committed roles say so (else -READONLY) and it
    /// is not recovering after a restart (else -LOADING).
    func accepts(_ site: SiteID) -> Bool { roles[site]!.acceptsWrites && !loading.contains(site) }

    /// `site`'s control plane commits a role change: federation carries the new assignment, and
    /// every linked site hears it at once in a heartbeat (as `announceRoles` does).
    mutating func commitRoles(at site: SiteID, _ change: (inout SiteRoles) -> Void) {
        let before = roles[site]!
        change(&roles[site]!)
        guard roles[site]! != before else { return }
        nodes[site]!.core.adopt(roles[site]!.assignment)
        announceRoles(from: site)
    }

    /// A heartbeat carrying `site`'s assignment on each of its connections, both directions.
    mutating func announceRoles(from site: SiteID) {
        let heartbeat = Frame.heartbeat(sentAtMilliseconds: now, roles: nodes[site]!.core.roles)
        for peer in nodes[site]!.core.settings.linkedSites where !cut.contains([site, peer]) {
            if nodes[site]!.core.isConnected(to: peer) { transmit(heartbeat, on: .outbound(peer), from: site) }
            if nodes[peer]!.core.isConnected(to: site) { transmit(heartbeat, on: .inbound(peer, node: "site\(peer.rawValue)-1"), from: site) }
        }
    }

    /// Puts `frame` in flight from `site` on its `connection`, unless the link is cut.
    mutating func transmit(_ frame: Frame, on connection: FederationConnection, from site: SiteID) {
        let peer = connection.site
        guard !cut.contains([site, peer]) else { return }
        let arriving: FederationConnection
        switch connection {
        case .outbound: arriving = .inbound(site, node: nodes[site]!.core.settings.localNode)
        case .inbound: arriving = .outbound(site)
        }
        inFlight[Route(from: site, to: peer, connection: arriving), default: []].append(FrameCodec.encode(frame))
    }

    var sites: [SiteID] { nodes.keys.sorted() }
    static let partitionCount = 8

    /// `partition` of `site` starts again empty, as when every copy of it was lost in a site
    /// of several nodes and its new primary starts from nothing: anti-entropy refills it.
    mutating func recreate(partition: Int, at site: SiteID) {
        now += 1  // noticing the loss and promoting a new primary takes time
        let all = Set((0..<Self.partitionCount).map(UInt32.init))
        nodes[site]!.core.lead(all.subtracting([UInt32(partition)]))
        nodes[site]!.keyspace.discard(partition: partition)
        nodes[site]!.keyspace.scheduleExpiries(ofPartition: partition)
        nodes[site]!.core.lead(all)
    }

    /// Opens every linked connection that is not cut (both directions dial).
    mutating func connectAll() {
        for a in sites {
            for b in nodes[a]!.core.settings.linkedSites where !cut.contains([a, b]) && !nodes[a]!.core.isConnected(to: b) {
                connect(a, to: b)
            }
        }
    }

    mutating func connect(_ a: SiteID, to b: SiteID) {
        if ProcessInfo.processInfo.environment["SESSIONFED_TRACE"] != nil { print("connect \(a) -> \(b) at \(now)") }
        let hello = nodes[a]!.core.hello(to: b)
        precondition(nodes[b]!.core.refusal(of: hello, certificateNames: nil) == nil)
        perform(nodes[b]!.core.inboundAccepted(hello), at: b)
        // The listener's reply carries its own Hello (its role assignment included).
        perform(nodes[a]!.core.outboundConnected(to: b, roles: nodes[b]!.core.hello(to: a).roles, now: now), at: a)
    }

    /// Cuts the link between `a` and `b`: both connections close, frames in flight are lost.
    mutating func cutLink(_ a: SiteID, _ b: SiteID) {
        cut.insert([a, b])
        nodes[a]!.core.outboundDisconnected(from: b)
        nodes[b]!.core.outboundDisconnected(from: a)
        inFlight = inFlight.filter { Set([$0.key.from, $0.key.to]) != Set([a, b]) }
    }

    mutating func restoreLink(_ a: SiteID, _ b: SiteID) {
        cut.remove([a, b])
        connectAll()
    }

    /// Runs a command at `site` and hands its deltas to federation.
    @discardableResult
    mutating func run(_ site: SiteID, _ words: String...) -> CommandResult? {
        run(site, words)
    }

    @discardableResult
    mutating func run(_ site: SiteID, _ words: [String]) -> CommandResult? {
        guard !loading.contains(site) else { return nil }
        let arguments = words.map { Array($0.utf8) }
        let result = nodes[site]!.keyspace.execute(arguments, now: now)!
        for delta in result.deltas {
            for counter in delta.dot.counter...delta.lastDot.counter {
                let dot = Dot(site: delta.dot.site, counter: counter)
                if let earlier = issued[delta.key]?[dot] {
                    dotReuses.append("\(dot) of \(String(decoding: delta.key, as: UTF8.self)) named \(earlier.operations) and then \(delta.operations)")
                }
                issued[delta.key, default: [:]][dot] = delta
            }
        }
        perform(nodes[site]!.core.enqueue(result.deltas, now: now), at: site)
        return result
    }

    mutating func perform(_ actions: [FederationAction], at site: SiteID) {
        for action in actions {
            switch action {
            case .send(let connection, let message):
                transmit(.federation(message), on: connection, from: site)
            case .close(let connection, let reason):
                closes.append("\(site) \(connection): \(reason)")
            case .notify:
                break
            case .merge(let batch):
                // A one-node site is its partitions' primary: merged at once.
                var node = nodes[site]!
                var more = node.core.mergeRemote(batch.deltas, from: batch.site, store: &node.keyspace, now: now)
                more += node.core.remoteBatchMerged(batch, now: now)
                nodes[site] = node
                perform(more, at: site)
            case .answerAtPrimary(let request):
                var node = nodes[site]!
                let answers = node.core.answer(request.message, store: &node.keyspace)
                let more = node.core.sendAnswers(answers, on: request.connection)
                nodes[site] = node
                perform(more, at: site)
            case .mergeStates(let repair):
                var node = nodes[site]!
                let more = node.core.mergeRepairs(repair.states, from: repair.site, store: &node.keyspace, now: now)
                nodes[site] = node
                perform(more, at: site)
            case .collectAtPrimary(let collection):
                var node = nodes[site]!
                let more = node.core.collectHere(collection.keys, store: &node.keyspace, now: now).actions
                nodes[site] = node
                perform(more, at: site)
            case .learnedRoles(let assignment, _):
                // A one-node site's control plane commits at once.
                commitRoles(at: site) { $0.learn(assignment) }
            case .sendCommitted(let connection, let message, _):
                // A one-node site's writes commit at once.
                committedSends += 1
                perform([.send(connection, message)], at: site)
            case .log(var log):
                log.metadata["at"] = "\(site)"
                logs.append(log)
            }
        }
    }

    /// Advances time by `milliseconds` in steps of 1 ms, ticking every core and delivering every
    /// frame in flight, until nothing is left to do.
    ///
    /// With `delivers`, each millisecond delivers only the routes it lets through then, and only
    /// the frames on them at that moment: a frame held back waits, in order, for a later
    /// millisecond, and an answer leaves a millisecond after its request. Deliveries then
    /// interleave with commands and with each other as they do over real links.
    mutating func settle(milliseconds: UInt64 = 50, delivers: ((Route) -> Bool)? = nil) {
        for _ in 0..<milliseconds {
            now += 1
            for site in sites {
                perform(nodes[site]!.core.tick(now: now), at: site)
                var node = nodes.removeValue(forKey: site)!
                let actions = node.core.continueRounds(store: &node.keyspace, now: now)
                nodes[site] = node
                perform(actions, at: site)
            }
            if let delivers {
                let due = routesInOrder.filter(delivers).map { ($0, inFlight.removeValue(forKey: $0)!) }
                for (route, frames) in due { deliver(frames, on: route) }
            } else {
                deliverAll()
            }
            for site in loading {
                let core = nodes[site]!.core
                if core.settings.linkedSites.allSatisfy({ core.isSynchronized(with: $0) }) { loading.remove(site) }
            }
        }
    }

    /// The routes with frames in flight, in a fixed order (by sender, then receiver).
    var routesInOrder: [Route] {
        inFlight.keys.sorted { ($0.from, $0.to) < ($1.from, $1.to) }
    }

    mutating func deliverAll() {
        while let route = routesInOrder.first {
            deliver(inFlight.removeValue(forKey: route)!, on: route)
        }
    }

    /// Hands `frames` that travelled `route` to its receiving core.
    mutating func deliver(_ frames: [[UInt8]], on route: Route) {
        for bytes in frames {
            var decoder = FrameDecoder()
            decoder.append(bytes)
            let frame = try! decoder.next()!
            var node = nodes.removeValue(forKey: route.to)!
            // As the runtime's federation transport hands frames to the core.
            let actions: [FederationAction]
            switch frame {
            case .federation(let message): actions = node.core.receive(message, on: route.connection, store: &node.keyspace, now: now)
            case .heartbeat(_, let roles): actions = node.core.heard(roles: roles, from: route.connection.site)
            default: actions = [FederationCore.unexpected(frame.kind, on: route.connection)]
            }
            nodes[route.to] = node
            perform(actions, at: route.to)
        }
    }

    /// The digest of every stored key, per site.
    mutating func digests(_ site: SiteID) -> [[UInt8]: StateDigest] {
        var result: [[UInt8]: StateDigest] = [:]
        nodes[site]!.keyspace.forEachDigest { key, digest in result[key] = digest }
        return result
    }

    mutating func root(_ site: SiteID) -> StateDigest {
        MerkleForest(of: &nodes[site]!.keyspace, partitioning: Partitioning(partitionCount: 8), leafCount: 16).combinedRoot
    }

    func status(_ site: SiteID, link: SiteID) -> LinkStatus {
        nodes[site]!.core.status(now: now).first { $0.siteID == link.rawValue }!
    }

    mutating func value(_ site: SiteID, _ words: String...) -> String {
        "\(reply(site, words))"
    }

    mutating func reply(_ site: SiteID, _ words: [String]) -> RESPValue {
        nodes[site]!.keyspace.execute(words.map { Array($0.utf8) }, now: now)!.reply
    }
}

/// Every site holds the same state for every key, and the same Merkle root.
func expectConverged(_ harness: inout FederationHarness, sourceLocation: SourceLocation = #_sourceLocation) {
    let reference = harness.digests(harness.sites[0])
    let root = harness.root(harness.sites[0])
    for site in harness.sites.dropFirst() {
        #expect(harness.digests(site) == reference, "site \(site) differs", sourceLocation: sourceLocation)
        #expect(harness.root(site) == root, "site \(site) Merkle root differs", sourceLocation: sourceLocation)
    }
}
