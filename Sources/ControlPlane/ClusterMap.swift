import SessionModel

/// A node process as the control plane knows it: its name in the topology and the
/// incarnation it drew at start. A process that restarts (and so lost its memory) comes back
/// as a new incarnation of the same name; the old one is known dead.
public struct MemberID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var name: String
    public var incarnation: UInt64

    public init(name: String, incarnation: UInt64) {
        self.name = name
        self.incarnation = incarnation
    }

    public static func < (lhs: MemberID, rhs: MemberID) -> Bool {
        (lhs.name, lhs.incarnation) < (rhs.name, rhs.incarnation)
    }

    public var description: String { "\(name)#\(incarnation % 100_000)" }
}

/// One partition's placement (DESIGN.md §3): the primary orders writes; backups copy them;
/// the in-sync set holds the backups that have every acknowledged write. `epoch` fences: it
/// changes whenever the primary changes, and a copy refuses anything from an older epoch.
/// A new epoch starts with an empty in-sync set: surviving backups may hold different
/// suffixes of the old primary's unacknowledged writes, so each copies the partition from
/// the new primary again before it counts.
public struct PartitionAssignment: Hashable, Sendable {
    public var partition: Int
    public var epoch: UInt64
    public var primary: String?
    public var backups: [String]
    public var inSync: Set<String>
    /// Set when the primary went down with no in-sync backup to promote: the partition has no
    /// primary (writes refused) until this member comes back with the same incarnation (its
    /// copy is then whole) and is reinstated.
    public var orphanedFrom: MemberID?
    /// With `orphanedFrom`: the in-sync backups that went down with it. Their copies are
    /// complete too; whichever of them (or the old primary) returns with the same incarnation
    /// becomes primary. Only when every one of them came back restarted is the partition
    /// re-created empty.
    public var orphanedCopies: [MemberID] = []
    /// How often the partition was re-created empty because every copy was lost (its orphaned
    /// primary came back restarted). The keys come back from the other sites by anti-entropy.
    public var recreatedEmpty: UInt64 = 0
    /// The log index of the command that last changed this assignment. A member's report
    /// that a copy is caught up counts only if the member sent it following this map or a
    /// later one: a backup removed and added again within one epoch must not be marked in
    /// sync on a report about the copy it had before.
    public var changedAt: UInt64 = 0
    /// A planned handover in progress (same epoch): the primary stops accepting commands,
    /// finishes the writes in flight and reports its copy handed off; then the leader starts
    /// the next epoch with this member as primary (`continuing`). Until that report no other
    /// node may act as primary, and after it the old primary accepts nothing at this epoch:
    /// two primaries never accept writes for the partition at overlapping times.
    public var handoverTo: String?
    /// This epoch began with a planned handover from epoch `epoch - 1`: the copies in
    /// `inSync` held every write of that epoch when it ended (its primary had sealed and
    /// committed everything), so they carry on without copying the partition again.
    public var continuing = false

    public init(
        partition: Int, epoch: UInt64 = 0, primary: String? = nil, backups: [String] = [], inSync: Set<String> = [],
        orphanedFrom: MemberID? = nil, orphanedCopies: [MemberID] = []
    ) {
        self.partition = partition
        self.epoch = epoch
        self.primary = primary
        self.backups = backups
        self.inSync = inSync
        self.orphanedFrom = orphanedFrom
        self.orphanedCopies = orphanedCopies
    }

    /// Every node holding a copy.
    public var holders: [String] { (primary.map { [$0] } ?? []) + backups }

    /// The next epoch of a handover whose old primary reported its copy handed off. The
    /// target becomes primary if it may (`eligible`: up, not leaving) and holds the whole copy;
    /// else the old primary carries on (the handover is abandoned, nothing moved). The
    /// in-sync copies that continue are those in `wholeCopies` — members whose own report
    /// says they followed this epoch to the end; the old primary's hand-off report says so for
    /// it — so a target that dies at once leaves a complete copy to promote. A member the map
    /// counts in sync but that has not reported this epoch (its map lagged, or jumped past it
    /// with a snapshot) copies the partition again rather than be counted on.
    public func completingHandover(wholeCopies: Set<String>, eligible: Set<String>) -> PartitionAssignment {
        guard let old = primary else { return self }
        var next = self
        let carried = inSync.intersection(wholeCopies)
        let target = handoverTo.flatMap { carried.contains($0) && eligible.contains($0) ? $0 : nil } ?? old
        next.primary = target
        next.backups = backups.map { $0 == target ? old : $0 }
        next.inSync = carried.subtracting([target])
        if target != old { next.inSync.insert(old) }
        next.epoch += 1
        next.handoverTo = nil
        next.continuing = true
        return next
    }
}

public enum MemberState: String, Hashable, Sendable, Codable {
    case up, down
}

/// A change to the cluster map. Only the Raft leader proposes them; every node applies the
/// committed ones in log order.
public enum ClusterCommand: Hashable, Sendable {
    /// The first entry a new leader appends (commits entries of earlier terms).
    case noop
    /// `name` now runs as `incarnation` (it restarted and caught up): it replaces the old
    /// incarnation in the voter configuration and in the member table.
    case memberIncarnation(name: String, incarnation: UInt64)
    /// `name`'s new `incarnation` caught up with the leader's log and takes the name's vote
    /// (its old incarnation is dead: one process per name), before the member table adopts
    /// it. Voting does not wait for the map to move the old incarnation's copies away, so a
    /// leader that dies meanwhile leaves a majority that can elect another.
    case voterIncarnation(name: String, incarnation: UInt64)
    case memberState(name: String, state: MemberState)
    /// `name` is leaving (or no longer): placement moves its copies elsewhere first.
    case memberDraining(name: String, draining: Bool)
    /// The partition's new placement (a promotion bumps the epoch).
    case assign(PartitionAssignment)
    /// A backup has caught up with the primary of `epoch`.
    case markInSync(partition: Int, epoch: UInt64, member: String)
    /// A role assignment learned or issued (a failover, a switchover's handover); adopted
    /// only when it supersedes the map's (`SiteRoles.learn`).
    case roles(RoleAssignment)
    /// Switchover, first step: the active site turns read-only while its writes drain to
    /// `target`. Ignored unless `epoch` is the epoch in force and the site is active.
    case fence(target: SiteID, epoch: UInt64)
    /// Switchover rollback: the fence set at `epoch` is lifted.
    case unfence(epoch: UInt64)
    /// This site stops (or resumes) shipping to `site` (`sessionfed dr take-offline` /
    /// `bring-online`).
    case siteOffline(SiteID, offline: Bool)
    /// A non-voter the leader's topology lists joins the member table (down until it reports).
    case memberAdded(name: String)
    /// A non-voter the topology no longer lists, down and holding nothing, leaves it.
    case memberRemoved(name: String)
}

/// The replicated state of a site's control plane (DESIGN.md §3).
public struct ClusterMap: Hashable, Sendable {
    public struct Member: Hashable, Sendable {
        public var name: String
        public var incarnation: UInt64
        public var voter: Bool
        public var state: MemberState
        /// The incarnation whose vote counts for the name: ahead of `incarnation` from the
        /// time a restarted voter caught up until the map adopts it (0: `incarnation`).
        public var voterIncarnation: UInt64 = 0
        /// Leaving: its copies move to other members and it is given none. A new
        /// incarnation starts not draining.
        public var draining = false

        public var votingIncarnation: UInt64 { voterIncarnation != 0 ? voterIncarnation : incarnation }
    }

    public var members: [String: Member] = [:]
    public var partitions: [PartitionAssignment]
    public var backupCount: Int
    /// The site's DR role and the federation's role assignment (DESIGN.md §5).
    public var roles: SiteRoles
    /// Linked sites this site ships nothing to (taken offline).
    public var offlineSites: Set<SiteID> = []
    /// The log index of the last command applied.
    public var appliedIndex: UInt64 = 0

    public init(voters: [String], nonVoters: [String] = [], partitionCount: Int, backupCount: Int, roles: SiteRoles = .standalone) {
        for name in voters { members[name] = Member(name: name, incarnation: 0, voter: true, state: .down) }
        for name in nonVoters { members[name] = Member(name: name, incarnation: 0, voter: false, state: .down) }
        partitions = (0..<partitionCount).map { PartitionAssignment(partition: $0) }
        self.backupCount = backupCount
        self.roles = roles
    }

    /// The voters' current identities (incarnation 0: not yet known).
    public var voters: [MemberID] {
        members.values.filter(\.voter).map { MemberID(name: $0.name, incarnation: $0.incarnation) }.sorted()
    }

    public var upMembers: [String] {
        members.values.filter { $0.state == .up }.map(\.name).sorted()
    }

    /// Up members that may be given copies: not leaving.
    public var eligibleMembers: [String] {
        members.values.filter { $0.state == .up && !$0.draining }.map(\.name).sorted()
    }

    /// Up members that are leaving.
    public var drainingMembers: Set<String> {
        Set(members.values.filter { $0.state == .up && $0.draining }.map(\.name))
    }

    /// Whether `member` holds (or is waited for with) a copy of any partition: a leaving
    /// member may stop only once this is false.
    public func holdsCopies(_ member: String) -> Bool {
        partitions.contains { $0.holders.contains(member) || $0.orphanedFrom?.name == member || $0.orphanedCopies.contains { $0.name == member } }
    }

    public mutating func apply(_ command: ClusterCommand, index: UInt64) {
        appliedIndex = index
        switch command {
        case .noop:
            break
        case .memberIncarnation(let name, let incarnation):
            members[name]?.incarnation = incarnation
            members[name]?.voterIncarnation = incarnation
            members[name]?.draining = false
        case .voterIncarnation(let name, let incarnation):
            members[name]?.voterIncarnation = incarnation
        case .memberState(let name, let state):
            members[name]?.state = state
        case .memberDraining(let name, let draining):
            members[name]?.draining = draining
        case .assign(let assignment):
            guard assignment.partition >= 0, assignment.partition < partitions.count else { return }
            partitions[assignment.partition] = assignment
            partitions[assignment.partition].changedAt = index
        case .markInSync(let partition, let epoch, let member):
            guard partition >= 0, partition < partitions.count, partitions[partition].epoch == epoch,
                partitions[partition].backups.contains(member)
            else { return }
            partitions[partition].inSync.insert(member)
        case .roles(let assignment):
            roles.learn(assignment)
        case .fence(let target, let epoch):
            // `fence` itself refuses a site that is not active or is fenced already.
            if roles.assignment.epoch == epoch { _ = try? roles.fence(handingOverTo: target) }
        case .unfence(let epoch):
            if roles.assignment.epoch == epoch { try? roles.unfence() }
        case .siteOffline(let site, let offline):
            if offline { offlineSites.insert(site) } else { offlineSites.remove(site) }
        case .memberAdded(let name):
            if members[name] == nil { members[name] = Member(name: name, incarnation: 0, voter: false, state: .down) }
        case .memberRemoved(let name):
            if let member = members[name], !member.voter, !holdsCopies(name) { members[name] = nil }
        }
    }

    /// Per up member: how many primaries and how many copies (primary or backup) it holds.
    struct Load {
        var primaries: [String: Int]
        var copies: [String: Int]

        /// The member to take a new primary: fewest primaries, then fewest copies, then name.
        func primaryCandidate(excluding: Set<String>) -> String? {
            copies.keys.filter { !excluding.contains($0) }.min { (primaries[$0]!, copies[$0]!, $0) < (primaries[$1]!, copies[$1]!, $1) }
        }

        /// The member to take a new backup: fewest copies, then fewest primaries, then name.
        func backupCandidate(excluding: Set<String>) -> String? {
            copies.keys.filter { !excluding.contains($0) }.min { (copies[$0]!, primaries[$0]!, $0) < (copies[$1]!, primaries[$1]!, $1) }
        }

        mutating func add(_ member: String, primary: Bool) {
            guard copies[member] != nil else { return }
            copies[member]! += 1
            if primary { primaries[member]! += 1 }
        }

        mutating func remove(_ member: String, primary: Bool) {
            guard copies[member] != nil else { return }
            copies[member]! -= 1
            if primary { primaries[member]! -= 1 }
        }
    }

    /// The load of the members that may take copies (leaving members are not counted).
    func load() -> Load {
        let eligible = eligibleMembers
        var load = Load(primaries: Dictionary(uniqueKeysWithValues: eligible.map { ($0, 0) }), copies: Dictionary(uniqueKeysWithValues: eligible.map { ($0, 0) }))
        for assignment in partitions {
            if let primary = assignment.primary { load.add(primary, primary: true) }
            for backup in assignment.backups { load.add(backup, primary: false) }
        }
        return load
    }

    /// The changes that repair the placement now: partitions whose primary is down get an
    /// in-sync backup promoted (epoch + 1); copies on down members are removed; missing copies
    /// go to the least-loaded up members that hold none of the partition. Never two copies on
    /// one member. Deterministic: ties are broken by name.
    public func repairs() -> [ClusterCommand] {
        let up = Set(upMembers)
        guard !up.isEmpty else { return [] }
        let leaving = drainingMembers
        var load = load()
        var commands: [ClusterCommand] = []
        for var assignment in partitions {
            let original = assignment
            assignment.backups.removeAll { !up.contains($0) }
            assignment.inSync.formIntersection(assignment.backups)
            if let primary = assignment.primary, !up.contains(primary) {
                // Promote an in-sync backup: it has every acknowledged write.
                if let promoted = assignment.backups.first(where: { assignment.inSync.contains($0) }) {
                    assignment.primary = promoted
                    assignment.backups.removeAll { $0 == promoted }
                    assignment.inSync = []
                    assignment.epoch += 1
                    load.remove(promoted, primary: false)
                    load.add(promoted, primary: true)
                } else {
                    // No up copy has every write: the partition stays without a primary
                    // (writes refused) rather than silently losing acknowledged writes, until
                    // the old primary or an in-sync backup that went down with it returns.
                    assignment.orphanedFrom = MemberID(name: primary, incarnation: members[primary]?.incarnation ?? 0)
                    assignment.orphanedCopies = original.backups.filter { original.inSync.contains($0) && !up.contains($0) }
                        .map { MemberID(name: $0, incarnation: members[$0]?.incarnation ?? 0) }
                    assignment.primary = nil
                }
            }
            if assignment.primary == nil, let orphan = assignment.orphanedFrom {
                let completeCopies = [orphan] + assignment.orphanedCopies
                if let back = completeCopies.first(where: { up.contains($0.name) && members[$0.name]?.incarnation == $0.incarnation }) {
                    // A complete copy is back (it was unreachable, not restarted).
                    assignment.primary = back.name
                    assignment.backups.removeAll { $0 == back.name }
                    assignment.inSync = []
                    assignment.orphanedFrom = nil
                    assignment.orphanedCopies = []
                    assignment.epoch += 1
                    load.add(back.name, primary: true)
                } else if completeCopies.allSatisfy({ copy in members[copy.name].map { $0.incarnation != copy.incarnation } ?? false }),
                    let chosen = load.primaryCandidate(excluding: Set(assignment.holders))
                {
                    // Every complete copy restarted: none exists in this site any more.
                    // Re-create the partition empty so the site serves again; federation
                    // anti-entropy brings the keys back from the other sites.
                    assignment.primary = chosen
                    assignment.orphanedFrom = nil
                    assignment.orphanedCopies = []
                    assignment.inSync = []
                    assignment.epoch += 1
                    assignment.recreatedEmpty += 1
                    load.add(chosen, primary: true)
                }
            }
            if assignment.primary == nil && assignment.epoch == 0 {
                // Never assigned yet (a new site): nothing can be lost; take the least loaded.
                if let chosen = load.primaryCandidate(excluding: Set(assignment.holders)) {
                    assignment.primary = chosen
                    assignment.epoch = 1
                    load.add(chosen, primary: true)
                }
            }
            let wanted = min(backupCount, up.count - (assignment.primary == nil ? 0 : 1))
            while assignment.primary != nil && assignment.backups.count < wanted,
                let chosen = load.backupCandidate(excluding: Set(assignment.holders))
            {
                assignment.backups.append(chosen)
                load.add(chosen, primary: false)
            }
            if !leaving.isEmpty, assignment.primary != nil {
                moveOffLeavingMembers(&assignment, leaving: leaving, staying: load.copies.count, load: &load)
            }
            // A copy on a leaving member goes first; then the most loaded. Not during a
            // handover: its target must stay.
            if assignment.handoverTo == nil, assignment.backups.count > wanted, assignment.inSync.count == assignment.backups.count,
                let surplus = assignment.backups.max(by: { (leaving.contains($0) ? 1 : 0, load.copies[$0] ?? 0, $0) < (leaving.contains($1) ? 1 : 0, load.copies[$1] ?? 0, $1) })
            {
                // A rebalancing move finished: the new copy caught up, drop the old one.
                assignment.backups.removeAll { $0 == surplus }
                assignment.inSync.remove(surplus)
                load.remove(surplus, primary: false)
            }
            if assignment.epoch != original.epoch || assignment.primary != original.primary {
                // A failover ends a handover in progress, and its epoch continues nothing.
                assignment.handoverTo = nil
                assignment.continuing = false
            }
            if assignment != original { commands.append(.assign(assignment)) }
        }
        return commands
    }

    /// Moves a partition's copies off leaving members, copy before removal: a leaving primary
    /// hands over (planned) to an in-sync backup on a staying member — one is added first if
    /// there is none; a leaving backup is dropped once enough staying backups are in sync.
    /// With no staying member at all nothing moves: the copies stay where they are.
    /// `staying`: how many members may take copies (the load counts exactly those).
    func moveOffLeavingMembers(_ assignment: inout PartitionAssignment, leaving: Set<String>, staying: Int, load: inout Load) {
        guard let primary = assignment.primary, assignment.handoverTo == nil, staying > 0 else { return }
        let primaryLeaves = leaving.contains(primary)
        // Backups wanted on staying members: the partition's copies once the leavers are
        // gone, and at least one to take over a leaving primary.
        let wantedStaying = max(primaryLeaves ? 1 : 0, min(backupCount, staying - (primaryLeaves ? 0 : 1)))
        while assignment.backups.filter({ !leaving.contains($0) }).count < wantedStaying,
            let chosen = load.backupCandidate(excluding: Set(assignment.holders))
        {
            assignment.backups.append(chosen)
            load.add(chosen, primary: false)
        }
        if primaryLeaves {
            if let target = assignment.backups.filter({ !leaving.contains($0) && assignment.inSync.contains($0) })
                .min(by: { (load.primaries[$0] ?? 0, $0) < (load.primaries[$1] ?? 0, $1) })
            {
                assignment.handoverTo = target
                // The next partition's target is chosen knowing this one.
                load.remove(target, primary: false)
                load.add(target, primary: true)
            }
            return
        }
        let stayingInSync = assignment.backups.filter { !leaving.contains($0) && assignment.inSync.contains($0) }.count
        if stayingInSync >= wantedStaying {
            assignment.backups.removeAll { leaving.contains($0) }
            assignment.inSync.subtract(leaving)
        }
    }

    /// Moves under way: partitions with a planned handover, or with a copy still catching up
    /// (a copy that replaces another, or one a repair added).
    public var movesInFlight: Int {
        partitions.filter { assignment in assignment.handoverTo != nil || assignment.backups.contains { !assignment.inSync.contains($0) } }.count
    }

    /// Moves still to start before the placement is balanced, estimated for progress reports:
    /// the primaries and the copies above their share on each staying member (a move under way
    /// counted as done), and every copy on a leaving member.
    public var movesLeft: Int {
        let load = projectedLoad()
        let leaving = drainingMembers
        var onLeaving = 0
        for assignment in partitions {
            for holder in assignment.holders where leaving.contains(holder) { onLeaving += 1 }
        }
        guard !load.copies.isEmpty else { return onLeaving }
        func excess(_ counts: [String: Int]) -> Int {
            let share = (counts.values.reduce(0, +) + counts.count - 1) / counts.count
            return counts.values.reduce(0) { $0 + max(0, $1 - share) }
        }
        return excess(load.primaries) + excess(load.copies) + onLeaving
    }

    /// The load once the moves under way completed: handover targets count as primaries, and
    /// a partition with a copy catching up beyond its wanted copies no longer counts the one
    /// that copy replaces (the most loaded in-sync backup, as `repairs` drops it).
    func projectedLoad() -> Load {
        var load = load()
        let wanted = min(backupCount, max(0, load.copies.count - 1))
        for assignment in partitions {
            if let target = assignment.handoverTo, let primary = assignment.primary, load.primaries[primary] != nil, load.primaries[target] != nil {
                load.primaries[primary]! -= 1
                load.primaries[target]! += 1
            }
            if assignment.backups.count > wanted, assignment.backups.contains(where: { !assignment.inSync.contains($0) }),
                let surplus = assignment.backups.filter(assignment.inSync.contains).max(by: { (load.copies[$0] ?? 0, $0) < (load.copies[$1] ?? 0, $1) })
            {
                load.remove(surplus, primary: false)
            }
        }
        return load
    }

    /// One step towards a balanced placement, once everything is placed and in sync and
    /// fewer than `limit` moves are under way: start a planned handover of a primary to an
    /// in-sync backup on a member with fewer primaries (`handoverTo`; `MapController`
    /// completes it), or add a copy on the least-loaded member (the surplus copy on the most
    /// loaded one is dropped once it caught up). Never two copies of a partition on one
    /// member. The bound keeps a joining node from taking the copy traffic of many partitions
    /// at once: each move copies a whole partition.
    public func rebalance(movesInFlight limit: Int = 1) -> [ClusterCommand] {
        // (Leaving members take no copies: with fewer than two staying there is nothing to balance.)
        guard eligibleMembers.count > 1, movesInFlight < limit else { return [] }
        let load = projectedLoad()
        let idlest = load.primaries.values.min()!
        // Every member leading two more than the idlest gives, busiest first: the idle member
        // may back up none of the busiest one's partitions but some of another's.
        let donors = load.primaries.filter { $0.value - idlest >= 2 }.sorted { ($0.value, $1.key) > ($1.value, $0.key) }
        for donor in donors {
            for var assignment in partitions where assignment.primary == donor.key && assignment.handoverTo == nil {
                guard let target = assignment.backups.filter({ assignment.inSync.contains($0) && (load.primaries[$0] ?? Int.max) < donor.value - 1 })
                    .min(by: { (load.primaries[$0]!, $0) < (load.primaries[$1]!, $1) })
                else { continue }
                // Planned: the epoch changes only once the old primary handed off.
                assignment.handoverTo = target
                return [.assign(assignment)]
            }
        }
        let heaviest = load.copies.max { ($0.value, $1.key) < ($1.value, $0.key) }!
        let lightest = load.copies.min { ($0.value, $0.key) < ($1.value, $1.key) }!
        guard heaviest.value - lightest.value >= 2 else { return [] }
        // Not a partition already moving: its surplus copy would be dropped from under it.
        for var assignment in partitions
        where assignment.handoverTo == nil && assignment.inSync.count == assignment.backups.count
            && assignment.backups.contains(heaviest.key) && !assignment.holders.contains(lightest.key)
        {
            assignment.backups.append(lightest.key)
            return [.assign(assignment)]
        }
        return []
    }
}
