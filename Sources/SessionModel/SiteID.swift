/// A site's stable small integer: its slot in every version vector (DESIGN.md §9 `sites[].id`).
public struct SiteID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var rawValue: UInt32

    public init(_ rawValue: UInt32) {
        self.rawValue = rawValue
    }

    public static func < (lhs: SiteID, rhs: SiteID) -> Bool {
        lhs.rawValue < rhs.rawValue
    }

    public var description: String { "site\(rawValue)" }
}
