/// The identity of one write: the site that accepted it and that site's counter for the key
/// after the write (DESIGN.md §2.1). Two writes never share a dot.
public struct Dot: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var site: SiteID
    public var counter: UInt64

    /// 2^62: no site writes that often to one key; a larger counter from a peer is refused on
    /// the wire, so adding a write's dots can never overflow.
    public static let maximumCounter: UInt64 = 1 << 62

    /// The lowest counter a write at `physicalMilliseconds` may take when the writer's copy of
    /// the key may lack dots an earlier life issued (a restart, a re-created partition, a
    /// collected tombstone): `ms << 20`. A life's counters start at its floor and grow by one per
    /// stored element, far slower than 2^20 per millisecond, so they stay below the floor of any
    /// later life; the first write of a new life jumps past all of them, whatever the copy
    /// knows. Assumes lives are at least a millisecond apart and the clocks of a site's nodes
    /// agree within the time a failover takes. Below 2^62 until the year 2109.
    public static func lineageFloor(physicalMilliseconds: UInt64) -> UInt64 {
        min(physicalMilliseconds, maximumCounter >> 21) << 20
    }

    public init(site: SiteID, counter: UInt64) {
        self.site = site
        self.counter = counter
    }

    public static func < (lhs: Dot, rhs: Dot) -> Bool {
        (lhs.site, lhs.counter) < (rhs.site, rhs.counter)
    }

    public var description: String { "(\(site.rawValue),\(counter))" }
}
