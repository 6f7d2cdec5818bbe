import ControlPlane
import SessionModel
import Testing

/// The role state machine of DESIGN.md §5: every transition, epochs never going back, a site
/// obeying a higher epoch, and a switchover's rollback.
@Suite struct SiteRolesTests {
    static let seoul = SiteID(1)
    static let tokyo = SiteID(2)
    static let frankfurt = SiteID(3)
    /// The topology's roles: seoul active, the others passive.
    static let initial = RoleAssignment(epoch: 0, issuer: SiteID(0), active: [seoul])

    @Test func topologyRoles_activeTakesWrites_passiveDoesNot() {
        #expect(SiteRoles(site: Self.seoul, assignment: Self.initial).acceptsWrites)
        #expect(SiteRoles(site: Self.seoul, assignment: Self.initial).roleName == "active")
        #expect(!SiteRoles(site: Self.tokyo, assignment: Self.initial).acceptsWrites)
        #expect(SiteRoles(site: Self.tokyo, assignment: Self.initial).roleName == "passive")
    }

    @Test func supersedes_higherEpochFirst_thenIssuer_neverEqual() {
        let a = RoleAssignment(epoch: 3, issuer: Self.tokyo, active: [Self.tokyo])
        let b = RoleAssignment(epoch: 3, issuer: Self.frankfurt, active: [Self.frankfurt])
        let c = RoleAssignment(epoch: 4, issuer: Self.seoul, active: [Self.seoul])
        #expect(b.supersedes(a) && !a.supersedes(b), "same epoch: the higher issuer wins everywhere")
        #expect(c.supersedes(b) && c.supersedes(a))
        #expect(!a.supersedes(a))
    }

    /// Switchover: active → fenced (read-only) → the handover learned → passive; the target
    /// goes passive → active by committing the same handover.
    @Test func switchover_fencesThenHandsOver_targetActiveAtNextEpoch() throws {
        var seoul = SiteRoles(site: Self.seoul, assignment: Self.initial)
        var tokyo = SiteRoles(site: Self.tokyo, assignment: Self.initial)
        let handover = try seoul.fence(handingOverTo: Self.tokyo)
        #expect(handover == RoleAssignment(epoch: 1, issuer: Self.seoul, active: [Self.tokyo]))
        #expect(!seoul.acceptsWrites && seoul.roleName == "fenced" && seoul.handover == handover)
        #expect(seoul.assignment == Self.initial, "fenced keeps the assignment in force until the handover is learned")
        let learned1 = tokyo.learn(handover)
        #expect(learned1 && tokyo.acceptsWrites)
        let learned2 = seoul.learn(handover)
        #expect(learned2 && !seoul.acceptsWrites && seoul.roleName == "passive" && seoul.handover == nil)
    }

    @Test func switchoverRollback_liftsTheFence_sameEpoch() throws {
        var seoul = SiteRoles(site: Self.seoul, assignment: Self.initial)
        _ = try seoul.fence(handingOverTo: Self.tokyo)
        try seoul.unfence()
        #expect(seoul.acceptsWrites && seoul.assignment == Self.initial, "no epoch is spent on a rollback")
        #expect(throws: SiteRoles.Refusal.noSwitchoverUnderWay) { try seoul.unfence() }
    }

    @Test func fence_refusedWhenPassive_toItself_orTwice() throws {
        var tokyo = SiteRoles(site: Self.tokyo, assignment: Self.initial)
        #expect(throws: SiteRoles.Refusal.notActive(Self.tokyo, Self.initial)) { try tokyo.fence(handingOverTo: Self.frankfurt) }
        var seoul = SiteRoles(site: Self.seoul, assignment: Self.initial)
        #expect(throws: SiteRoles.Refusal.targetIsThisSite(Self.seoul)) { try seoul.fence(handingOverTo: Self.seoul) }
        let handover = try seoul.fence(handingOverTo: Self.tokyo)
        #expect(throws: SiteRoles.Refusal.switchoverUnderWay(handover)) { try seoul.fence(handingOverTo: Self.frankfurt) }
    }

    /// Failover: a passive site takes over at the next epoch, and the old active site, on its
    /// return, learns it and turns passive (fencing).
    @Test func failover_takesOverAtNextEpoch_returningSiteObeys() throws {
        var tokyo = SiteRoles(site: Self.tokyo, assignment: Self.initial)
        let failover = try tokyo.takeOver()
        #expect(failover == RoleAssignment(epoch: 1, issuer: Self.tokyo, active: [Self.tokyo]))
        let learned3 = tokyo.learn(failover)
        #expect(learned3 && tokyo.acceptsWrites)
        var returning = SiteRoles(site: Self.seoul, assignment: Self.initial)
        #expect(returning.acceptsWrites)
        let learned4 = returning.learn(failover)
        #expect(learned4)
        #expect(!returning.acceptsWrites && returning.roleName == "passive")
        #expect(throws: SiteRoles.Refusal.epochMoved(expected: 0, current: failover)) { try tokyo.takeOver(expectedEpoch: 0) }
    }

    /// A fenced site that learns an assignment other than its handover (a failover elsewhere)
    /// obeys it too: the fence ends, the new assignment rules.
    @Test func fencedSite_learnsAFailoverElsewhere_obeysIt() throws {
        var seoul = SiteRoles(site: Self.seoul, assignment: Self.initial)
        _ = try seoul.fence(handingOverTo: Self.tokyo)
        let failover = RoleAssignment(epoch: 1, issuer: Self.frankfurt, active: [Self.frankfurt])
        let learned5 = seoul.learn(failover)
        #expect(learned5)
        #expect(seoul.handover == nil && !seoul.acceptsWrites && seoul.assignment == failover)
        #expect(throws: SiteRoles.Refusal.noSwitchoverUnderWay) { try seoul.unfence() }
    }

    /// Whatever order assignments arrive in, a site ends with the greatest one, and its epoch
    /// never goes back on the way.
    @Test(arguments: 0..<200) func learning_inAnyOrder_endsWithTheGreatest_neverGoingBack(seed: UInt64) {
        var random = SeededGenerator(seed: seed)
        let issued = (0..<12).map { _ in
            RoleAssignment(
                epoch: UInt64.random(in: 0...5, using: &random), issuer: SiteID(UInt32.random(in: 1...3, using: &random)),
                active: [SiteID(UInt32.random(in: 1...3, using: &random))]
            )
        }
        var roles = SiteRoles(site: Self.tokyo, assignment: Self.initial)
        for assignment in issued.shuffled(using: &random) {
            let before = roles.assignment
            roles.learn(assignment)
            #expect(!before.supersedes(roles.assignment), "the assignment went back from \(before) to \(roles.assignment)")
        }
        let greatest = issued.reduce(Self.initial) { $1.supersedes($0) ? $1 : $0 }
        #expect(roles.assignment == greatest)
    }

    /// The map applies role commands deterministically: a fence only at the epoch in force on
    /// an active site, an unfence only for that fence, an assignment only when it supersedes.
    @Test func clusterMap_appliesRoleCommandsOnlyWhereValid() {
        var map = ClusterMap(voters: ["a"], partitionCount: 1, backupCount: 0, roles: SiteRoles(site: Self.seoul, assignment: Self.initial))
        map.apply(.fence(target: Self.tokyo, epoch: 7), index: 1)
        #expect(map.roles.acceptsWrites, "a fence for another epoch is ignored")
        map.apply(.fence(target: Self.tokyo, epoch: 0), index: 2)
        #expect(map.roles.roleName == "fenced")
        map.apply(.unfence(epoch: 3), index: 3)
        #expect(map.roles.roleName == "fenced", "an unfence for another epoch is ignored")
        map.apply(.unfence(epoch: 0), index: 4)
        #expect(map.roles.acceptsWrites)
        let failover = RoleAssignment(epoch: 2, issuer: Self.tokyo, active: [Self.tokyo])
        map.apply(.roles(failover), index: 5)
        map.apply(.roles(RoleAssignment(epoch: 1, issuer: Self.seoul, active: [Self.seoul])), index: 6)
        #expect(map.roles.assignment == failover && !map.roles.acceptsWrites, "epochs never go back")
        map.apply(.fence(target: Self.frankfurt, epoch: 2), index: 7)
        #expect(map.roles.roleName == "passive", "a passive site cannot be fenced")
    }
}
