import ControlPlane
import SessionModel

// Control-plane messages <-> wire. Decoding validates what a peer could get wrong and throws
// `WireError`.

extension Sessionfed_V1_MemberId {
    init(_ member: MemberID) {
        self.init()
        name = member.name
        incarnation = member.incarnation
    }

    func model(in message: String) throws(WireError) -> MemberID {
        guard !name.isEmpty else { throw .invalidValue(message: message, field: "name", reason: "must not be empty") }
        return MemberID(name: name, incarnation: incarnation)
    }
}

extension Sessionfed_V1_PartitionAssignment {
    init(_ assignment: PartitionAssignment) {
        self.init()
        partition = UInt32(assignment.partition)
        epoch = assignment.epoch
        primary = assignment.primary ?? ""
        backups = assignment.backups
        inSync = assignment.inSync.sorted()
        if let orphan = assignment.orphanedFrom { orphanedFrom = Sessionfed_V1_MemberId(orphan) }
        orphanedCopies = assignment.orphanedCopies.map(Sessionfed_V1_MemberId.init)
        recreatedEmpty = assignment.recreatedEmpty
        changedAt = assignment.changedAt
        handoverTo = assignment.handoverTo ?? ""
        continuing = assignment.continuing
    }

    var model: PartitionAssignment {
        var assignment = PartitionAssignment(
            partition: Int(partition), epoch: epoch, primary: primary.isEmpty ? nil : primary, backups: backups, inSync: Set(inSync),
            orphanedFrom: hasOrphanedFrom ? MemberID(name: orphanedFrom.name, incarnation: orphanedFrom.incarnation) : nil,
            orphanedCopies: orphanedCopies.map { MemberID(name: $0.name, incarnation: $0.incarnation) }
        )
        assignment.recreatedEmpty = recreatedEmpty
        assignment.changedAt = changedAt
        assignment.handoverTo = handoverTo.isEmpty ? nil : handoverTo
        assignment.continuing = continuing
        return assignment
    }
}

extension Sessionfed_V1_ClusterMap {
    init(_ map: ClusterMap) {
        self.init()
        members = map.members.values.sorted { $0.name < $1.name }.map { member in
            var wire = Sessionfed_V1_ClusterMember()
            wire.name = member.name
            wire.incarnation = member.incarnation
            wire.voter = member.voter
            wire.up = member.state == .up
            wire.voterIncarnation = member.voterIncarnation
            wire.draining = member.draining
            return wire
        }
        partitions = map.partitions.map(Sessionfed_V1_PartitionAssignment.init)
        backupCount = UInt32(map.backupCount)
        appliedIndex = map.appliedIndex
        site = map.roles.site.rawValue
        roles = Sessionfed_V1_RoleAssignment(map.roles.assignment)
        if let handover = map.roles.handover { self.handover = Sessionfed_V1_RoleAssignment(handover) }
        offlineSites = map.offlineSites.map(\.rawValue).sorted()
    }

    func model() throws(WireError) -> ClusterMap {
        for (index, partition) in partitions.enumerated() where Int(partition.partition) != index {
            throw .invalidValue(message: "ClusterMap", field: "partitions", reason: "entry \(index) is partition \(partition.partition)")
        }
        var map = ClusterMap(
            voters: members.filter(\.voter).map(\.name), nonVoters: members.filter { !$0.voter }.map(\.name),
            partitionCount: partitions.count, backupCount: Int(backupCount), roles: try rolesModel()
        )
        for member in members {
            map.members[member.name]?.incarnation = member.incarnation
            map.members[member.name]?.state = member.up ? .up : .down
            map.members[member.name]?.voterIncarnation = member.voterIncarnation
            map.members[member.name]?.draining = member.draining
        }
        map.partitions = partitions.map(\.model)
        map.appliedIndex = appliedIndex
        map.offlineSites = Set(offlineSites.map(SiteID.init))
        return map
    }

    /// The site's roles: the assignment in force and, while fenced, the handover.
    private func rolesModel() throws(WireError) -> SiteRoles {
        guard hasRoles else { throw .missingField(message: "ClusterMap", field: "roles") }
        var roles = SiteRoles(site: SiteID(site), assignment: self.roles.model)
        if hasHandover {
            guard let target = handover.active.first, (try? roles.fence(handingOverTo: SiteID(target))) == handover.model else {
                throw .invalidValue(message: "ClusterMap", field: "handover", reason: "\(handover.model) is not a handover of \(roles.assignment) by site \(site)")
            }
        }
        return roles
    }
}

extension Sessionfed_V1_ClusterCommand {
    init(_ command: ClusterCommand) {
        self.init()
        switch command {
        case .noop: kind = .noop(true)
        case .memberIncarnation(let name, let incarnation): kind = .memberIncarnation(Sessionfed_V1_MemberId(MemberID(name: name, incarnation: incarnation)))
        case .voterIncarnation(let name, let incarnation): kind = .voterIncarnation(Sessionfed_V1_MemberId(MemberID(name: name, incarnation: incarnation)))
        case .memberState(let name, let state):
            var change = Sessionfed_V1_MemberStateChange()
            change.name = name
            change.up = state == .up
            kind = .memberState(change)
        case .memberDraining(let name, let draining):
            var change = Sessionfed_V1_MemberDrainingChange()
            change.name = name
            change.draining = draining
            kind = .memberDraining(change)
        case .assign(let assignment): kind = .assign(Sessionfed_V1_PartitionAssignment(assignment))
        case .markInSync(let partition, let epoch, let member):
            var mark = Sessionfed_V1_MarkInSync()
            mark.partition = UInt32(partition)
            mark.epoch = epoch
            mark.member = member
            kind = .markInSync(mark)
        case .roles(let assignment): kind = .roles(Sessionfed_V1_RoleAssignment(assignment))
        case .fence(let target, let epoch):
            var fence = Sessionfed_V1_SwitchoverFence()
            fence.target = target.rawValue
            fence.epoch = epoch
            kind = .fence(fence)
        case .unfence(let epoch): kind = .unfence(epoch)
        case .siteOffline(let site, let offline):
            var change = Sessionfed_V1_SiteOffline()
            change.site = site.rawValue
            change.offline = offline
            kind = .siteOffline(change)
        case .memberAdded(let name): kind = .memberAdded(name)
        case .memberRemoved(let name): kind = .memberRemoved(name)
        }
    }

    func model() throws(WireError) -> ClusterCommand {
        switch kind {
        case .noop: return .noop
        case .memberIncarnation(let member):
            let id = try member.model(in: "ClusterCommand.member_incarnation")
            return .memberIncarnation(name: id.name, incarnation: id.incarnation)
        case .voterIncarnation(let member):
            let id = try member.model(in: "ClusterCommand.voter_incarnation")
            return .voterIncarnation(name: id.name, incarnation: id.incarnation)
        case .memberState(let change): return .memberState(name: change.name, state: change.up ? .up : .down)
        case .memberDraining(let change): return .memberDraining(name: change.name, draining: change.draining)
        case .assign(let assignment): return .assign(assignment.model)
        case .markInSync(let mark): return .markInSync(partition: Int(mark.partition), epoch: mark.epoch, member: mark.member)
        case .roles(let assignment): return .roles(assignment.model)
        case .fence(let fence): return .fence(target: SiteID(fence.target), epoch: fence.epoch)
        case .unfence(let epoch): return .unfence(epoch: epoch)
        case .siteOffline(let change): return .siteOffline(SiteID(change.site), offline: change.offline)
        case .memberAdded(let name): return .memberAdded(name: name)
        case .memberRemoved(let name): return .memberRemoved(name: name)
        case nil: throw .missingField(message: "ClusterCommand", field: "kind")
        }
    }
}

extension Sessionfed_V1_LogEntry {
    init(_ entry: LogEntry) {
        self.init()
        index = entry.index
        term = entry.term
        command = Sessionfed_V1_ClusterCommand(entry.command)
    }

    func model() throws(WireError) -> LogEntry {
        guard index > 0 else { throw .invalidValue(message: "LogEntry", field: "index", reason: "must be at least 1") }
        return LogEntry(index: index, term: term, command: try command.model())
    }
}

extension RaftEnvelope {
    public var wire: Sessionfed_V1_RaftEnvelope {
        var wire = Sessionfed_V1_RaftEnvelope()
        wire.from = Sessionfed_V1_MemberId(from)
        wire.to = to
        wire.cluster = cluster
        switch message {
        case .voteRequest(let term, let lastLogIndex, let lastLogTerm, let preVote):
            var request = Sessionfed_V1_VoteRequest()
            request.term = term
            request.lastLogIndex = lastLogIndex
            request.lastLogTerm = lastLogTerm
            request.preVote = preVote
            wire.message = .voteRequest(request)
        case .voteReply(let term, let granted, let preVote):
            var reply = Sessionfed_V1_VoteReply()
            reply.term = term
            reply.granted = granted
            reply.preVote = preVote
            wire.message = .voteReply(reply)
        case .appendRequest(let term, let previousIndex, let previousTerm, let entries, let leaderCommit, let sentAt):
            var request = Sessionfed_V1_AppendRequest()
            request.term = term
            request.previousIndex = previousIndex
            request.previousTerm = previousTerm
            request.entries = entries.map(Sessionfed_V1_LogEntry.init)
            request.leaderCommit = leaderCommit
            request.sentAtMs = sentAt
            wire.message = .appendRequest(request)
        case .appendReply(let term, let success, let matchIndex, let echo):
            var reply = Sessionfed_V1_AppendReply()
            reply.term = term
            reply.success = success
            reply.matchIndex = matchIndex
            reply.echoSentAtMs = echo
            wire.message = .appendReply(reply)
        case .snapshot(let term, let lastIndex, let lastTerm, let map):
            var snapshot = Sessionfed_V1_InstallSnapshot()
            snapshot.term = term
            snapshot.lastIndex = lastIndex
            snapshot.lastTerm = lastTerm
            snapshot.map = Sessionfed_V1_ClusterMap(map)
            wire.message = .snapshot(snapshot)
        case .heartbeat(let term, let fresh, let inSync, let handedOff, let draining, let topologyVersion, let sentAt, let mapIndex):
            var heartbeat = Sessionfed_V1_MemberHeartbeat()
            heartbeat.term = term
            heartbeat.sentAtMs = sentAt
            heartbeat.mapIndex = mapIndex
            heartbeat.fresh = fresh
            heartbeat.inSync = inSync.map(Sessionfed_V1_PartitionEpoch.init)
            heartbeat.handedOff = handedOff.map(Sessionfed_V1_PartitionEpoch.init)
            heartbeat.draining = draining
            heartbeat.topologyVersion = topologyVersion
            wire.message = .heartbeat(heartbeat)
        case .heartbeatReply(let term, let established, let fresh, let leader, let leaseUntil, let leaderCommit):
            var reply = Sessionfed_V1_MemberHeartbeatReply()
            reply.term = term
            reply.leaseUntilMs = leaseUntil
            reply.leaderCommit = leaderCommit
            reply.established = established
            reply.fresh = fresh
            if let leader { reply.leader = Sessionfed_V1_MemberId(leader) }
            wire.message = .heartbeatReply(reply)
        }
        return wire
    }

    public init(wire: Sessionfed_V1_RaftEnvelope) throws(WireError) {
        let from = try wire.from.model(in: "RaftEnvelope.from")
        guard !wire.to.isEmpty else { throw .invalidValue(message: "RaftEnvelope", field: "to", reason: "must not be empty") }
        let message: RaftMessage
        switch wire.message {
        case .voteRequest(let request):
            message = .voteRequest(term: request.term, lastLogIndex: request.lastLogIndex, lastLogTerm: request.lastLogTerm, preVote: request.preVote)
        case .voteReply(let reply):
            message = .voteReply(term: reply.term, granted: reply.granted, preVote: reply.preVote)
        case .appendRequest(let request):
            var entries: [LogEntry] = []
            for entry in request.entries { entries.append(try entry.model()) }
            for (offset, entry) in entries.enumerated() where entry.index != request.previousIndex + UInt64(offset) + 1 {
                throw .invalidValue(message: "AppendRequest", field: "entries", reason: "index \(entry.index) out of sequence")
            }
            message = .appendRequest(term: request.term, previousIndex: request.previousIndex, previousTerm: request.previousTerm, entries: entries, leaderCommit: request.leaderCommit, sentAt: request.sentAtMs)
        case .appendReply(let reply):
            message = .appendReply(term: reply.term, success: reply.success, matchIndex: reply.matchIndex, echo: reply.echoSentAtMs)
        case .snapshot(let snapshot):
            message = .snapshot(term: snapshot.term, lastIndex: snapshot.lastIndex, lastTerm: snapshot.lastTerm, map: try snapshot.map.model())
        case .heartbeat(let heartbeat):
            message = .heartbeat(
                term: heartbeat.term, fresh: heartbeat.fresh, inSync: heartbeat.inSync.map(\.model), handedOff: heartbeat.handedOff.map(\.model),
                draining: heartbeat.draining, topologyVersion: heartbeat.topologyVersion, sentAt: heartbeat.sentAtMs, mapIndex: heartbeat.mapIndex
            )
        case .heartbeatReply(let reply):
            message = .heartbeatReply(
                term: reply.term, established: reply.established, fresh: reply.fresh, leader: reply.hasLeader ? try reply.leader.model(in: "MemberHeartbeatReply.leader") : nil,
                leaseUntil: reply.leaseUntilMs, leaderCommit: reply.leaderCommit
            )
        case nil:
            throw .missingField(message: "RaftEnvelope", field: "message")
        }
        self.init(from: from, to: wire.to, message: message, cluster: wire.cluster)
    }
}

extension Sessionfed_V1_PartitionEpoch {
    init(_ copy: PartitionEpoch) {
        self.init()
        partition = UInt32(copy.partition)
        epoch = copy.epoch
    }

    var model: PartitionEpoch { PartitionEpoch(partition: Int(partition), epoch: epoch) }
}
