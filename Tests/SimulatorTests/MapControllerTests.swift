import Testing
@testable import ControlPlane

/// The map changes the leader proposes, from its observations (pure).
@Suite struct MapControllerTests {
    static let controller = MapController(failureTimeoutMilliseconds: 1_000)

    /// Three members up (incarnation 1 each); partition 0 led by a, backed by b (not yet in
    /// sync), its assignment last changed at log index 10.
    static func map() -> ClusterMap {
        var map = ClusterMap(voters: ["a", "b", "c"], partitionCount: 1, backupCount: 1)
        for name in ["a", "b", "c"] {
            map.members[name]?.incarnation = 1
            map.members[name]?.state = .up
        }
        map.partitions[0] = PartitionAssignment(partition: 0, epoch: 1, primary: "a", backups: ["b"])
        map.partitions[0].changedAt = 10
        return map
    }

    static func observations(now: UInt64, silent: Set<String> = [], reportIndex: UInt64) -> MapController.Observations {
        var seen: [String: (incarnation: UInt64, at: UInt64)] = [:]
        for name in ["a", "b", "c"] { seen[name] = (1, silent.contains(name) ? now - 5_000 : now) }
        return MapController.Observations(
            seen: seen, inSync: ["b": ([PartitionEpoch(partition: 0, epoch: 1)], reportIndex)],
            holdsLog: { _ in true }, admitsVoter: { _ in false }
        )
    }

    @Test func aCaughtUpReport_fromBeforeTheAssignmentChanged_doesNotMarkTheBackupInSync() {
        let now: UInt64 = 100_000
        let stale = Self.controller.proposals(map: Self.map(), voters: ["a": 1, "b": 1, "c": 1], observed: Self.observations(now: now, reportIndex: 9), now: now)
        #expect(!stale.contains(.markInSync(partition: 0, epoch: 1, member: "b")), "\(stale)")
        let fresh = Self.controller.proposals(map: Self.map(), voters: ["a": 1, "b": 1, "c": 1], observed: Self.observations(now: now, reportIndex: 10), now: now)
        #expect(fresh == [.markInSync(partition: 0, epoch: 1, member: "b")])
    }

    @Test func aSilentMember_goesDownBeforeAnythingElseIsProposed() {
        let now: UInt64 = 100_000
        let proposals = Self.controller.proposals(map: Self.map(), voters: ["a": 1, "b": 1, "c": 1], observed: Self.observations(now: now, silent: ["c"], reportIndex: 10), now: now)
        #expect(proposals == [.memberState(name: "c", state: .down)])
    }
}
