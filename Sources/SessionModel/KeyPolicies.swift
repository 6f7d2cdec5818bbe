/// The merge policy of every key: the topology's `policies:` rules, first matching pattern
/// first, over the defaults (DESIGN.md §2.3 rule 7: delete-wins "per key pattern
/// configurable"). Every site resolves a key with the same rules, so a key merges by the same
/// policy everywhere and the sites still converge.
public struct KeyPolicies: Hashable, Sendable {
    public struct Rule: Hashable, Sendable {
        /// A glob over the key's bytes: `*` any run, `?` any one byte.
        public var pattern: [UInt8]
        public var policy: MergePolicy

        public init(pattern: [UInt8], policy: MergePolicy) {
            self.pattern = pattern
            self.policy = policy
        }
    }

    public var defaultPolicy: MergePolicy
    public var rules: [Rule]

    public init(defaultPolicy: MergePolicy = .default, rules: [Rule] = []) {
        self.defaultPolicy = defaultPolicy
        self.rules = rules
    }

    /// The policy of `key`: the first rule whose pattern matches it, else the default.
    public func policy(for key: [UInt8]) -> MergePolicy {
        // Without rules (the common case) no pattern is tried.
        guard !rules.isEmpty else { return defaultPolicy }
        return rules.first { Self.matches(pattern: $0.pattern, key) }?.policy ?? defaultPolicy
    }

    /// `*` and `?` globbing (patterns like `spring:session:*`), iterative with one backtrack
    /// point, so a hostile pattern cannot make it exponential.
    public static func matches(pattern: [UInt8], _ key: [UInt8]) -> Bool {
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

extension MergePolicy {
    /// The conflict policy's name, as the topology spells it (for counters and logs).
    public var conflictName: String {
        switch conflict {
        case .lastWriterWins: return "lww"
        case .sitePriority: return "site-priority"
        }
    }
}
