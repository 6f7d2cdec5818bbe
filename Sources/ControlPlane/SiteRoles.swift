import SessionModel

/// A site's disaster-recovery role (DESIGN.md §5), kept in the cluster map so that every node
/// of the site accepts or refuses writes alike.
///
/// The federation-wide `RoleAssignment` says which sites take writes. A planned switchover
/// fences the active site first (read-only while its writes drain to the target) and ends
/// when the target commits the handover assignment, which every other site then learns; a
/// switchover that cannot drain in time is rolled back by lifting the fence. Epochs never go
/// back: only a superseding assignment is adopted, and a fence ends with it.
public struct SiteRoles: Hashable, Sendable {
    public enum State: Hashable, Sendable {
        /// Takes writes when the assignment lists this site.
        case serving(RoleAssignment)
        /// Was active and is read-only while a switchover drains its writes to the site that
        /// `handover` (the next epoch) makes active. Rolled back, it serves `current` again.
        case fenced(current: RoleAssignment, handover: RoleAssignment)
    }

    public enum Refusal: Error, Hashable, Sendable, CustomStringConvertible {
        case notActive(SiteID, RoleAssignment)
        case switchoverUnderWay(RoleAssignment)
        case noSwitchoverUnderWay
        case targetIsThisSite(SiteID)
        case epochMoved(expected: UInt64, current: RoleAssignment)

        public var description: String {
            switch self {
            case .notActive(let site, let assignment):
                return "\(site) is not active in the current role assignment (\(assignment))"
            case .switchoverUnderWay(let handover):
                return "a switchover is already under way (it hands over to \(handover))"
            case .noSwitchoverUnderWay:
                return "no switchover is under way"
            case .targetIsThisSite(let site):
                return "\(site) cannot hand its writes over to itself"
            case .epochMoved(let expected, let current):
                return "the role epoch moved: expected \(expected), the site now has \(current)"
            }
        }
    }

    public let site: SiteID
    public private(set) var state: State

    public init(site: SiteID, assignment: RoleAssignment) {
        self.site = site
        state = .serving(assignment)
    }

    /// A site that is the federation's only site, or not federated: always active.
    public static let standalone = SiteRoles(site: SiteID(0), assignment: RoleAssignment(epoch: 0, issuer: SiteID(0), active: [SiteID(0)]))

    /// The assignment in force (a fenced site keeps its own until the handover is learned).
    public var assignment: RoleAssignment {
        switch state {
        case .serving(let assignment), .fenced(let assignment, _): return assignment
        }
    }

    /// The switchover under way, if this site is fenced.
    public var handover: RoleAssignment? {
        if case .fenced(_, let handover) = state { return handover }
        return nil
    }

    /// active | passive | fenced (read-only for a switchover).
    public var roleName: String {
        acceptsWrites ? "active" : handover == nil ? "passive" : "fenced"
    }

    public var acceptsWrites: Bool {
        if case .serving(let assignment) = state { return assignment.accepts(site) }
        return false
    }

    /// Adopts `learned` when it supersedes the assignment in force (from another site, or a
    /// failover or handover this site committed); a fence ends with it. Returns whether it did.
    @discardableResult
    public mutating func learn(_ learned: RoleAssignment) -> Bool {
        guard learned.supersedes(assignment) else { return false }
        state = .serving(learned)
        return true
    }

    /// Switchover, first step at the active site: it turns read-only. Returns the handover
    /// assignment, which makes `target` the only active site at the next epoch.
    public mutating func fence(handingOverTo target: SiteID) throws(Refusal) -> RoleAssignment {
        guard target != site else { throw .targetIsThisSite(site) }
        switch state {
        case .fenced(_, let handover):
            throw .switchoverUnderWay(handover)
        case .serving(let current):
            guard current.accepts(site) else { throw .notActive(site, current) }
            let handover = current.next(issuer: site, active: [target])
            state = .fenced(current: current, handover: handover)
            return handover
        }
    }

    /// Switchover rollback: the drain did not finish in time; the site takes writes again
    /// under the assignment it had (no epoch is spent).
    public mutating func unfence() throws(Refusal) {
        guard case .fenced(let current, _) = state else { throw .noSwitchoverUnderWay }
        state = .serving(current)
    }

    /// Failover: the assignment that makes this site the only active one at once, at an epoch
    /// above the one it knows. `expectedEpoch`, when given, must be the epoch in force (a
    /// switchover's handover is committed by its target this way and refused if roles moved).
    public func takeOver(expectedEpoch: UInt64? = nil) throws(Refusal) -> RoleAssignment {
        if let expectedEpoch, expectedEpoch != assignment.epoch {
            throw .epochMoved(expected: expectedEpoch, current: assignment)
        }
        return assignment.next(issuer: site, active: [site])
    }
}
