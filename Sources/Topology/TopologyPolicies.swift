import SessionModel

extension Topology {
    /// Every key's merge policy: the first `policies:` pattern that matches overrides the
    /// defaults. `site-priority` ranks sites in the order `sites:` lists them.
    public var keyPolicies: KeyPolicies {
        let defaultPolicy = mergePolicy(conflict: defaults.conflictPolicy, delete: defaults.deletePolicy)
        return KeyPolicies(
            defaultPolicy: defaultPolicy,
            rules: policies.map { rule in
                KeyPolicies.Rule(
                    pattern: Array(rule.pattern.utf8),
                    policy: mergePolicy(conflict: rule.conflictPolicy ?? defaults.conflictPolicy, delete: rule.deletePolicy ?? defaults.deletePolicy)
                )
            }
        )
    }

    /// The merge policy for a key.
    public func mergePolicy(forKey key: [UInt8]) -> MergePolicy {
        keyPolicies.policy(for: key)
    }

    /// The default merge policy (no key pattern applied).
    public var defaultMergePolicy: MergePolicy { keyPolicies.defaultPolicy }

    func mergePolicy(conflict: String, delete: String) -> MergePolicy {
        let conflictPolicy: ConflictPolicy = conflict == "site-priority" ? .sitePriority(sites.map { SiteID($0.id) }) : .lastWriterWins
        return MergePolicy(conflict: conflictPolicy, delete: DeletePolicy(rawValue: delete) ?? .deleteWins)
    }
}
