import Foundation
import Hummingbird
import Logging
import Prometheus
import SessionModel
import ServiceLifecycle
import Synchronization

/// The node's HTTP endpoint on its `admin` address: `/healthz`, `/status` (JSON) and
/// `/metrics` (Prometheus text exposition, written by swift-prometheus).
enum AdminServer {
    static func text(_ status: Int, _ body: String) -> Response {
        Response(status: HTTPResponse.Status(code: status), headers: [.contentType: "text/plain"], body: ResponseBody(byteBuffer: ByteBuffer(string: body)))
    }

    static func make(node: NodeServer, logger: Logger) -> any Service {
        let exporter = MetricsExporter()
        let router = Router()
        router.get("/healthz") { _, _ -> Response in
            let (loading, draining) = try await node.withState { ($0.loading, $0.drain != nil) }
            let text = draining ? "draining: this node is stopping and handing its partitions to the site's other nodes\n"
                : loading ? "loading: recovering data from the federation's other sites\n" : "ok\n"
            return AdminServer.text(loading || draining ? 503 : 200, text)
        }
        // `sessionfed drain`: the node drains as on SIGTERM and exits once it holds nothing.
        router.post("/drain") { _, _ -> Response in
            let answer = try await node.withState { state -> (HTTPResponse.Status, String) in
                guard state.configuration.site.nodes.count > 1 else { return (.conflict, "refused: a site of one node has no other node to hand its partitions to\n") }
                guard state.drain == nil else { return (.accepted, "draining already\n") }
                guard let request = state.requestDrain else { return (.serviceUnavailable, "refused: the node is still starting\n") }
                request("sessionfed drain")
                return (.accepted, "draining: the node exits once the site's other nodes hold its partitions\n")
            }
            return text(answer.0.code, answer.1)
        }
        // For traffic managers: ready for clients (not loading or draining); with `write=1`,
        // only where this node's site accepts writes, so a global load balancer or a DNS
        // health check follows the active site.
        router.get("/readyz") { request, _ -> Response in
            let forWrites = request.uri.queryParameters.get("write") == "1"
            let (loading, draining, accepts, role, epoch) = try await node.withState {
                ($0.loading, $0.drain != nil, $0.acceptsWrites, $0.roleName, $0.assignmentInForce.epoch)
            }
            let reason: String? =
                draining ? "draining: this node is stopping" : loading ? "loading: recovering data from the federation's other sites"
                : forWrites && !accepts ? "\(role): this site does not accept writes (role epoch \(epoch))" : nil
            return text(reason == nil ? 200 : 503, (reason ?? "ready\(forWrites ? " for writes" : "")") + "\n")
        }
        // `sessionfed dr …`: role changes, committed through the site's control plane.
        router.post("/dr/fence") { request, _ -> Response in
            let target = request.uri.queryParameters.get("to") ?? ""
            let answer = try await node.withState { $0.fenceForSwitchover(to: target) }
            return text(answer.status, answer.text)
        }
        router.post("/dr/unfence") { request, _ -> Response in
            guard let epoch = request.uri.queryParameters.get("epoch").flatMap(UInt64.init) else { return text(400, "refused: give the fence's epoch (?epoch=N)\n") }
            let answer = try await node.withState { $0.liftFence(epoch: epoch) }
            return text(answer.status, answer.text)
        }
        router.post("/dr/adopt") { request, _ -> Response in
            guard let assignment = request.uri.query.flatMap({ RoleAssignment(query: $0) }) else {
                return text(400, "refused: give the assignment (?epoch=N&issuer=ID&active=ID,ID)\n")
            }
            let answer = try await node.withState { $0.adopt(assignment) }
            return text(answer.status, answer.text)
        }
        router.post("/dr/offline") { request, _ -> Response in
            let query = request.uri.queryParameters
            guard let site = query.get("site"), let offline = query.get("offline").map({ $0 == "1" }) else {
                return text(400, "refused: give the site and whether it is offline (?site=NAME&offline=1|0)\n")
            }
            let answer = try await node.withState { $0.setOffline(site, offline: offline) }
            return text(answer.status, answer.text)
        }
        router.post("/dr/takeover") { request, _ -> Response in
            let expected = request.uri.queryParameters.get("expectEpoch").flatMap(UInt64.init)
            let answer = try await node.withState { $0.takeOver(expectedEpoch: expected) }
            return text(answer.status, answer.text)
        }
        router.get("/status") { _, _ -> Response in
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            let body = try encoder.encode(try await node.snapshot(includeMerkleRoot: true))
            return Response(
                status: .ok,
                headers: [.contentType: "application/json"],
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: body))
            )
        }
        router.get("/metrics") { _, _ -> Response in
            let text = exporter.exposition(for: try await node.snapshot())
            return Response(
                status: .ok,
                headers: [.contentType: "text/plain; version=0.0.4"],
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: text))
            )
        }
        let address = node.configuration.node.admin
        return Application(
            router: router,
            configuration: ApplicationConfiguration(address: .hostname(address.host, port: address.port), serverName: "sessionfed"),
            logger: logger
        )
    }
}

/// Turns snapshots into Prometheus metrics. Counters only move forward, so each scrape adds
/// what changed since the previous one.
final class MetricsExporter: Sendable {
    let registry = PrometheusCollectorRegistry()
    private let exported = Mutex<[String: UInt64]>([:])

    func exposition(for snapshot: NodeSnapshot) -> [UInt8] {
        gauge("sessionfed_connected_clients", "Client connections open now.", snapshot.connectedClients)
        gauge("sessionfed_keys", "Visible keys (DBSIZE).", snapshot.keys)
        gauge("sessionfed_keys_with_expiry", "Visible keys with a TTL.", snapshot.keysWithExpiry)
        gauge("sessionfed_stored_keys", "Keys held, including tombstones and expired state within its grace period.", snapshot.storedKeys)
        gauge("sessionfed_merkle_dirty_keys", "Changed keys not yet folded into the Merkle leaves anti-entropy compares.", snapshot.merkleDirtyKeys)
        gauge("sessionfed_memory_used_bytes", "Estimated bytes of data (INFO used_memory; maxmemory compares against it).", snapshot.usedMemoryBytes)
        gauge("sessionfed_memory_resident_bytes", "Resident set size of the process.", snapshot.residentMemoryBytes)
        counter("sessionfed_slow_steps_total", "Event-loop steps that held the loop for 10 ms or more (each logged with what it was).", snapshot.slowSteps)
        gauge("sessionfed_longest_step_milliseconds", "The longest event-loop step since start, rounded up.", Int(snapshot.longestStepMilliseconds.rounded(.up)))
        gauge("sessionfed_memory_allocated_bytes", "Bytes the allocator has handed out and not had back (INFO allocator_allocated).", snapshot.allocatedMemoryBytes)
        gauge("sessionfed_memory_max_bytes", "maxmemory (0: no limit).", snapshot.maximumMemoryBytes)
        gauge("sessionfed_uptime_seconds", "Seconds since the node started.", Int(snapshot.uptimeSeconds))
        counter("sessionfed_commands_total", "Commands processed.", snapshot.commandsProcessed)
        for (name, count) in snapshot.commandsByName.sorted(by: { $0.key < $1.key }) {
            counter("sessionfed_commands_by_name_total", "Commands processed, by command.", count, labels: [("command", name)])
        }
        counter("sessionfed_connections_received_total", "Client connections accepted.", snapshot.connectionsReceived)
        counter("sessionfed_connections_rejected_total", "Client connections refused at maxclients.", snapshot.connectionsRejected)
        counter("sessionfed_protocol_errors_total", "Connections closed for malformed RESP or an oversized query buffer.", snapshot.protocolErrors)
        for (certificate, notAfter) in snapshot.certificateExpiries.sorted(by: { $0.key < $1.key }) {
            gauge("sessionfed_certificate_expiry_timestamp_seconds", "When a certificate in use expires (seconds since 1970): node, ca, client-tls, client-ca.", Int(clamping: notAfter), labels: [("certificate", certificate)])
        }
        counter("sessionfed_certificate_reloads_total", "TLS contexts reloaded on SIGHUP.", snapshot.certificateReloads)
        counter("sessionfed_certificate_reload_failures_total", "SIGHUP reloads that failed (the certificates in force stayed).", snapshot.certificateReloadFailures)
        counter("sessionfed_expired_keys_total", "Keys that expired (each counted once).", snapshot.expiredKeys)
        counter("sessionfed_sessions_created_total", "Keys created by a write to a missing key.", snapshot.keysCreated)
        counter("sessionfed_keys_collected_total", "Tombstones and expired keys dropped by federation-wide collection.", snapshot.keysCollected)
        gauge("sessionfed_collected_keys_remembered", "Collected keys whose tombstone is remembered for the collection horizon.", snapshot.collectedKeysRemembered)
        counter("sessionfed_sessions_destroyed_total", "Keys removed by DEL, RENAME, FLUSH or expiry.", snapshot.keysDestroyed)
        counter("sessionfed_oom_rejections_total", "Writes refused with -OOM because used memory exceeded maxmemory.", snapshot.outOfMemoryRejections)
        counter("sessionfed_deltas_produced_total", "Replication deltas produced by local writes.", snapshot.deltasProduced)
        gauge("sessionfed_loading", "1 while a starting node recovers data from the other sites.", snapshot.loading ? 1 : 0)
        gauge("sessionfed_draining", "1 while this node drains before stopping (its copies move to the site's other nodes).", snapshot.draining ? 1 : 0)
        gauge("sessionfed_site_accepts_writes", "1 while this node's site takes client writes (its DR role is active); 0 passive or fenced.", snapshot.roles.acceptsWrites ? 1 : 0)
        gauge("sessionfed_role_epoch", "The federation-wide role epoch of the role assignment this node obeys.", Int(clamping: snapshot.roles.epoch))
        if let control = snapshot.controlPlane {
            let partitions = control.partitions
            gauge("sessionfed_controlplane_is_leader", "1 on the node that leads the site's control plane.", control.role == "leader" ? 1 : 0)
            gauge("sessionfed_controlplane_has_leader", "1 while this node knows a control-plane leader.", control.leader == nil ? 0 : 1)
            gauge("sessionfed_controlplane_term", "The Raft term this node is in.", Int(control.term))
            gauge("sessionfed_controlplane_lease_valid", "1 while this node's lease lets it act as primary of its partitions.", control.leaseRemainingMilliseconds > 0 ? 1 : 0)
            gauge("sessionfed_controlplane_commit_index", "Index of the last committed cluster-map change this node knows.", Int(control.commitIndex))
            counter("sessionfed_controlplane_leader_changes_total", "Times this node saw the leader change (or go missing).", control.leaderChanges)
            for state in ["up", "down"] {
                gauge("sessionfed_controlplane_members", "Members of the site by committed state.", control.members.filter { $0.state == state }.count, labels: [("state", state)])
            }
            gauge("sessionfed_partitions_without_primary", "Partitions with no primary (writes to them refused).", partitions.withoutPrimary)
            gauge("sessionfed_partitions_orphaned", "Partitions waiting for their lost primary (no in-sync copy left).", partitions.orphaned)
            gauge("sessionfed_partitions_handovers_in_progress", "Planned handovers under way: the old primary sealed, waiting for its hand-off.", partitions.handoversInProgress)
            gauge("sessionfed_partitions_on_leaving_members", "Partitions with a copy on a draining member (the drain's remaining work).", partitions.onLeavingMembers)
            let rebalancing = control.rebalancing
            gauge("sessionfed_rebalance_moves_in_flight", "Placement moves under way in the site: planned handovers and copies catching up.", rebalancing.moving)
            gauge("sessionfed_rebalance_moves_left", "Placement moves still to start before the site is balanced and no copy is on a leaving member (an estimate).", rebalancing.left)
            gauge(
                "sessionfed_rebalance_eta_seconds", "When the site's placement work should be done, at the rate of the last minute (-1: no move finished yet).",
                rebalancing.etaMilliseconds.map { Int(($0 + 999) / 1_000) } ?? -1
            )
            gauge("sessionfed_partitions_degraded", "Partitions with fewer caught-up backups than the site can hold.", partitions.degraded)
            gauge("sessionfed_partitions_refusing_writes", "Partitions with fewer copies in sync than minInSync (writes get -NOREPLICAS).", partitions.refusingWrites)
            gauge("sessionfed_partitions_primary", "Partitions this node is primary for.", partitions.primaries[snapshot.node] ?? 0)
            counter("sessionfed_partitions_recreated_empty_total", "Partitions re-created empty because every copy was lost.", partitions.recreatedEmpty)
            for member in control.members where member.connection != nil {
                let peer = [("peer", member.name)]
                let help = "1 when the connection completed its handshake: outbound carries this node's messages to the peer, inbound the peer's here."
                gauge("sessionfed_peer_link_up", help, member.connection == "connected" ? 1 : 0, labels: peer + [("direction", "outbound")])
                gauge("sessionfed_peer_link_up", help, member.inboundConnected == true ? 1 : 0, labels: peer + [("direction", "inbound")])
                counter("sessionfed_peer_frames_dropped_total", "Control-plane messages dropped because the peer was not connected.", member.framesDropped, labels: peer)
            }
            counter("sessionfed_peer_handshakes_refused_total", "Peer connections refused (wrong federation, site, node, certificate, voter set, or a topology version more than one apart).", control.peerHandshakesRefused)
            counter("sessionfed_peer_malformed_frames_total", "Peer connections closed for a malformed or unexpected frame.", control.peerMalformedFrames)
        }
        if let data = snapshot.dataPlane {
            counter("sessionfed_commands_forwarded_total", "Commands this node sent on to their partition's primary on another node (a client in standalone mode, or a cluster client's map out of date).", data.forwarded)
            counter("sessionfed_forward_retries_total", "Commands routed again because their partition had no reachable primary (a failover under way).", data.forwardRetries)
            counter("sessionfed_tryagain_replies_total", "Commands answered -TRYAGAIN: their partition found no primary within the routing deadline.", data.tryAgainReplies)
            counter("sessionfed_unknown_outcomes_total", "Commands whose primary died or lost its role before answering: the client cannot know whether they were applied.", data.unknownOutcomes)
            counter("sessionfed_writes_replicated_total", "Writes this node ran as a partition's primary and sent to its backups.", data.writesReplicated)
            counter("sessionfed_writes_applied_total", "Writes of other nodes' partitions this node applied as a backup.", data.writesApplied)
            counter("sessionfed_transfer_bytes_sent_total", "Bytes of partition copies this node sent as primary (rebalancing, repairs, drains).", data.transferBytesSent)
            counter("sessionfed_transfer_bytes_received_total", "Bytes of partition copies this node received as a new backup.", data.transferBytesReceived)
        }
        for link in snapshot.federationLinks {
            let site = [("site", link.site)]
            let statistics = link.statistics
            gauge("sessionfed_federation_link_up", "1 when the connection to the site completed its handshake.", link.connected ? 1 : 0, labels: site)
            gauge("sessionfed_federation_link_needs_resync", "1 after an outbox overflow until anti-entropy repaired the link.", link.needsResync ? 1 : 0, labels: site)
            gauge("sessionfed_federation_link_offline", "1 while the site is taken offline (sessionfed dr take-offline): nothing is shipped to it.", link.state == "offline" ? 1 : 0, labels: site)
            gauge("sessionfed_federation_lag_deltas", "Deltas not yet acknowledged by the site.", link.lagDeltas, labels: site)
            gauge("sessionfed_federation_lag_milliseconds", "Age of the oldest unacknowledged delta.", Int(link.lagMilliseconds), labels: site)
            counter("sessionfed_federation_bytes_sent_total", "Bytes sent on federation connections with the site.", link.bytesSent, labels: site)
            counter("sessionfed_federation_bytes_received_total", "Bytes received on federation connections with the site.", link.bytesReceived, labels: site)
            counter("sessionfed_federation_deltas_sent_total", "Deltas shipped to the site.", statistics.deltasSent, labels: site)
            counter("sessionfed_federation_deltas_received_total", "Deltas from the site merged here.", statistics.deltasReceived, labels: site)
            counter("sessionfed_federation_deltas_coalesced_total", "Deltas folded into a later delta of the same key before sending.", statistics.deltasCoalesced, labels: site)
            counter("sessionfed_federation_outbox_overflows_total", "Outboxes dropped over outboxLimitBytes.", statistics.outboxOverflows, labels: site)
            counter("sessionfed_federation_deltas_dropped_total", "Deltas dropped with an overflowing outbox.", statistics.deltasDropped, labels: site)
            for (policy, count) in statistics.conflicts.sorted(by: { $0.key < $1.key }) {
                counter("sessionfed_federation_conflicts_total", "Concurrent writes resolved, by policy.", count, labels: site + [("policy", policy)])
            }
            counter("sessionfed_federation_resync_runs_total", "Anti-entropy rounds finished with the site.", statistics.resyncRuns, labels: site)
            counter("sessionfed_federation_keys_repaired_total", "Keys changed here by anti-entropy with the site.", statistics.keysRepaired, labels: site)
            counter("sessionfed_federation_handshakes_refused_total", "Handshakes refused with the site.", link.handshakesRefused, labels: site)
            counter("sessionfed_federation_malformed_frames_total", "Frames from the site that closed a connection.", link.malformedFrames, labels: site)
        }
        return registry.emitToBuffer()
    }

    private func gauge(_ name: String, _ help: String, _ value: Int, labels: [(String, String)] = []) {
        let gauge = labels.isEmpty ? registry.makeGauge(name: name, help: help) : registry.makeGauge(name: name, labels: labels, help: help)
        gauge.set(Int64(value))
    }

    private func counter(_ name: String, _ help: String, _ value: UInt64, labels: [(String, String)] = []) {
        let key = name + labels.map { "|\($0.0)=\($0.1)" }.joined()
        let previous = exported.withLock { last -> UInt64 in
            let previous = last[key] ?? 0
            last[key] = max(previous, value)
            return previous
        }
        let counter = labels.isEmpty ? registry.makeCounter(name: name, help: help) : registry.makeCounter(name: name, labels: labels, help: help)
        if value > previous { counter.increment(by: Int64(value - previous)) }
    }
}

extension NodeServer {
    /// The admin HTTP service for this node.
    public func adminService() -> any Service {
        AdminServer.make(node: self, logger: logger)
    }
}
