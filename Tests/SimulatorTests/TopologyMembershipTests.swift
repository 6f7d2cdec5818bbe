import Testing
@testable import ControlPlane

/// Non-voters join and leave a running site's map as a new topology version lists them, only
/// once every member runs that version (pure: the leader's decisions from its observations).
@Suite struct TopologyMembershipTests {
    static let controller = MapController(failureTimeoutMilliseconds: 1_000)
    static let voters: [String: UInt64] = ["a": 1, "b": 1, "c": 1]
    static let now: UInt64 = 100_000

    static func observations(versions: [String: UInt64], listing: MapController.Listing, seen extra: [String: UInt64] = [:]) -> MapController.Observations {
        var seen: [String: (incarnation: UInt64, at: UInt64)] = [:]
        for name in ["a", "b", "c"] { seen[name] = (1, now) }
        for (name, incarnation) in extra { seen[name] = (incarnation, now) }
        var observed = MapController.Observations(seen: seen, inSync: [:], holdsLog: { _ in true }, admitsVoter: { _ in false })
        observed.topologyVersions = versions
        observed.listing = listing
        return observed
    }

    @Test func aNodeListedByTheLeadersTopology_joinsOnlyOnceEveryUpMemberRunsThatTopology() {
        let map = MapControllerTests.map()
        let listing = MapController.Listing(version: 2, nonVoters: ["d"])
        // c still runs version 1: it does not know d's address yet.
        let rolling = Self.controller.memberChanges(map: map, voters: Self.voters, observed: Self.observations(versions: ["a": 2, "b": 2, "c": 1], listing: listing), now: Self.now)
        #expect(!rolling.contains(.memberAdded(name: "d")), "\(rolling)")
        let rolled = Self.controller.memberChanges(map: map, voters: Self.voters, observed: Self.observations(versions: ["a": 2, "b": 2, "c": 2], listing: listing), now: Self.now)
        #expect(rolled == [.memberAdded(name: "d")])
        // A member on a newer topology makes this leader's list the stale one: nothing changes.
        let ahead = Self.controller.memberChanges(map: map, voters: Self.voters, observed: Self.observations(versions: ["a": 2, "b": 3, "c": 2], listing: listing), now: Self.now)
        #expect(ahead.isEmpty, "\(ahead)")
    }

    @Test func anAddedNode_comesUpOnceItReports_andTakesCopies() {
        var map = MapControllerTests.map()
        map.apply(.memberAdded(name: "d"), index: 11)
        #expect(map.members["d"]?.state == .down && map.members["d"]?.voter == false)
        let listing = MapController.Listing(version: 2, nonVoters: ["d"])
        let observed = Self.observations(versions: ["a": 2, "b": 2, "c": 2, "d": 2], listing: listing, seen: ["d": 7])
        let joined = Self.controller.memberChanges(map: map, voters: Self.voters, observed: observed, now: Self.now)
        #expect(joined == [.memberIncarnation(name: "d", incarnation: 7)])
        ClusterMapTests.applyAll(joined, to: &map)
        let up = Self.controller.memberChanges(map: map, voters: Self.voters, observed: observed, now: Self.now)
        #expect(up == [.memberState(name: "d", state: .up)])
    }

    @Test func aNodeNoLongerListed_leavesTheMap_onlyOnceDownAndHoldingNothing() {
        var map = MapControllerTests.map()
        map.apply(.memberAdded(name: "d"), index: 11)
        map.members["d"]?.incarnation = 7
        map.members["d"]?.state = .up
        map.partitions[0].backups = ["b", "d"]
        let listing = MapController.Listing(version: 3, nonVoters: [])
        let versions: [String: UInt64] = ["a": 3, "b": 3, "c": 3]
        // Still up (it should have been drained first): it stays.
        var observed = Self.observations(versions: versions.merging(["d": 2]) { $1 }, listing: listing, seen: ["d": 7])
        #expect(!Self.controller.memberChanges(map: map, voters: Self.voters, observed: observed, now: Self.now).contains(.memberRemoved(name: "d")))
        // Down but still named for a copy: it stays until the placement no longer names it.
        map.members["d"]?.state = .down
        observed = Self.observations(versions: versions, listing: listing)
        #expect(Self.controller.memberChanges(map: map, voters: Self.voters, observed: observed, now: Self.now).isEmpty)
        // Applied anyway (a stale proposal), the command keeps a member that holds copies.
        var kept = map
        kept.apply(.memberRemoved(name: "d"), index: 12)
        #expect(kept.members["d"] != nil)
        map.partitions[0].backups = ["b"]
        let removed = Self.controller.memberChanges(map: map, voters: Self.voters, observed: observed, now: Self.now)
        #expect(removed == [.memberRemoved(name: "d")])
        ClusterMapTests.applyAll(removed, to: &map)
        #expect(map.members["d"] == nil)
    }

    @Test func votersNeverLeaveByTopology() {
        var map = MapControllerTests.map()
        map.members["c"]?.state = .down
        map.partitions[0].backups = ["b"]
        let observed = Self.observations(versions: ["a": 2, "b": 2], listing: MapController.Listing(version: 2, nonVoters: []))
        let commands = Self.controller.listedMembers(map: map, observed: observed)
        #expect(commands.isEmpty, "\(commands)")
        map.apply(.memberRemoved(name: "c"), index: 20)
        #expect(map.members["c"] != nil)
    }
}
