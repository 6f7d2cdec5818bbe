/// A consistent copy of a node's figures, taken on its event loop, for /status and /metrics.
public struct NodeSnapshot: Codable, Sendable {
    public var node: String
    public var site: String
    public var siteID: UInt32
    public var federation: String
    public var topologyVersion: Int
    public var role: String
    public var clientAddress: String
    public var uptimeSeconds: UInt64
    public var connectedClients: Int
    public var keys: Int
    public var keysWithExpiry: Int
    public var storedKeys: Int
    public var usedMemoryBytes: Int
    public var residentMemoryBytes: Int
    public var maximumMemoryBytes: Int
    public var commandsProcessed: UInt64
    public var commandsByName: [String: UInt64]
    public var connectionsReceived: UInt64
    public var connectionsRejected: UInt64
    public var protocolErrors: UInt64
    public var expiredKeys: UInt64
    public var keysCreated: UInt64
    public var keysDestroyed: UInt64
    public var outOfMemoryRejections: UInt64
    public var deltasProduced: UInt64
}

extension NodeState {
    func snapshot() -> NodeSnapshot {
        let now = WallClock.nowMilliseconds()
        let client = configuration.node.client
        return NodeSnapshot(
            node: configuration.node.name,
            site: configuration.site.name,
            siteID: configuration.site.id,
            federation: configuration.topology.federation,
            topologyVersion: configuration.topology.topologyVersion,
            role: configuration.site.role.rawValue,
            clientAddress: client.description,
            uptimeSeconds: (now - startedAt) / 1_000,
            connectedClients: clients.count,
            keys: keyspace.count(now: now),
            keysWithExpiry: keyspace.countWithExpiry(now: now),
            storedKeys: keyspace.storedKeyCount,
            usedMemoryBytes: keyspace.usedMemoryBytes,
            residentMemoryBytes: ProcessIdentity.residentBytes(),
            maximumMemoryBytes: keyspace.configuration.maximumMemoryBytes,
            commandsProcessed: statistics.commandsProcessed,
            commandsByName: statistics.commandsByName,
            connectionsReceived: statistics.connectionsReceived,
            connectionsRejected: statistics.rejectedConnections,
            protocolErrors: statistics.protocolErrors,
            expiredKeys: keyspace.statistics.expiredKeys,
            keysCreated: keyspace.statistics.keysCreated,
            keysDestroyed: keyspace.statistics.keysDestroyed,
            outOfMemoryRejections: statistics.rejectedForMemory,
            deltasProduced: pendingDeltaCount
        )
    }
}

extension NodeServer {
    public func snapshot() async throws -> NodeSnapshot {
        try await withState { $0.snapshot() }
    }
}
