import ControlPlane
import SessionModel

/// The admin endpoint's role changes (`sessionfed dr …`, DESIGN.md §5): each is validated by
/// `SiteRoles` and committed through the site's control plane, so every node of the site
/// accepts or refuses writes alike. Only the control plane's leader commits; another node
/// answers which node to ask.
struct RoleChangeAnswer: Sendable {
    /// An HTTP status: 200 done, 202 proposed (commits once a majority of the site has it),
    /// 400 bad request, 409 refused by the roles, 421 ask the leader, 503 not ready.
    var status: Int
    var text: String

    static func refused(_ refusal: SiteRoles.Refusal) -> RoleChangeAnswer {
        RoleChangeAnswer(status: 409, text: "refused: \(refusal)\n")
    }
}

extension NodeState {
    func siteID(named name: String) -> SiteID? {
        configuration.topology.sites.first { $0.name == name }.map { SiteID($0.id) }
    }

    func siteName(_ site: SiteID) -> String {
        configuration.topology.sites.first { SiteID($0.id) == site }?.name ?? "\(site)"
    }


    /// Commits `command` when this node leads the site's control plane.
    private func commit(_ command: ClusterCommand, done: () -> Bool, what: String) -> RoleChangeAnswer {
        guard let controlPlane else { return RoleChangeAnswer(status: 503, text: "refused: the control plane has not started\n") }
        guard controlPlane.propose(command) else {
            let leader = controlPlane.raft.leader?.name
            return RoleChangeAnswer(status: 421, text: "refused: this node does not lead the site's control plane; ask \(leader ?? "the leader, once elected")\n")
        }
        return done() ? RoleChangeAnswer(status: 200, text: "\(what)\n") : RoleChangeAnswer(status: 202, text: "proposed: \(what) once the site's control plane commits it\n")
    }

    /// Switchover, first step at the active site: read-only while its writes drain to
    /// `target`. The answer carries the handover assignment the target commits next.
    func fenceForSwitchover(to target: String) -> RoleChangeAnswer {
        guard let targetSite = siteID(named: target) else { return RoleChangeAnswer(status: 400, text: "refused: no site '\(target)' in this topology\n") }
        var roles = siteRoles
        let handover: RoleAssignment
        do throws(SiteRoles.Refusal) {
            handover = try roles.fence(handingOverTo: targetSite)
        } catch {
            return .refused(error)
        }
        let epoch = siteRoles.assignment.epoch
        var answer = commit(.fence(target: targetSite, epoch: epoch), done: { siteRoles.handover == handover }, what: "fenced: writes refused while they drain to \(target)")
        if answer.status < 300 { answer.text = handover.query + "\n" + answer.text }
        return answer
    }

    /// Switchover rollback: the fence set at `epoch` is lifted and the site takes writes again.
    func liftFence(epoch: UInt64) -> RoleChangeAnswer {
        guard siteRoles.handover != nil else { return .refused(.noSwitchoverUnderWay) }
        guard siteRoles.assignment.epoch == epoch else { return .refused(.epochMoved(expected: epoch, current: siteRoles.assignment)) }
        return commit(.unfence(epoch: epoch), done: { siteRoles.handover == nil }, what: "fence lifted: the site takes writes again at epoch \(epoch)")
    }

    /// Commits an assignment issued elsewhere (a switchover's handover, or one pushed to speed
    /// its spread); refused when it does not supersede the one in force.
    func adopt(_ assignment: RoleAssignment) -> RoleChangeAnswer {
        if siteRoles.assignment == assignment {
            return RoleChangeAnswer(status: 200, text: "in force already: \(assignment)\n")
        }
        guard assignment.supersedes(siteRoles.assignment) else {
            return RoleChangeAnswer(status: 409, text: "refused: \(assignment) does not supersede the assignment in force, \(siteRoles.assignment)\n")
        }
        return commit(.roles(assignment), done: { siteRoles.assignment == assignment }, what: "adopted \(assignment)")
    }

    /// Failover: this site becomes the only active one now, at the next epoch. With
    /// `expectedEpoch`, refused unless that is the epoch in force.
    func takeOver(expectedEpoch: UInt64?) -> RoleChangeAnswer {
        let assignment: RoleAssignment
        do throws(SiteRoles.Refusal) {
            assignment = try siteRoles.takeOver(expectedEpoch: expectedEpoch)
        } catch {
            return .refused(error)
        }
        var answer = commit(.roles(assignment), done: { siteRoles.assignment == assignment }, what: "active at epoch \(assignment.epoch)")
        if answer.status < 300 { answer.text = assignment.query + "\n" + answer.text }
        return answer
    }

    /// `dr take-offline` / `bring-online`: this site stops or resumes shipping to `site`.
    func setOffline(_ name: String, offline: Bool) -> RoleChangeAnswer {
        guard let site = siteID(named: name) else { return RoleChangeAnswer(status: 400, text: "refused: no site '\(name)' in this topology\n") }
        guard federation?.settings.linkedSites.contains(site) == true else {
            return RoleChangeAnswer(status: 409, text: "refused: \(configuration.site.name) has no link with \(name)\n")
        }
        if controlPlane?.raft.map.offlineSites.contains(site) == offline {
            return RoleChangeAnswer(status: 200, text: "\(name) is \(offline ? "offline" : "online") already\n")
        }
        return commit(
            .siteOffline(site, offline: offline), done: { controlPlane?.raft.map.offlineSites.contains(site) == offline },
            what: offline ? "\(configuration.site.name) ships nothing more to \(name)" : "\(configuration.site.name) ships to \(name) again; anti-entropy catches it up"
        )
    }
}

extension RoleAssignment {
    /// The assignment as the admin endpoint and `sessionfed dr` exchange it: a URL query,
    /// `epoch=N&issuer=ID&active=ID,ID`.
    public var query: String {
        "epoch=\(epoch)&issuer=\(issuer.rawValue)&active=\(active.map { "\($0.rawValue)" }.joined(separator: ","))"
    }

    /// Reads `query`'s form back; nil when a part is missing or not a number.
    public init?(query: some StringProtocol) {
        var fields: [String: String] = [:]
        for pair in query.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1)
            if parts.count == 2 { fields[String(parts[0])] = String(parts[1]) }
        }
        guard let epoch = fields["epoch"].flatMap({ UInt64($0) }), let issuer = fields["issuer"].flatMap({ UInt32($0) }), let active = fields["active"] else { return nil }
        let sites = active.split(separator: ",").map { UInt32($0) }
        guard !sites.contains(nil) else { return nil }
        self.init(epoch: epoch, issuer: SiteID(issuer), active: sites.map { SiteID($0!) })
    }
}
