/// What changes between two versions of a topology, and how each change is applied
/// (`sessionfed topology plan OLD NEW`, terraform-style).
///
/// Nodes read their topology at start, so a change reaches a running federation by a rolling
/// restart: each node in turn drains (its partitions move to the others), restarts with the
/// new file and rejoins; nodes accept peers one topology version apart meanwhile. Changes
/// the running federation cannot take are refused with the reason.
public struct TopologyPlan: Hashable, Sendable {
    public enum Action: String, Hashable, Sendable {
        case add = "+"
        case remove = "-"
        case change = "~"
    }

    public enum Effect: Hashable, Sendable {
        /// Each affected node in turn drains, restarts with the new file and rejoins.
        case rollingRestart(String)
        /// New processes to start once the nodes they talk to run the new version.
        case start(String)
        /// Every voter of a site restarted at once (the voter set cannot change under a
        /// running Raft group).
        case siteRestart(String)
        case refused(String)

        var text: String {
            switch self {
            case .rollingRestart(let scope): return "rolling restart: \(scope)"
            case .start(let what): return "start \(what)"
            case .siteRestart(let site): return "restart every node of \(site) at once"
            case .refused(let reason): return "REFUSED: \(reason)"
            }
        }
    }

    public struct Change: Hashable, Sendable {
        public var action: Action
        public var subject: String
        public var effect: Effect
    }

    public var oldVersion: Int
    public var newVersion: Int
    public var federation: String
    public var changes: [Change] = []

    public var refused: Bool {
        changes.contains { if case .refused = $0.effect { return true } else { return false } }
    }

    /// The changes from `old` to `new`, in a stable order: federation-wide settings, then
    /// sites and their nodes in the new file's order, then removals.
    public static func between(_ old: Topology, _ new: Topology) -> TopologyPlan {
        var plan = TopologyPlan(oldVersion: old.topologyVersion, newVersion: new.topologyVersion, federation: new.federation)
        plan.compareFederation(old, new)
        plan.compareDefaults(old.defaults, new.defaults)
        plan.compareSettings(old, new)
        plan.compareSites(old, new)
        return plan
    }

    mutating func add(_ action: Action, _ subject: String, _ effect: Effect) {
        changes.append(Change(action: action, subject: subject, effect: effect))
    }

    mutating func compareFederation(_ old: Topology, _ new: Topology) {
        if old.federation != new.federation {
            add(.change, "federation: \(old.federation) → \(new.federation)", .refused("a federation's name cannot change: its nodes refuse peers of another federation"))
        }
        if new.topologyVersion <= old.topologyVersion {
            add(.change, "topologyVersion: \(old.topologyVersion) → \(new.topologyVersion)", .refused("the new version must be greater than the running one (\(old.topologyVersion))"))
        } else if new.topologyVersion > old.topologyVersion + 1 {
            add(.change, "topologyVersion: \(old.topologyVersion) → \(new.topologyVersion)", .refused("nodes meet only one version apart while a topology rolls out: apply version \(old.topologyVersion + 1)"))
        } else {
            add(.change, "topologyVersion: \(old.topologyVersion) → \(new.topologyVersion)", .rollingRestart("every node, one at a time (nodes one version apart keep talking meanwhile)"))
        }
    }

    mutating func compareDefaults(_ old: Topology.Defaults, _ new: Topology.Defaults) {
        let everyNode = Effect.rollingRestart("every node")
        let keys: [(String, Int, Int)] = [
            ("backupCount", old.backupCount, new.backupCount), ("minInSync", old.minInSync, new.minInSync),
            ("batchIntervalMilliseconds", old.batchIntervalMilliseconds, new.batchIntervalMilliseconds),
            ("batchBytes", old.batchBytes, new.batchBytes), ("outboxLimitBytes", old.outboxLimitBytes, new.outboxLimitBytes),
            ("expiryGraceMilliseconds", old.expiryGraceMilliseconds, new.expiryGraceMilliseconds), ("maxmemoryBytes", old.maxmemoryBytes, new.maxmemoryBytes),
            ("antiEntropyIntervalMilliseconds", old.antiEntropyIntervalMilliseconds, new.antiEntropyIntervalMilliseconds),
            ("startupSyncTimeoutMilliseconds", old.startupSyncTimeoutMilliseconds, new.startupSyncTimeoutMilliseconds),
            ("drainTimeoutMilliseconds", old.drainTimeoutMilliseconds, new.drainTimeoutMilliseconds),
            ("rebalanceMovesInFlight", old.rebalanceMovesInFlight, new.rebalanceMovesInFlight),
            ("electionTimeoutMilliseconds", old.electionTimeoutMilliseconds, new.electionTimeoutMilliseconds),
            ("failureTimeoutMilliseconds", old.failureTimeoutMilliseconds, new.failureTimeoutMilliseconds),
            ("collectionIntervalMilliseconds", old.collectionIntervalMilliseconds, new.collectionIntervalMilliseconds),
            ("collectionHorizonMilliseconds", old.collectionHorizonMilliseconds, new.collectionHorizonMilliseconds),
            ("threads", old.threads, new.threads),
        ]
        if old.partitions != new.partitions {
            add(.change, "defaults.partitions: \(old.partitions) → \(new.partitions)", .refused("the partition count decides which partition holds each key; changing it would move every key"))
        }
        for (key, before, after) in keys where before != after {
            add(.change, "defaults.\(key): \(before) → \(after)", everyNode)
        }
        if old.conflictPolicy != new.conflictPolicy {
            add(.change, "defaults.conflictPolicy: \(old.conflictPolicy) → \(new.conflictPolicy)", everyNode)
        }
        if old.deletePolicy != new.deletePolicy {
            add(.change, "defaults.deletePolicy: \(old.deletePolicy) → \(new.deletePolicy)", everyNode)
        }
        if old.clusterClients != new.clusterClients {
            add(.change, "defaults.clusterClients: \(old.clusterClients) → \(new.clusterClients)", everyNode)
        }
    }

    mutating func compareSettings(_ old: Topology, _ new: Topology) {
        if old.links != new.links {
            add(.change, "links: \(Self.describe(old.links)) → \(Self.describe(new.links))", .rollingRestart("every node"))
        }
        if old.tls != new.tls {
            add(.change, "tls: \(old.tls.map { "ca \($0.ca), directory \($0.directory)" } ?? "none") → \(new.tls.map { "ca \($0.ca), directory \($0.directory)" } ?? "none")", .rollingRestart("every node"))
        }
        if old.auth != new.auth {
            add(.change, "auth: client passwords and users", .rollingRestart("every node"))
        }
        let oldPolicies = Dictionary(old.policies.map { ($0.pattern, $0) }, uniquingKeysWith: { first, _ in first })
        let newPolicies = Dictionary(new.policies.map { ($0.pattern, $0) }, uniquingKeysWith: { first, _ in first })
        for policy in new.policies {
            if let before = oldPolicies[policy.pattern] {
                if before != policy { add(.change, "policy \(policy.pattern): \(Self.describe(before)) → \(Self.describe(policy))", .rollingRestart("every node")) }
            } else {
                add(.add, "policy \(policy.pattern): \(Self.describe(policy))", .rollingRestart("every node"))
            }
        }
        for policy in old.policies where newPolicies[policy.pattern] == nil {
            add(.remove, "policy \(policy.pattern)", .rollingRestart("every node"))
        }
    }

    mutating func compareSites(_ old: Topology, _ new: Topology) {
        let oldSites = Dictionary(old.sites.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        let newSites = Dictionary(new.sites.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        for site in new.sites {
            guard let before = oldSites[site.name] else {
                let others = old.sites.map(\.name).joined(separator: ", ")
                add(.add, "site \(site.name) (id \(site.id), \(site.role.rawValue), \(site.nodes.count) node\(site.nodes.count == 1 ? "" : "s"))", .start("its nodes once \(others.isEmpty ? "nothing" : others) run version \(new.topologyVersion); anti-entropy fills it"))
                continue
            }
            if before.id != site.id {
                add(.change, "site \(site.name): id \(before.id) → \(site.id)", .refused("a site's id is its slot in every version vector; it cannot change"))
            }
            if before.role != site.role {
                add(.change, "site \(site.name): role \(before.role.rawValue) → \(site.role.rawValue)", .refused("roles move with `sessionfed dr switchover` or `dr failover` (the topology's roles are only the starting assignment)"))
            }
            compareNodes(of: site.name, before.nodes, site.nodes)
        }
        for site in old.sites where newSites[site.name] == nil {
            if site.role == .active {
                add(.remove, "site \(site.name)", .refused("\(site.name) is active: move its writes away first (`sessionfed dr switchover`), then remove it"))
            } else {
                add(.remove, "site \(site.name)", .rollingRestart("every node of the other sites, then stop \(site.name)'s nodes"))
            }
        }
    }

    mutating func compareNodes(of site: String, _ old: [Topology.Node], _ new: [Topology.Node]) {
        let oldNodes = Dictionary(old.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        let newNodes = Dictionary(new.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        for node in new {
            guard let before = oldNodes[node.name] else {
                if node.voter {
                    add(.add, "node \(node.name) (site \(site), voter)", .siteRestart("\(site) (a voter joins only with the site restarted; add it as `voter: false` to join live)"))
                } else {
                    add(.add, "node \(node.name) (site \(site), non-voter)", .start("it once \(site)'s nodes run version \(newVersion); the site rebalances onto it"))
                }
                continue
            }
            if before.voter != node.voter {
                add(.change, "node \(node.name): voter \(before.voter) → \(node.voter)", .siteRestart(site))
            }
            for (what, a, b) in [("client", before.client, node.client), ("peer", before.peer, node.peer), ("federation", before.federation, node.federation), ("admin", before.admin, node.admin)] where a != b {
                add(.change, "node \(node.name): \(what) \(a) → \(b)", .rollingRestart("\(node.name), then the nodes that dial it"))
            }
        }
        for node in old where newNodes[node.name] == nil {
            if node.voter {
                add(.remove, "node \(node.name) (site \(site), voter)", .siteRestart(site))
            } else {
                add(.remove, "node \(node.name) (site \(site), non-voter)", .rollingRestart("`sessionfed drain --node \(node.name)` first, then \(site)'s other nodes"))
            }
        }
    }

    static func describe(_ links: Topology.Links) -> String {
        switch links {
        case .mesh: return "mesh"
        case .hub(let hub): return "hub \(hub)"
        case .pairs(let pairs): return pairs.map { $0.joined(separator: "–") }.joined(separator: ", ")
        }
    }

    static func describe(_ policy: Topology.KeyPolicy) -> String {
        [policy.conflictPolicy.map { "conflictPolicy \($0)" }, policy.deletePolicy.map { "deletePolicy \($0)" }].compactMap { $0 }.joined(separator: ", ")
    }

    /// The plan as `sessionfed topology plan` prints it.
    public func rendered() -> String {
        var lines = ["Plan: federation \(federation), topology version \(oldVersion) → \(newVersion)", ""]
        if changes.isEmpty { lines.append("  no changes") }
        for change in changes {
            lines.append("  \(change.action.rawValue) \(change.subject)")
            lines.append("      \(change.effect.text)")
        }
        let count = { (action: Action) in changes.filter { $0.action == action }.count }
        let refusedCount = changes.filter { if case .refused = $0.effect { return true } else { return false } }.count
        lines.append("")
        lines.append("\(count(.add)) to add, \(count(.change)) to change, \(count(.remove)) to remove; \(refusedCount) refused.")
        lines.append(refused ? "Nothing can be applied until the refused changes are fixed." : "Apply: for each node in turn, `sessionfed drain --node N`, then restart N with the new file; then start the new nodes.")
        return lines.joined(separator: "\n") + "\n"
    }
}
