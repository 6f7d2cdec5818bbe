/// Which sites accept writes, at a federation-wide role epoch (DESIGN.md §5).
///
/// Every role change (a switchover, a failover, a failback) issues a new assignment at a
/// higher epoch, and a site that learns an assignment that supersedes its own adopts it: a
/// returning old active site is told it is passive by the first site it reaches (fencing).
/// The topology's `role:` keys are the assignment at epoch 0.
///
/// Two sites could each issue epoch N+1 (two failovers ordered at once during a partition):
/// the issuing site breaks the tie, so every site that has heard both adopts the same one
/// (`supersedes` is a total order).
public struct RoleAssignment: Hashable, Sendable, CustomStringConvertible {
    public var epoch: UInt64
    /// The site that issued this assignment (0 for the topology's).
    public var issuer: SiteID
    /// The sites that accept writes; every other site is passive.
    public private(set) var active: [SiteID]

    public init(epoch: UInt64, issuer: SiteID, active: some Sequence<SiteID>) {
        self.epoch = epoch
        self.issuer = issuer
        self.active = Set(active).sorted()
    }

    /// Whether this assignment replaces `other`: a higher epoch, or the same epoch issued by
    /// a higher site id, or (one issuer reusing an epoch, after a rolled-back switchover) the
    /// greater list of active sites. A total order: every site that has heard the same
    /// assignments adopts the same one. Equal assignments do not supersede each other.
    public func supersedes(_ other: RoleAssignment) -> Bool {
        if (epoch, issuer.rawValue) != (other.epoch, other.issuer.rawValue) {
            return (epoch, issuer.rawValue) > (other.epoch, other.issuer.rawValue)
        }
        return other.active.map(\.rawValue).lexicographicallyPrecedes(active.map(\.rawValue))
    }

    public func accepts(_ site: SiteID) -> Bool { active.contains(site) }

    /// The assignment `issuer` issues to make `active` the sites that take writes: the next
    /// epoch after this one.
    public func next(issuer: SiteID, active: some Sequence<SiteID>) -> RoleAssignment {
        RoleAssignment(epoch: epoch + 1, issuer: issuer, active: active)
    }

    public var description: String {
        "epoch \(epoch) (issued by \(issuer)): active \(active.map(\.description).joined(separator: ", "))"
    }
}
