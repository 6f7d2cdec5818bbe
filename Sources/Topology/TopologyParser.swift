import Yams

/// One problem in a topology file, located for the operator.
public struct TopologyError: Error, Hashable, Sendable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var key: String
    public var message: String

    public var description: String { "\(file):\(line): \(key): \(message)" }
}

/// Every problem of one topology file.
public struct TopologyErrors: Error, Hashable, Sendable, CustomStringConvertible {
    public var errors: [TopologyError]

    public var description: String { errors.map(\.description).joined(separator: "\n") }
}

/// Reads and validates topology files. Every problem found is reported, not just the first,
/// each with file, line and the dotted key it concerns.
public enum TopologyParser {
    public static func parse(_ text: String, file: String) -> Result<Topology, TopologyErrors> {
        var reader = Reader(file: file)
        let root: Node
        do {
            guard let composed = try Yams.compose(yaml: text) else {
                return .failure(TopologyErrors(errors: [TopologyError(file: file, line: 1, key: "(document)", message: "the file is empty")]))
            }
            root = composed
        } catch let error as YamlError {
            return .failure(TopologyErrors(errors: [TopologyError(file: file, line: Reader.line(of: error), key: "(document)", message: "not valid YAML: \(error)")]))
        } catch {
            return .failure(TopologyErrors(errors: [TopologyError(file: file, line: 1, key: "(document)", message: "not valid YAML: \(error)")]))
        }
        let topology = reader.topology(root)
        if reader.errors.isEmpty, let topology {
            reader.validate(topology)
        }
        if let topology, reader.errors.isEmpty { return .success(topology) }
        return .failure(TopologyErrors(errors: reader.errors.sorted { ($0.line, $0.key) < ($1.line, $1.key) }))
    }
}

struct Reader {
    let file: String
    var errors: [TopologyError] = []
    /// Lines of nodes by dotted key, for semantic errors found after parsing.
    var lines: [String: Int] = [:]

    init(file: String) {
        self.file = file
    }

    static func line(of error: YamlError) -> Int {
        switch error {
        case .scanner(_, _, let mark, _), .parser(_, _, let mark, _), .composer(_, _, let mark, _):
            return mark.line
        default:
            return 1
        }
    }

    mutating func fail(_ node: Node?, _ key: String, _ message: String) {
        errors.append(TopologyError(file: file, line: node?.mark?.line ?? lines[key] ?? 1, key: Self.located(key), message: message))
    }

    mutating func fail(_ key: String, _ message: String) {
        errors.append(TopologyError(file: file, line: lines[key] ?? 1, key: Self.located(key), message: message))
    }

    /// The top level's key is empty (its children's paths start without a dot); the operator
    /// reads "(document)" there, as for a file that is not YAML at all.
    static func located(_ key: String) -> String {
        key.isEmpty ? "(document)" : key
    }

    /// The entries of a mapping, checking for unknown keys.
    mutating func mapping(_ node: Node, _ key: String, allowed: Set<String>) -> [String: Node]? {
        guard case .mapping(let mapping) = node else {
            fail(node, key, "must be a mapping")
            return nil
        }
        var result: [String: Node] = [:]
        for (keyNode, value) in mapping {
            guard let name = keyNode.string else {
                fail(keyNode, key, "keys must be strings")
                continue
            }
            let path = key.isEmpty ? name : "\(key).\(name)"
            lines[path] = keyNode.mark?.line
            if !allowed.contains(name) {
                fail(keyNode, path, "unknown key (expected one of: \(allowed.sorted().joined(separator: ", ")))")
                continue
            }
            if result[name] != nil { fail(keyNode, path, "appears twice") }
            result[name] = value
        }
        return result
    }

    mutating func string(_ node: Node?, _ key: String, required: Bool = true) -> String? {
        guard let node else {
            if required { fail(key, "is required") }
            return nil
        }
        guard case .scalar(let scalar) = node, !scalar.string.isEmpty else {
            fail(node, key, "must be a non-empty string")
            return nil
        }
        return scalar.string
    }

    mutating func integer(_ node: Node?, _ key: String, range: ClosedRange<Int>) -> Int? {
        guard let node else { return nil }
        guard let value = node.int else {
            fail(node, key, "must be an integer")
            return nil
        }
        guard range.contains(value) else {
            fail(node, key, "must be between \(range.lowerBound) and \(range.upperBound), got \(value)")
            return nil
        }
        return value
    }

    mutating func boolean(_ node: Node?, _ key: String) -> Bool? {
        guard let node else { return nil }
        guard let value = node.bool else {
            fail(node, key, "must be true or false")
            return nil
        }
        return value
    }

    mutating func choice(_ node: Node?, _ key: String, _ choices: [String]) -> String? {
        guard let value = string(node, key, required: false) else { return nil }
        guard choices.contains(value) else {
            fail(node, key, "must be one of \(choices.joined(separator: ", ")), got '\(value)'")
            return nil
        }
        return value
    }

    mutating func address(_ node: Node?, _ key: String) -> Topology.Address? {
        guard let text = string(node, key) else { return nil }
        guard let address = Topology.Address(text) else {
            fail(node, key, "must be host:port with a port from 1 to 65535, got '\(text)'")
            return nil
        }
        return address
    }

    mutating func topology(_ root: Node) -> Topology? {
        let allowed: Set<String> = ["federation", "topologyVersion", "defaults", "links", "tls", "clientTLS", "auth", "policies", "sites"]
        guard let top = mapping(root, "", allowed: allowed) else { return nil }
        let federation = string(top["federation"], "federation")
        let version = top["topologyVersion"].map { integer($0, "topologyVersion", range: 1...Int(Int32.max)) } ?? 1
        if top["topologyVersion"] == nil { fail("topologyVersion", "is required") }

        var defaults = Topology.Defaults()
        if let node = top["defaults"], let entries = mapping(node, "defaults", allowed: [
            "partitions", "backupCount", "minInSync", "conflictPolicy", "deletePolicy", "batchIntervalMilliseconds",
            "outboxLimitBytes", "expiryGraceMilliseconds", "maxmemoryBytes", "batchBytes",
            "antiEntropyIntervalMilliseconds", "startupSyncTimeoutMilliseconds", "drainTimeoutMilliseconds", "rebalanceMovesInFlight",
            "electionTimeoutMilliseconds", "failureTimeoutMilliseconds", "collectionIntervalMilliseconds", "collectionHorizonMilliseconds",
            "clusterClients", "threads",
        ]) {
            defaults.partitions = integer(entries["partitions"], "defaults.partitions", range: 1...16384) ?? defaults.partitions
            defaults.backupCount = integer(entries["backupCount"], "defaults.backupCount", range: 0...4) ?? defaults.backupCount
            defaults.minInSync = integer(entries["minInSync"], "defaults.minInSync", range: 1...5) ?? defaults.minInSync
            defaults.conflictPolicy = choice(entries["conflictPolicy"], "defaults.conflictPolicy", ["lww", "site-priority"]) ?? defaults.conflictPolicy
            defaults.deletePolicy = choice(entries["deletePolicy"], "defaults.deletePolicy", ["delete-wins", "update-wins"]) ?? defaults.deletePolicy
            defaults.batchIntervalMilliseconds = integer(entries["batchIntervalMilliseconds"], "defaults.batchIntervalMilliseconds", range: 1...60_000) ?? defaults.batchIntervalMilliseconds
            defaults.outboxLimitBytes = integer(entries["outboxLimitBytes"], "defaults.outboxLimitBytes", range: 1_024...Int.max) ?? defaults.outboxLimitBytes
            defaults.expiryGraceMilliseconds = integer(entries["expiryGraceMilliseconds"], "defaults.expiryGraceMilliseconds", range: 0...86_400_000) ?? defaults.expiryGraceMilliseconds
            defaults.maxmemoryBytes = integer(entries["maxmemoryBytes"], "defaults.maxmemoryBytes", range: 0...Int.max) ?? defaults.maxmemoryBytes
            defaults.batchBytes = integer(entries["batchBytes"], "defaults.batchBytes", range: 1_024...(8 << 20)) ?? defaults.batchBytes
            defaults.antiEntropyIntervalMilliseconds = integer(entries["antiEntropyIntervalMilliseconds"], "defaults.antiEntropyIntervalMilliseconds", range: 0...86_400_000) ?? defaults.antiEntropyIntervalMilliseconds
            defaults.drainTimeoutMilliseconds = integer(entries["drainTimeoutMilliseconds"], "defaults.drainTimeoutMilliseconds", range: 0...3_600_000) ?? defaults.drainTimeoutMilliseconds
            defaults.rebalanceMovesInFlight = integer(entries["rebalanceMovesInFlight"], "defaults.rebalanceMovesInFlight", range: 1...64) ?? defaults.rebalanceMovesInFlight
            defaults.startupSyncTimeoutMilliseconds = integer(entries["startupSyncTimeoutMilliseconds"], "defaults.startupSyncTimeoutMilliseconds", range: 0...3_600_000) ?? defaults.startupSyncTimeoutMilliseconds
            defaults.electionTimeoutMilliseconds = integer(entries["electionTimeoutMilliseconds"], "defaults.electionTimeoutMilliseconds", range: 100...60_000) ?? defaults.electionTimeoutMilliseconds
            defaults.failureTimeoutMilliseconds = integer(entries["failureTimeoutMilliseconds"], "defaults.failureTimeoutMilliseconds", range: 100...60_000) ?? defaults.failureTimeoutMilliseconds
            defaults.collectionIntervalMilliseconds = integer(entries["collectionIntervalMilliseconds"], "defaults.collectionIntervalMilliseconds", range: 0...86_400_000) ?? defaults.collectionIntervalMilliseconds
            defaults.collectionHorizonMilliseconds = integer(entries["collectionHorizonMilliseconds"], "defaults.collectionHorizonMilliseconds", range: 1_000...604_800_000) ?? defaults.collectionHorizonMilliseconds
            defaults.clusterClients = boolean(entries["clusterClients"], "defaults.clusterClients") ?? defaults.clusterClients
            defaults.threads = integer(entries["threads"], "defaults.threads", range: 1...256) ?? defaults.threads
        }

        var links = Topology.Links.mesh
        if let node = top["links"] {
            switch node {
            case .scalar(let scalar) where scalar.string == "mesh":
                links = .mesh
            case .mapping:
                if let entries = mapping(node, "links", allowed: ["hub"]), let hub = string(entries["hub"], "links.hub") {
                    links = .hub(hub)
                }
            case .sequence(let pairs):
                var result: [[String]] = []
                for (index, pair) in pairs.enumerated() {
                    guard case .sequence(let names) = pair, names.count == 2, let a = names[0].string, let b = names[1].string else {
                        fail(pair, "links[\(index)]", "must be a pair of site names, like [seoul, tokyo]")
                        continue
                    }
                    result.append([a, b])
                    lines["links[\(index)]"] = pair.mark?.line
                }
                links = .pairs(result)
            default:
                fail(node, "links", "must be mesh, {hub: SITE} or a list of site pairs")
            }
        }

        var tls: Topology.TLSSettings?
        if let node = top["tls"], let entries = mapping(node, "tls", allowed: ["ca", "directory"]) {
            if let ca = string(entries["ca"], "tls.ca"), let directory = string(entries["directory"], "tls.directory") {
                tls = Topology.TLSSettings(ca: ca, directory: directory)
            }
        }

        var clientTLS: Topology.ClientTLSSettings?
        if let node = top["clientTLS"], let entries = mapping(node, "clientTLS", allowed: ["directory", "ca"]) {
            if let directory = string(entries["directory"], "clientTLS.directory") {
                clientTLS = Topology.ClientTLSSettings(directory: directory, ca: entries["ca"].flatMap { string($0, "clientTLS.ca") })
            }
        }

        var auth: Topology.AuthSettings?
        if let node = top["auth"], let entries = mapping(node, "auth", allowed: ["password", "users"]) {
            var users: [String: String] = [:]
            if let usersNode = entries["users"], let userEntries = mapping(usersNode, "auth.users", allowed: Set(usersNode.mapping?.keys.compactMap(\.string) ?? [])) {
                for (name, value) in userEntries {
                    if let password = string(value, "auth.users.\(name)") { users[name] = password }
                }
            }
            auth = Topology.AuthSettings(password: string(entries["password"], "auth.password", required: false), users: users)
        }

        var policies: [Topology.KeyPolicy] = []
        if let node = top["policies"] {
            if case .sequence(let items) = node {
                for (index, item) in items.enumerated() {
                    let key = "policies[\(index)]"
                    guard let entries = mapping(item, key, allowed: ["pattern", "deletePolicy", "conflictPolicy"]) else { continue }
                    if let pattern = string(entries["pattern"], "\(key).pattern") {
                        policies.append(Topology.KeyPolicy(
                            pattern: pattern,
                            deletePolicy: choice(entries["deletePolicy"], "\(key).deletePolicy", ["delete-wins", "update-wins"]),
                            conflictPolicy: choice(entries["conflictPolicy"], "\(key).conflictPolicy", ["lww", "site-priority"])
                        ))
                    }
                }
            } else {
                fail(node, "policies", "must be a list of {pattern, deletePolicy, conflictPolicy}")
            }
        }

        var sites: [Topology.Site] = []
        if let node = top["sites"] {
            if case .sequence(let items) = node, !items.isEmpty {
                for (index, item) in items.enumerated() {
                    if let site = site(item, "sites[\(index)]") { sites.append(site) }
                }
            } else {
                fail(node, "sites", "must be a non-empty list of sites")
            }
        } else {
            fail("sites", "is required")
        }
        guard let federation, let version else { return nil }
        return Topology(
            federation: federation, topologyVersion: version, defaults: defaults, links: links, tls: tls, auth: auth,
            policies: policies, sites: sites, clientTLS: clientTLS
        )
    }

    mutating func site(_ node: Node, _ key: String) -> Topology.Site? {
        guard let entries = mapping(node, key, allowed: ["name", "id", "role", "nodes"]) else { return nil }
        let name = string(entries["name"], "\(key).name")
        let id = integer(entries["id"], "\(key).id", range: 1...65535)
        if entries["id"] == nil { fail(node, "\(key).id", "is required") }
        let role = choice(entries["role"], "\(key).role", ["active", "passive"]).flatMap(Topology.Role.init) ?? .active
        var nodes: [Topology.Node] = []
        if case .sequence(let items)? = entries["nodes"], !items.isEmpty {
            for (index, item) in items.enumerated() {
                if let parsed = self.node(item, "\(key).nodes[\(index)]") { nodes.append(parsed) }
            }
        } else {
            fail(entries["nodes"] ?? node, "\(key).nodes", "must be a non-empty list of nodes")
        }
        guard let name, let id else { return nil }
        lines["site:\(name)"] = node.mark?.line
        return Topology.Site(name: name, id: UInt32(id), role: role, nodes: nodes)
    }

    mutating func node(_ node: Node, _ key: String) -> Topology.Node? {
        guard let entries = mapping(node, key, allowed: ["name", "client", "peer", "federation", "admin", "voter", "clientTLS"]) else { return nil }
        let name = string(entries["name"], "\(key).name")
        let client = address(entries["client"], "\(key).client")
        let peer = address(entries["peer"], "\(key).peer")
        let federation = address(entries["federation"], "\(key).federation")
        let admin = address(entries["admin"], "\(key).admin")
        let voter = boolean(entries["voter"], "\(key).voter") ?? true
        let clientTLS = entries["clientTLS"].flatMap { address($0, "\(key).clientTLS") }
        guard let name, let client, let peer, let federation, let admin else { return nil }
        lines["node:\(name)"] = node.mark?.line
        return Topology.Node(name: name, client: client, peer: peer, federation: federation, admin: admin, voter: voter, clientTLS: clientTLS)
    }

    /// Rules across the whole file.
    mutating func validate(_ topology: Topology) {
        var siteNames: [String: Int] = [:], siteIDs: [UInt32: String] = [:]
        var nodeNames: Set<String> = [], addresses: [String: String] = [:]
        for (siteIndex, site) in topology.sites.enumerated() {
            let siteKey = "sites[\(siteIndex)]"
            if siteNames[site.name] != nil { fail("\(siteKey).name", "duplicate site name '\(site.name)'") }
            siteNames[site.name] = siteIndex
            if let other = siteIDs[site.id] { fail("\(siteKey).id", "duplicate site id \(site.id) (also used by site '\(other)')") }
            siteIDs[site.id] = site.name
            if topology.defaults.backupCount >= site.nodes.count && site.nodes.count > 1 {
                fail("\(siteKey).nodes", "backupCount \(topology.defaults.backupCount) needs at least \(topology.defaults.backupCount + 1) nodes in site '\(site.name)', it has \(site.nodes.count)")
            }
            if site.nodes.count > 1 && topology.defaults.minInSync > site.nodes.count {
                fail("\(siteKey).nodes", "minInSync \(topology.defaults.minInSync) exceeds the \(site.nodes.count) nodes of site '\(site.name)'")
            }
            let voters = site.nodes.filter(\.voter).count
            if voters == 0 { fail("\(siteKey).nodes", "site '\(site.name)' has no voter node") }
            for (nodeIndex, node) in site.nodes.enumerated() {
                let nodeKey = "\(siteKey).nodes[\(nodeIndex)]"
                if !nodeNames.insert(node.name).inserted { fail("\(nodeKey).name", "duplicate node name '\(node.name)'") }
                if topology.clientTLS != nil, node.clientTLS == nil {
                    fail("\(nodeKey).clientTLS", "clientTLS: is set, so every node needs its TLS port for clients (host:port)")
                }
                if topology.clientTLS == nil, node.clientTLS != nil {
                    fail("\(nodeKey).clientTLS", "a TLS port for clients needs clientTLS: (directory, optional ca) at the top of the file")
                }
                for (field, address) in [("client", node.client), ("peer", node.peer), ("federation", node.federation), ("admin", node.admin)] + (node.clientTLS.map { [("clientTLS", $0)] } ?? []) {
                    if let owner = addresses[address.description] {
                        fail("\(nodeKey).\(field)", "address \(address) is already used by \(owner)")
                    }
                    addresses[address.description] = "\(node.name).\(field)"
                    if topology.tls == nil, field == "federation", topology.sites.count > 1, !address.isLoopback {
                        fail("\(nodeKey).federation", "plaintext federation is allowed on loopback only: add tls: or use 127.0.0.1")
                    }
                    if topology.tls == nil, field == "peer", site.nodes.count > 1, !address.isLoopback {
                        fail("\(nodeKey).peer", "plaintext peer traffic is allowed on loopback only: add tls: or use 127.0.0.1")
                    }
                }
            }
        }
        if topology.sites.count > 0, topology.sites.allSatisfy({ $0.role == .passive }) {
            fail("sites", "every site is passive: at least one site must be active to accept writes")
        }
        switch topology.links {
        case .mesh: break
        case .hub(let hub):
            if siteNames[hub] == nil { fail("links.hub", "unknown site '\(hub)'") }
        case .pairs(let pairs):
            for (index, pair) in pairs.enumerated() {
                for name in pair where siteNames[name] == nil { fail("links[\(index)]", "unknown site '\(name)'") }
                if pair[0] == pair[1] { fail("links[\(index)]", "links a site to itself") }
            }
            if topology.sites.count > 1 {
                let linked = Set(pairs.flatMap { $0 })
                for site in topology.sites where !linked.contains(site.name) {
                    fail("links", "site '\(site.name)' has no link: it would never receive other sites' writes")
                }
            }
        }
    }
}
