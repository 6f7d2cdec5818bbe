import SessionModel
import Wire

extension SeededGenerator {
    mutating func bytes(maximumCount: Int) -> [UInt8] {
        (0..<Int(next() % UInt64(maximumCount + 1))).map { _ in UInt8(truncatingIfNeeded: next()) }
    }
}

/// Builds realistic model values: keys written at three sites and exchanged, so states carry
/// concurrent entries, deletes, clouds and every payload kind.
enum Samples {
    static let seoul = SiteID(1), tokyo = SiteID(2), frankfurt = SiteID(3)

    static func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    /// Deltas covering every operation kind.
    static func deltas() -> [Delta] {
        var a = KeyState(), b = KeyState()
        var out: [Delta] = []
        var clock = HybridLogicalClock()
        func stamp() -> HLCTimestamp { clock.tick(physicalMilliseconds: 1_700_000_000_000) }
        let key = bytes("spring:session:sessions:7")
        let writes: [KeyWrite] = [
            .setFields([HashField(field: bytes("creationTime"), value: bytes("1")), HashField(field: bytes("attr"), value: [0, 255, 10])]),
            .expire(atMilliseconds: 1_700_000_100_000),
            .removeFields([bytes("attr")]),
            .persist,
            .delete,
            .setString([], keepExpiry: false),
            .append(bytes("tail")),
            .replace(.set([bytes("m1"), bytes("m2")]), expireAtMilliseconds: 1_700_000_200_000),
            .removeMembers([bytes("m1")]),
            .addMembers([bytes("m3")]),
            .addScoredMembers([ScoredMember(member: bytes("z1"), score: 1.5), ScoredMember(member: bytes("z2"), score: -.infinity)]),
            .removeScoredMembers([bytes("z1")]),
        ]
        for write in writes {
            if let delta = a.write(write, key: key, site: seoul, timestamp: stamp(), now: 1_700_000_000_000) {
                out.append(delta)
                b.merge(delta, policy: .default)
            }
        }
        if let concurrent = b.write(.addScoredMembers([ScoredMember(member: bytes("z2"), score: 0.1)]), key: key, site: tokyo, timestamp: stamp(), now: 1_700_000_000_000) {
            out.append(concurrent)
        }
        return out
    }

    /// A state with concurrent entries, a delete vector and an out-of-order context.
    static func state() -> KeyState {
        var a = KeyState(), b = KeyState(), c = KeyState()
        let key = bytes("k")
        let now: UInt64 = 1_700_000_000_000
        let ts = HLCTimestamp(physicalMilliseconds: now, logical: 0)
        let first = a.write(.setFields([HashField(field: bytes("f"), value: bytes("1"))]), key: key, site: seoul, timestamp: ts, now: now)!
        b.merge(first, policy: .default)
        _ = a.write(.setFields([HashField(field: bytes("f"), value: bytes("2"))]), key: key, site: seoul, timestamp: ts, now: now)
        _ = b.write(.setFields([HashField(field: bytes("f"), value: bytes("3")), HashField(field: bytes("g"), value: [])]), key: key, site: tokyo, timestamp: ts, now: now)
        let third = a.write(.expire(atMilliseconds: now + 5_000), key: key, site: seoul, timestamp: ts, now: now)!
        c.merge(first, policy: .default)
        c.merge(third, policy: .default)  // (1,2) skipped: a cloud in c's context
        _ = c.write(.delete, key: key, site: frankfurt, timestamp: ts, now: now)
        a.merge(b, policy: MergePolicy(delete: .updateWins))
        a.merge(c, policy: MergePolicy(delete: .updateWins))
        return a
    }
}
