/// Redis's glob matching (`stringmatchlen` in util.c), used by KEYS, SCAN MATCH and PSUBSCRIBE:
/// `*`, `?`, `[abc]`, `[^abc]`, `[a-z]` and `\` escapes, binary-safe.
public struct GlobPattern: Hashable, Sendable {
    public let pattern: [UInt8]

    public init(_ pattern: [UInt8]) {
        self.pattern = pattern
    }

    /// True when the pattern is `*`: callers skip matching altogether.
    public var matchesEverything: Bool { pattern == [UInt8(ascii: "*")] }

    public func matches(_ string: [UInt8]) -> Bool {
        pattern.withUnsafeBufferPointer { p in
            string.withUnsafeBufferPointer { s in
                var skipLongerMatches = false
                return Self.match(p, 0, s, 0, depth: 0, skipLongerMatches: &skipLongerMatches)
            }
        }
    }

    /// Redis bounds recursion on `*` (nesting) to stop patterns like `a*a*a*…` from exploding.
    private static let maximumDepth = 1_000

    private static func match(
        _ p: UnsafeBufferPointer<UInt8>, _ pi: Int, _ s: UnsafeBufferPointer<UInt8>, _ si: Int, depth: Int,
        skipLongerMatches: inout Bool
    ) -> Bool {
        guard depth < maximumDepth else { return false }
        var pi = pi, si = si
        while pi < p.count && si < s.count || pi < p.count && p[pi] == UInt8(ascii: "*") {
            switch p[pi] {
            case UInt8(ascii: "*"):
                while pi + 1 < p.count && p[pi + 1] == UInt8(ascii: "*") { pi += 1 }
                if pi + 1 == p.count { return true }
                var start = si
                while start <= s.count {
                    if match(p, pi + 1, s, start, depth: depth + 1, skipLongerMatches: &skipLongerMatches) { return true }
                    if skipLongerMatches { return false }
                    start += 1
                }
                // The rest of the pattern matches nowhere in the rest of the string, so no earlier
                // `*` can help by matching more: stop (Redis's skipLongerMatches, which keeps
                // patterns like a*a*a*…b linear instead of exponential).
                skipLongerMatches = true
                return false
            case UInt8(ascii: "?"):
                si += 1
            case UInt8(ascii: "["):
                pi += 1
                let negate = pi < p.count && p[pi] == UInt8(ascii: "^")
                if negate { pi += 1 }
                var matched = false
                while pi < p.count && p[pi] != UInt8(ascii: "]") {
                    if p[pi] == UInt8(ascii: "\\") && pi + 1 < p.count {
                        pi += 1
                        if p[pi] == s[si] { matched = true }
                    } else if pi + 2 < p.count && p[pi + 1] == UInt8(ascii: "-") && p[pi + 2] != UInt8(ascii: "]") {
                        var low = p[pi], high = p[pi + 2]
                        if low > high { swap(&low, &high) }
                        if s[si] >= low && s[si] <= high { matched = true }
                        pi += 2
                    } else if p[pi] == s[si] {
                        matched = true
                    }
                    pi += 1
                }
                if pi >= p.count { pi = p.count - 1 }  // unterminated class: Redis treats the end as ']'
                if negate { matched.toggle() }
                if !matched { return false }
                si += 1
            case UInt8(ascii: "\\") where pi + 1 < p.count:
                pi += 1
                if p[pi] != s[si] { return false }
                si += 1
            default:
                if p[pi] != s[si] { return false }
                si += 1
            }
            pi += 1
            if si == s.count {
                while pi < p.count && p[pi] == UInt8(ascii: "*") { pi += 1 }
                break
            }
        }
        return pi == p.count && si == s.count
    }
}

/// Redis's strict integer parsing (`string2ll`): optional `-`, digits, no spaces, no `+`,
/// no leading zeros, within Int64.
public func parseRedisInteger(_ bytes: [UInt8]) -> Int64? {
    guard !bytes.isEmpty, bytes.count <= 20 else { return nil }
    if bytes == [UInt8(ascii: "0")] { return 0 }
    var index = 0
    var negative = false
    if bytes[0] == UInt8(ascii: "-") {
        negative = true
        index = 1
        guard bytes.count > 1 else { return nil }
    }
    guard bytes[index] >= UInt8(ascii: "1") && bytes[index] <= UInt8(ascii: "9") else { return nil }
    var magnitude: UInt64 = 0
    while index < bytes.count {
        let digit = bytes[index] &- UInt8(ascii: "0")
        guard digit <= 9 else { return nil }
        let (m, o1) = magnitude.multipliedReportingOverflow(by: 10)
        let (a, o2) = m.addingReportingOverflow(UInt64(digit))
        guard !o1 && !o2 else { return nil }
        magnitude = a
        index += 1
    }
    if negative {
        guard magnitude <= UInt64(Int64.max) + 1 else { return nil }
        return magnitude == UInt64(Int64.max) + 1 ? Int64.min : -Int64(magnitude)
    }
    guard magnitude <= UInt64(Int64.max) else { return nil }
    return Int64(magnitude)
}
