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
