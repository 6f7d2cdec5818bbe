import Federation
import NIOCore
import Replication
import SessionModel
import Wire

/// Deltas of other sites in a site of several nodes (DESIGN.md §1: "remote site: route by
/// key → its own partition primary → merge → replicate synchronously in that site → ack"):
/// the node a link reached hands each batch to the primary of its partition, which merges it
/// and replicates it to its backups like a write; only then is the batch acknowledged to the
/// sending site. Merged on whichever node received it, a remote write would be invisible to
/// the site's readers and lost with that node.
extension DataPlane {
    /// A batch the federation core handed out (`FederationAction.merge`): merged here when
    /// this node is the partition's primary, else at that primary; routed again on a newer
    /// map for at most `routeDeadlineMilliseconds`.
    func mergeRemote(_ batch: RemoteBatch, deadline: UInt64? = nil) {
        let now = WallClock.monotonicMilliseconds()
        let deadline = deadline ?? now + Self.routeDeadlineMilliseconds
        let partition = Int(batch.stream.partition)
        func finished(_ failure: String?) {
            guard let transport = state.transport, state.federation != nil else { return }
            if let failure {
                transport.perform(state.federation!.remoteBatchFailed(batch, reason: failure))
            } else {
                transport.perform(state.federation!.remoteBatchMerged(batch, now: WallClock.nowMilliseconds()))
            }
        }
        if actsAsPrimary(of: [partition], now: now) && !isLocked([partition]) {
            mergeAsPrimary(batch.deltas, partition: partition, from: batch.site) { merged in
                merged ? finished(nil) : self.mergeRemote(batch, deadline: deadline)
            }
            return
        }
        let retry = {
            guard WallClock.monotonicMilliseconds() < deadline else {
                finished("partition \(partition) had no primary that could merge them for \(Self.routeDeadlineMilliseconds) ms")
                return
            }
            self.eventLoop.scheduleTask(in: .milliseconds(Self.routeRetryMilliseconds)) { self.mergeRemote(batch, deadline: deadline) }
        }
        guard let owner = state.controlPlane?.raft.map.partitions[partition].primary, owner != nodeName else { return retry() }
        let request = nextRequest
        nextRequest += 1
        let frame = Frame.remoteDeltas(RemoteDeltas(request: request, partition: UInt32(partition), fromSite: batch.site, deltas: batch.deltas))
        guard let transport, transport.sendData(frame, to: owner) else { return retry() }
        forwards[request] = Forward(target: owner, sentAt: now, retry: retry) { reply in
            if case .value(let error) = reply { finished("\(error)") } else { finished(nil) }
        }
    }

    /// Merges another site's deltas into this node's primary copy of `partition` and
    /// replicates them to its backups; `done(true)` once every in-sync backup holds them,
    /// `done(false)` when this node's primary role ended first (merge them elsewhere).
    func mergeAsPrimary(_ deltas: [Delta], partition: Int, from site: SiteID, done: @escaping (Bool) -> Void) {
        guard state.federation != nil else { return done(false) }
        let actions = state.federation!.mergeRemote(deltas, from: site, store: &state.keyspace, now: WallClock.nowMilliseconds())
        // The backups merge the same deltas (a join): they end with the primary's state.
        let waits = submit([partition: ReplicatedWrite(deltas: deltas)])
        whenCommitted(waits, then: {
            // Keyspace events and conflict logs once the merge holds in the site.
            self.state.transport?.perform(actions)
            done(true)
        }, otherwise: { _ in done(false) })
    }

    /// Another node of this site forwarded a remote batch for a partition this node leads.
    func receivedRemoteDeltas(_ batch: RemoteDeltas, from peer: String, on channel: Channel) {
        let partition = Int(batch.partition)
        func reply(notPrimary: Bool) {
            transport?.sendReply(.remoteDeltasApplied(RemoteDeltasApplied(request: batch.request, notPrimary: notPrimary)), on: channel)
        }
        guard partition < partitioning.partitionCount, actsAsPrimary(of: [partition], now: WallClock.monotonicMilliseconds()), !isLocked([partition]) else {
            return reply(notPrimary: true)
        }
        mergeAsPrimary(batch.deltas, partition: partition, from: batch.fromSite) { merged in reply(notPrimary: !merged) }
    }
}
