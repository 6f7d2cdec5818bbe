/// The identity of one write: the site that accepted it and that site's counter for the key
/// after the write (DESIGN.md §2.1). Two writes never share a dot.
public struct Dot: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var site: SiteID
    public var counter: UInt64

    /// 2^62: no site writes that often to one key; a larger counter from a peer is refused on
    /// the wire, so adding a write's dots can never overflow.
    public static let maximumCounter: UInt64 = 1 << 62

    public init(site: SiteID, counter: UInt64) {
        self.site = site
        self.counter = counter
    }

    public static func < (lhs: Dot, rhs: Dot) -> Bool {
        (lhs.site, lhs.counter) < (rhs.site, rhs.counter)
    }

    public var description: String { "(\(site.rawValue),\(counter))" }
}
