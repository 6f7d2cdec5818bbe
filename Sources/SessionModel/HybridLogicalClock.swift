/// A hybrid logical clock timestamp: physical milliseconds since the Unix epoch plus a logical
/// counter that orders events within one millisecond (and across clock skew).
public struct HLCTimestamp: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var physicalMilliseconds: UInt64
    public var logical: UInt32

    public init(physicalMilliseconds: UInt64, logical: UInt32) {
        self.physicalMilliseconds = physicalMilliseconds
        self.logical = logical
    }

    public static let zero = HLCTimestamp(physicalMilliseconds: 0, logical: 0)

    public static func < (lhs: HLCTimestamp, rhs: HLCTimestamp) -> Bool {
        (lhs.physicalMilliseconds, lhs.logical) < (rhs.physicalMilliseconds, rhs.logical)
    }

    public var description: String { "\(physicalMilliseconds).\(logical)" }
}

/// A remote timestamp too far ahead of the local physical clock; accepting it would drag this
/// site's clock (and every later last-writer-wins decision) into the future.
public struct HLCDriftError: Error, Equatable, Sendable {
    public var remote: HLCTimestamp
    public var physicalMilliseconds: UInt64
    public var maximumDriftMilliseconds: UInt64
}

/// Hybrid logical clock of Kulkarni, Demirbas et al., "Logical Physical Clocks and Consistent
/// Snapshots in Globally Distributed Databases" (2014), Figure 5. Physical time is an input:
/// the clock never reads a system clock, so the simulator drives it with simulated time.
///
/// Guarantees: timestamps issued by one clock strictly increase; a timestamp issued after
/// `receive(t)` is greater than `t` (so a causally later write has a later timestamp).
public struct HybridLogicalClock: Hashable, Sendable {
    /// The latest timestamp issued or received.
    public private(set) var last: HLCTimestamp

    /// Remote timestamps further ahead of local physical time than this are refused.
    public var maximumDriftMilliseconds: UInt64

    /// One minute: far beyond NTP-synchronised skew, small enough to stop a broken peer clock.
    public static let defaultMaximumDriftMilliseconds: UInt64 = 60_000

    public init(last: HLCTimestamp = .zero, maximumDriftMilliseconds: UInt64 = defaultMaximumDriftMilliseconds) {
        self.last = last
        self.maximumDriftMilliseconds = maximumDriftMilliseconds
    }

    /// A local or send event: the timestamp for a write accepted now.
    public mutating func tick(physicalMilliseconds: UInt64) -> HLCTimestamp {
        if physicalMilliseconds > last.physicalMilliseconds {
            last = HLCTimestamp(physicalMilliseconds: physicalMilliseconds, logical: 0)
        } else {
            last = Self.successor(of: last)
        }
        return last
    }

    /// A receive event: folds a remote timestamp into the clock.
    public mutating func receive(_ remote: HLCTimestamp, physicalMilliseconds: UInt64) throws(HLCDriftError) -> HLCTimestamp {
        if remote.physicalMilliseconds > physicalMilliseconds,
            remote.physicalMilliseconds - physicalMilliseconds > maximumDriftMilliseconds
        {
            throw HLCDriftError(
                remote: remote,
                physicalMilliseconds: physicalMilliseconds,
                maximumDriftMilliseconds: maximumDriftMilliseconds
            )
        }
        let physical = max(last.physicalMilliseconds, remote.physicalMilliseconds, physicalMilliseconds)
        let localSame = physical == last.physicalMilliseconds
        let remoteSame = physical == remote.physicalMilliseconds
        switch (localSame, remoteSame) {
        case (true, true):
            last = Self.successor(of: HLCTimestamp(physicalMilliseconds: physical, logical: max(last.logical, remote.logical)))
        case (true, false):
            last = Self.successor(of: last)
        case (false, true):
            last = Self.successor(of: remote)
        case (false, false):
            last = HLCTimestamp(physicalMilliseconds: physical, logical: 0)
        }
        return last
    }

    /// The next timestamp after `timestamp`; a full logical counter carries into the physical part
    /// (a peer can send any logical value, so overflow must not trap).
    private static func successor(of timestamp: HLCTimestamp) -> HLCTimestamp {
        if timestamp.logical == UInt32.max {
            return HLCTimestamp(physicalMilliseconds: timestamp.physicalMilliseconds + 1, logical: 0)
        }
        return HLCTimestamp(physicalMilliseconds: timestamp.physicalMilliseconds, logical: timestamp.logical + 1)
    }
}
