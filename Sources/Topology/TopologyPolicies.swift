import SessionModel

extension Topology {
    /// The merge policy for a key: the first `policies:` pattern that matches overrides the
    /// defaults. `site-priority` ranks sites in the order `sites:` lists them.
    public func mergePolicy(forKey key: [UInt8]) -> MergePolicy {
        var conflictName = defaults.conflictPolicy
        var deleteName = defaults.deletePolicy
        if let policy = policies.first(where: { TopologyGlob.matches(pattern: Array($0.pattern.utf8), key) }) {
            conflictName = policy.conflictPolicy ?? conflictName
            deleteName = policy.deletePolicy ?? deleteName
        }
        let conflict: ConflictPolicy = conflictName == "site-priority" ? .sitePriority(sites.map { SiteID($0.id) }) : .lastWriterWins
        return MergePolicy(conflict: conflict, delete: DeletePolicy(rawValue: deleteName) ?? .deleteWins)
    }

    /// The default merge policy (no key pattern applied).
    public var defaultMergePolicy: MergePolicy { mergePolicy(forKey: []) }
}

/// `*` and `?` globbing for policy patterns (key patterns like `spring:session:*`).
enum TopologyGlob {
    static func matches(pattern: [UInt8], _ key: [UInt8]) -> Bool {
        var p = 0, k = 0, star = -1, mark = 0
        while k < key.count {
            if p < pattern.count && (pattern[p] == UInt8(ascii: "?") || pattern[p] == key[k]) {
                p += 1
                k += 1
            } else if p < pattern.count && pattern[p] == UInt8(ascii: "*") {
                star = p
                mark = k
                p += 1
            } else if star >= 0 {
                p = star + 1
                mark += 1
                k = mark
            } else {
                return false
            }
        }
        while p < pattern.count && pattern[p] == UInt8(ascii: "*") { p += 1 }
        return p == pattern.count
    }
}
