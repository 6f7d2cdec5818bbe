import SessionModel

/// A federation described as code (DESIGN.md §9): sites, their nodes, links and policies.
public struct Topology: Hashable, Sendable {
    public var federation: String
    public var topologyVersion: Int
    public var defaults: Defaults
    public var links: Links
    public var tls: TLSSettings?
    public var auth: AuthSettings?
    public var policies: [KeyPolicy]
    public var sites: [Site]
    /// A TLS listener for applications on each node's `clientTLS` address (Redis's
    /// `tls-port`); nil: plaintext only.
    public var clientTLS: ClientTLSSettings? = nil

    public struct Defaults: Hashable, Sendable {
        public var partitions = 64
        public var backupCount = 1
        public var minInSync = 1
        public var conflictPolicy = "lww"
        public var deletePolicy = "delete-wins"
        public var batchIntervalMilliseconds = 5
        public var outboxLimitBytes = 268_435_456
        public var expiryGraceMilliseconds = 60_000
        public var maxmemoryBytes = 0
        /// A federation batch is cut once its deltas reach this many bytes.
        public var batchBytes = 1 << 20
        /// Anti-entropy also runs this often on every link (0: only on connect and overflow).
        public var antiEntropyIntervalMilliseconds = 300_000
        /// A starting node answers -LOADING until it has synchronized with every linked site,
        /// or for at most this long when some site is unreachable.
        public var startupSyncTimeoutMilliseconds = 15_000
        /// How long a node stopping (SIGTERM, `sessionfed drain`) may take to hand its copies
        /// to the other nodes of its site before it exits anyway, naming what it still held.
        public var drainTimeoutMilliseconds = 30_000
        /// How many partitions a site's rebalancing moves at once (each move copies a whole
        /// partition to its new node); drains and repairs are not bounded by it.
        public var rebalanceMovesInFlight = 2
        /// A voter that hears no Raft leader for a random time between this and 1.5 times this
        /// starts an election (DESIGN.md §3).
        public var electionTimeoutMilliseconds = 1_000
        /// The Raft leader marks a member down (and moves its partitions) after this long
        /// without its heartbeat.
        public var failureTimeoutMilliseconds = 1_000
        /// Federation-wide collection of tombstones and long-expired keys runs this often
        /// (0: never; deleted and expired sessions then stay in memory).
        public var collectionIntervalMilliseconds = 10_000
        /// How long a collected key's context is remembered against states already on their way.
        public var collectionHorizonMilliseconds = 600_000
        /// Answer CLUSTER SLOTS/SHARDS/NODES (and say `cluster_enabled:1`), so clients in Redis
        /// Cluster mode send each key to its partition's primary. Off by default: a client that
        /// detects cluster mode would otherwise switch to it on upgrade and enforce Redis
        /// Cluster's limits (one slot per multi-key command, database 0) that this store lifts.
        public var clusterClients = false
        /// Event loops per node. One runs every command, timer and link, as Redis's main
        /// thread does; with more, client sockets (reads, parsing, replies, TLS) are spread over
        /// the others, as Redis's `io-threads`.
        public var threads = 1

        public init() {}
    }

    public enum Links: Hashable, Sendable {
        case mesh
        case hub(String)
        case pairs([[String]])
    }

    public struct TLSSettings: Hashable, Sendable {
        public var ca: String
        public var directory: String
    }

    /// Client TLS: each node presents `<directory>/<node>.pem` and `.key`; with `ca`, clients
    /// must present a certificate that CA signed (mutual TLS).
    public struct ClientTLSSettings: Hashable, Sendable {
        public var directory: String
        public var ca: String?
    }

    /// Client authentication: `password` for the default user (Redis `requirepass`) and named
    /// users for `AUTH user password` (Redis ACL users, all with full access).
    public struct AuthSettings: Hashable, Sendable {
        public var password: String?
        public var users: [String: String]
    }

    /// Merge policies for keys matching a glob pattern (first match wins).
    public struct KeyPolicy: Hashable, Sendable {
        public var pattern: String
        public var deletePolicy: String?
        public var conflictPolicy: String?
    }

    public struct Site: Hashable, Sendable {
        public var name: String
        public var id: UInt32
        public var role: Role
        public var nodes: [Node]
    }

    public enum Role: String, Hashable, Sendable {
        case active
        case passive
    }

    public struct Node: Hashable, Sendable {
        public var name: String
        public var client: Address
        public var peer: Address
        public var federation: Address
        public var admin: Address
        public var voter: Bool
        /// The node's TLS port for applications (with `clientTLS:`).
        public var clientTLS: Address? = nil
    }

    public struct Address: Hashable, Sendable, CustomStringConvertible {
        public var host: String
        public var port: Int

        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }

        /// Parses `host:port` or `[v6]:port`.
        public init?(_ text: String) {
            let host: Substring, port: Substring
            if text.hasPrefix("[") {
                guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else { return nil }
                host = text[text.index(after: text.startIndex)..<close]
                port = text[text.index(close, offsetBy: 2)...]
            } else {
                guard let colon = text.lastIndex(of: ":") else { return nil }
                host = text[..<colon]
                port = text[text.index(after: colon)...]
            }
            guard !host.isEmpty, let number = Int(port), (1...65535).contains(number) else { return nil }
            self.host = String(host)
            self.port = number
        }

        public var isLoopback: Bool {
            host == "localhost" || host.hasPrefix("127.") || host == "::1"
        }

        public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
    }

    /// The sites' `role:` keys as the federation's role assignment at epoch 0 (DESIGN.md §5):
    /// every site starts from it, and each role change issues a higher epoch.
    public var initialRoles: RoleAssignment {
        RoleAssignment(epoch: 0, issuer: SiteID(0), active: sites.filter { $0.role == .active }.map { SiteID($0.id) })
    }

    /// Which sites exchange deltas directly (symmetric): every pair in a mesh, the hub with
    /// each other site, or the listed pairs.
    public var linkGraph: [UInt32: Set<UInt32>] {
        var graph: [UInt32: Set<UInt32>] = [:]
        for site in sites { graph[site.id] = [] }
        func link(_ a: UInt32, _ b: UInt32) {
            guard a != b else { return }
            graph[a, default: []].insert(b)
            graph[b, default: []].insert(a)
        }
        let ids = Dictionary(sites.map { ($0.name, $0.id) }, uniquingKeysWith: { first, _ in first })
        switch links {
        case .mesh:
            for a in sites { for b in sites { link(a.id, b.id) } }
        case .hub(let hub):
            if let hubID = ids[hub] { for site in sites { link(hubID, site.id) } }
        case .pairs(let pairs):
            for pair in pairs where pair.count == 2 {
                if let a = ids[pair[0]], let b = ids[pair[1]] { link(a, b) }
            }
        }
        return graph
    }

    /// The node called `name` and its site.
    public func node(named name: String) -> (site: Site, node: Node)? {
        for site in sites {
            if let node = site.nodes.first(where: { $0.name == name }) { return (site, node) }
        }
        return nil
    }
}
