import SessionModel

extension Keyspace {
    /// One key as the keyspace keeps it: its state and the bookkeeping around it.
    ///
    /// Laid out without Optional's padding (the optional values keep their presence in
    /// `flags`): the table holds one of these per key in every one of its slots, used or not,
    /// and with three optionals each padded to a word the slot was a third larger.
    struct StoredKey: Sendable {
        var state = KeyState()
        /// Bumped on every change; WATCH compares it.
        var revision: UInt64 = 0
        var estimatedBytes = 0
        private var digestValue = StateDigest(high: 0, low: 0)
        private var contributionValue = StateDigest(high: 0, low: 0)
        private var announcedExpiryValue: UInt64 = 0
        private var flags: Flags = []

        private struct Flags: OptionSet, Sendable {
            let rawValue: UInt8
            static let isNew = Flags(rawValue: 1)
            static let hasDigest = Flags(rawValue: 2)
            static let hasContribution = Flags(rawValue: 4)
            static let hasAnnouncedExpiry = Flags(rawValue: 8)
        }

        init(isNew: Bool = false) {
            self.isNew = isNew
        }

        /// `body` with the state, in place (see `Keyspace.reading(at:)`: mutating only so that
        /// the table lends the key instead of copying it).
        mutating func reading<T>(_ body: (KeyState) -> T) -> T {
            body(state)
        }

        /// Inserted into the table just now, by a change not yet settled.
        var isNew: Bool {
            get { flags.contains(.isNew) }
            set { set(.isNew, newValue) }
        }

        /// The expiry time whose `expired` event was sent (so it fires once per key).
        var announcedExpiry: UInt64? {
            get { flags.contains(.hasAnnouncedExpiry) ? announcedExpiryValue : nil }
            set {
                announcedExpiryValue = newValue ?? 0
                set(.hasAnnouncedExpiry, newValue != nil)
            }
        }

        /// The digest of `state` for anti-entropy, computed on demand (nil: not yet or stale).
        var digest: StateDigest? {
            get { flags.contains(.hasDigest) ? digestValue : nil }
            set {
                digestValue = newValue ?? StateDigest(high: 0, low: 0)
                set(.hasDigest, newValue != nil)
            }
        }

        /// What the key adds to the kept Merkle leaves now (nil: nothing yet).
        var contribution: StateDigest? {
            get { flags.contains(.hasContribution) ? contributionValue : nil }
            set {
                contributionValue = newValue ?? StateDigest(high: 0, low: 0)
                set(.hasContribution, newValue != nil)
            }
        }

        private mutating func set(_ flag: Flags, _ on: Bool) {
            if on { flags.insert(flag) } else { flags.remove(flag) }
        }
    }
}
