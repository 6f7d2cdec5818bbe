#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import SessionModel

/// Who is on the other end of a federation connection (DESIGN.md §4 handshake).
public struct Hello: Hashable, Sendable {
    public var federation: String
    public var protocolVersion: UInt32
    public var site: SiteID
    public var siteName: String
    public var nodeName: String
    public var topologyVersion: UInt64
    /// The role assignment the sender's site has in force (nil on peer links inside a site):
    /// a receiver that knows less adopts it (DESIGN.md §5 fencing).
    public var roles: RoleAssignment?
    /// New on every process start; a receiver resets its sequence tracking when it changes.
    public var incarnation: UInt64
    /// The site the dialer means to reach (the listener refuses a connection meant elsewhere).
    public var targetSite: SiteID
    /// Peer connections within a site: the voters of the dialer's site in its topology (a
    /// site's nodes must agree on them whatever topology version each runs).
    public var voters: [String]

    public init(
        federation: String, protocolVersion: UInt32, site: SiteID, siteName: String, nodeName: String,
        topologyVersion: UInt64, roles: RoleAssignment?, incarnation: UInt64, targetSite: SiteID, voters: [String] = []
    ) {
        self.voters = voters
        self.federation = federation
        self.protocolVersion = protocolVersion
        self.site = site
        self.siteName = siteName
        self.nodeName = nodeName
        self.topologyVersion = topologyVersion
        self.roles = roles
        self.incarnation = incarnation
        self.targetSite = targetSite
    }
}

/// The Merkle leaves of one partition.
public struct PartitionLeaves: Hashable, Sendable {
    public var partition: UInt32
    public var leaves: [StateDigest]

    public init(partition: UInt32, leaves: [StateDigest]) {
        self.partition = partition
        self.leaves = leaves
    }
}

/// One differing Merkle leaf and the sender's (key, digest) pairs in it.
public struct Bucket: Hashable, Sendable {
    public var partition: UInt32
    public var leaf: UInt32
    public var keys: [KeyDigest]

    public init(partition: UInt32, leaf: UInt32, keys: [KeyDigest]) {
        self.partition = partition
        self.leaf = leaf
        self.keys = keys
    }
}

public struct KeyDigest: Hashable, Sendable {
    public var key: [UInt8]
    public var digest: StateDigest

    public init(key: [UInt8], digest: StateDigest) {
        self.key = key
        self.digest = digest
    }

    var wire: Sessionfed_V1_KeyDigest {
        var wire = Sessionfed_V1_KeyDigest()
        wire.key = Data(key)
        wire.digest = Data(digest.bytes)
        return wire
    }

    init(wire: Sessionfed_V1_KeyDigest) throws(WireError) {
        self.init(key: Array(wire.key), digest: try StateDigest(wire: wire.digest, in: "KeyDigest"))
    }
}

/// The listener's answer to one chunk of bucket digests.
public struct BucketRepair: Hashable, Sendable {
    public var round: UInt64
    public var chunk: UInt32
    /// The last repair frame answering `chunk`.
    public var last: Bool
    public var states: [KeyStateRecord]
    /// Keys the dialer should send: the listener lacks them or holds a different state.
    public var wanted: [[UInt8]]

    public init(round: UInt64, chunk: UInt32, last: Bool, states: [KeyStateRecord], wanted: [[UInt8]]) {
        self.round = round
        self.chunk = chunk
        self.last = last
        self.states = states
        self.wanted = wanted
    }
}

extension StateDigest {
    /// 16 bytes, big-endian `high` then `low`.
    public var bytes: [UInt8] {
        (0..<8).map { UInt8(truncatingIfNeeded: high >> (56 - 8 * $0)) }
            + (0..<8).map { UInt8(truncatingIfNeeded: low >> (56 - 8 * $0)) }
    }

    init(wire: Data, in message: String) throws(WireError) {
        guard wire.count == 16 else {
            throw .invalidValue(message: message, field: "digest", reason: "must be 16 bytes, got \(wire.count)")
        }
        let bytes = Array(wire)
        self.init(
            high: bytes[0..<8].reduce(UInt64(0)) { $0 << 8 | UInt64($1) },
            low: bytes[8..<16].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        )
    }
}

extension Hello {
    var wire: Sessionfed_V1_Hello {
        var wire = Sessionfed_V1_Hello()
        wire.federation = federation
        wire.protocolVersion = protocolVersion
        wire.siteID = site.rawValue
        wire.siteName = siteName
        wire.nodeName = nodeName
        wire.topologyVersion = topologyVersion
        if let roles {
            wire.roleEpoch = roles.epoch
            wire.roles = Sessionfed_V1_RoleAssignment(roles)
        }
        wire.incarnation = incarnation
        wire.targetSiteID = targetSite.rawValue
        wire.voters = voters
        return wire
    }

    init(wire: Sessionfed_V1_Hello) {
        self.init(
            federation: wire.federation, protocolVersion: wire.protocolVersion, site: SiteID(wire.siteID),
            siteName: wire.siteName, nodeName: wire.nodeName, topologyVersion: wire.topologyVersion,
            roles: wire.hasRoles ? wire.roles.model : nil, incarnation: wire.incarnation, targetSite: SiteID(wire.targetSiteID), voters: wire.voters
        )
    }
}

extension KeyStateRecord {
    var wire: Sessionfed_V1_KeyState { Sessionfed_V1_KeyState(key: key, state: state) }

    init(wire: Sessionfed_V1_KeyState) throws(WireError) {
        let (key, model) = try wire.model()
        self.init(key: key, state: model)
    }
}
