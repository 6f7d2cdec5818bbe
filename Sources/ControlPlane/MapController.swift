/// The site's failure detector and placement (DESIGN.md §3): from the committed map and what
/// the leader heard of each member, the next batch of map changes to propose. The leader's
/// `RaftNode` proposes them and replicates the log; it decides nothing itself. One batch at
/// a time, in this order, each only when the earlier kinds have nothing to do:
///
/// 1. members that went silent or restarted go down (their copies are gone); members that
///    report again come up; a restarted node's new incarnation is adopted once the map no
///    longer names the old one for any copy (and, for a voter, once it holds the log);
/// 2. handovers whose old primary reported its copy handed off move to their next epoch
///    (`PartitionAssignment.completingHandover`): the partition's commands wait for it;
/// 3. the placement is repaired (`ClusterMap.repairs`);
/// 4. backups whose members report them caught up join the in-sync set;
/// 5. one rebalancing step (`ClusterMap.rebalance`), while fewer than `rebalanceMovesInFlight`
///    moves are under way.
///
/// Pure: the reports and the leader's knowledge of followers' logs come in as values.
struct MapController {
    let failureTimeoutMilliseconds: UInt64
    var rebalanceMovesInFlight = 1

    /// The non-voters a topology lists, and its version.
    struct Listing {
        var version: UInt64
        var nonVoters: Set<String>
    }

    /// What the leader knows when it decides.
    struct Observations {
        /// Per member: the incarnation that last reported and when (the leader's clock).
        var seen: [String: (incarnation: UInt64, at: UInt64)]
        /// Per member: the copies it reported caught up, and the map index it reported on.
        var inSync: [String: (copies: Set<PartitionEpoch>, mapIndex: UInt64)]
        /// Per member: the primaries it sealed for a handover, with every write committed.
        var handedOff: [String: Set<PartitionEpoch>] = [:]
        /// Per member that reported to this leader: whether it said it is leaving. (A member
        /// not heard yet keeps the map's flag: a new leader must not undo a drain.)
        var draining: [String: Bool] = [:]
        /// Per member (the leader included): the topology version it runs.
        var topologyVersions: [String: UInt64] = [:]
        /// The leader's own topology (nil: membership follows no topology, as in tests).
        var listing: Listing?
        /// Whether this incarnation of a voter holds the leader's committed log.
        var holdsLog: (MemberID) -> Bool
        /// Whether this new incarnation of a voter may take the name's vote now.
        var admitsVoter: (MemberID) -> Bool
    }

    func proposals(map: ClusterMap, voters: [String: UInt64], observed: Observations, now: UInt64) -> [ClusterCommand] {
        var commands = memberChanges(map: map, voters: voters, observed: observed, now: now)
        // A sealed primary refuses its partition's commands until the next epoch starts: that
        // comes before placement work, which a drain keeps busy for seconds.
        if commands.isEmpty { commands = completedHandovers(map: map, observed: observed) }
        if commands.isEmpty { commands = map.repairs() }
        if commands.isEmpty { commands = inSyncMarks(map: map, observed: observed) }
        if commands.isEmpty { commands = map.rebalance(movesInFlight: rebalanceMovesInFlight) }
        return commands
    }

    func memberChanges(map: ClusterMap, voters: [String: UInt64], observed: Observations, now: UInt64) -> [ClusterCommand] {
        var commands: [ClusterCommand] = []
        for name in map.members.keys.sorted() {
            let member = map.members[name]!
            let seen = observed.seen[name]
            let alive = seen.map { now - $0.at <= failureTimeoutMilliseconds } ?? false
            if member.voter, alive, let seen, voters[name] != seen.incarnation, observed.admitsVoter(MemberID(name: name, incarnation: seen.incarnation)) {
                // A restarted voter that holds this leader's whole log votes from now on,
                // whatever the map still does with its old incarnation's copies.
                commands.append(.voterIncarnation(name: name, incarnation: seen.incarnation))
            }
            if member.state == .up, alive, seen?.incarnation == member.incarnation, let reported = observed.draining[name], reported != member.draining {
                commands.append(.memberDraining(name: name, draining: reported))
            }
            switch member.state {
            case .up:
                if !alive || seen!.incarnation != member.incarnation { commands.append(.memberState(name: name, state: .down)) }
            case .down:
                guard alive, let seen else { continue }
                if seen.incarnation != member.incarnation {
                    // The old incarnation's copies must be gone from the map first (promoted
                    // away, or orphaned): admitted while the map still names it primary, the
                    // new incarnation — which holds nothing — would inherit the role.
                    if map.partitions.contains(where: { $0.holders.contains(name) }) { continue }
                    if member.voter, !observed.holdsLog(MemberID(name: name, incarnation: seen.incarnation)) { continue }
                    commands.append(.memberIncarnation(name: name, incarnation: seen.incarnation))
                } else {
                    commands.append(.memberState(name: name, state: .up))
                }
            }
        }
        return commands + listedMembers(map: map, observed: observed)
    }

    /// Non-voters join and leave the map as the leader's topology lists them, once every up
    /// member runs that topology: a member still on an older one may not know a new node's
    /// address (it could not forward or copy to it), and one on a newer one makes this
    /// leader's list the stale one. A member leaves only once it is down and holds nothing
    /// (drain it first: `sessionfed drain`). Voters are fixed: every node's handshake
    /// insists on one voter set.
    func listedMembers(map: ClusterMap, observed: Observations) -> [ClusterCommand] {
        guard let listing = observed.listing,
            map.upMembers.allSatisfy({ observed.topologyVersions[$0] == listing.version })
        else { return [] }
        var commands: [ClusterCommand] = []
        for name in listing.nonVoters.sorted() where map.members[name] == nil {
            commands.append(.memberAdded(name: name))
        }
        for name in map.members.keys.sorted() {
            let member = map.members[name]!
            if !member.voter, !listing.nonVoters.contains(name), member.state == .down, !map.holdsCopies(name) {
                commands.append(.memberRemoved(name: name))
            }
        }
        return commands
    }

    func completedHandovers(map: ClusterMap, observed: Observations) -> [ClusterCommand] {
        map.partitions.compactMap { assignment in
            let copy = PartitionEpoch(partition: assignment.partition, epoch: assignment.epoch)
            guard assignment.handoverTo != nil, let primary = assignment.primary, observed.handedOff[primary]?.contains(copy) == true else { return nil }
            // Only copies whose members reported them caught up at this epoch carry on: one
            // carried into this epoch without its member having followed it (a lagging map, a
            // snapshot past it) is not counted on again. (Any report of this epoch will do:
            // the map's in-sync set already excludes a copy dropped and made again within it,
            // and waiting for a report newer than the handover's start would abandon it.)
            let whole = Set(assignment.backups.filter { observed.inSync[$0]?.copies.contains(copy) ?? false })
            return .assign(assignment.completingHandover(wholeCopies: whole, eligible: Set(map.eligibleMembers)))
        }
    }

    func inSyncMarks(map: ClusterMap, observed: Observations) -> [ClusterCommand] {
        var commands: [ClusterCommand] = []
        for assignment in map.partitions {
            for backup in assignment.backups where !assignment.inSync.contains(backup) {
                // A report sent before its member followed this assignment speaks of a copy
                // the assignment may have dropped since (same epoch, copied again).
                guard let report = observed.inSync[backup], report.mapIndex >= assignment.changedAt else { continue }
                if report.copies.contains(PartitionEpoch(partition: assignment.partition, epoch: assignment.epoch)) {
                    commands.append(.markInSync(partition: assignment.partition, epoch: assignment.epoch, member: backup))
                }
            }
        }
        return commands
    }
}
