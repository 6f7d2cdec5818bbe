/// A 128-bit digest of a key's replicated state, equal at two sites exactly when their states
/// are equal (up to hash collisions). Anti-entropy compares these in Merkle trees.
public struct StateDigest: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var high: UInt64
    public var low: UInt64

    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// Digest of arbitrary bytes (two SipHash-2-4 runs with fixed, distinct keys: the digest must
    /// be the same on every node and every run, unlike Swift's seeded `Hasher`).
    public init(of bytes: [UInt8]) {
        high = SipHash24.hash(bytes, key0: 0x7365_7373_696f_6e66, key1: 0x6564_2d64_6967_6573)
        low = SipHash24.hash(bytes, key0: 0x0706_0504_0302_0100, key1: 0x0f0e_0d0c_0b0a_0908)
    }

    public static func < (lhs: StateDigest, rhs: StateDigest) -> Bool {
        (lhs.high, lhs.low) < (rhs.high, rhs.low)
    }

    public var description: String {
        let hex = String(high, radix: 16) + ":" + String(low, radix: 16)
        return hex
    }
}

extension KeyState {
    /// The stable digest of this state (§4 anti-entropy).
    public var digest: StateDigest { StateDigest(of: canonicalBytes) }

    /// A canonical serialization: equal states give equal bytes, on every platform and run.
    public var canonicalBytes: [UInt8] {
        var out: [UInt8] = []
        func put(_ value: UInt64) {
            var value = value
            repeat {
                out.append(UInt8(value & 0x7f) | (value > 0x7f ? 0x80 : 0))
                value >>= 7
            } while value > 0
        }
        func put(_ bytes: [UInt8]) {
            put(UInt64(bytes.count))
            out.append(contentsOf: bytes)
        }
        func put(_ vector: VersionVector) {
            put(UInt64(vector.entries.count))
            for entry in vector.entries {
                put(UInt64(entry.site.rawValue))
                put(entry.counter)
            }
        }
        func put(_ dot: Dot, at timestamp: HLCTimestamp) {
            put(UInt64(dot.site.rawValue))
            put(dot.counter)
            put(timestamp.physicalMilliseconds)
            put(UInt64(timestamp.logical))
        }
        put(context.vector)
        put(UInt64(context.cloud.count))
        for run in context.cloud {
            put(UInt64(run.site.rawValue))
            put(run.first)
            put(run.last)
        }
        put(deletes)
        let sortedElements = elements.ordered
        put(UInt64(sortedElements.count))
        for (element, entries) in sortedElements {
            switch element {
            case .string: put(0)
            case .field(let name): put(1); put(name)
            case .member(let name): put(2); put(name)
            case .expiry: put(3)
            case .restart: put(4)
            case .sortedMember(let name): put(5); put(name)
            }
            put(UInt64(entries.count))
            for entry in entries {
                put(entry.dot, at: entry.timestamp)
                switch entry.payload {
                case .bytes(let bytes): put(0); put(bytes)
                case .present: put(1)
                case .expireAt(let at): put(2); put(at)
                case .persist: put(3)
                case .score(let score): put(4); put(score.bitPattern)
                }
                put(entry.deletesSeen)
            }
        }
        return out
    }
}

/// SipHash-2-4 (Aumasson and Bernstein, "SipHash: a fast short-input PRF", 2012).
enum SipHash24 {
    static func hash(_ bytes: [UInt8], key0: UInt64, key1: UInt64) -> UInt64 {
        var v0: UInt64 = 0x736f_6d65_7073_6575 ^ key0
        var v1: UInt64 = 0x646f_7261_6e64_6f6d ^ key1
        var v2: UInt64 = 0x6c79_6765_6e65_7261 ^ key0
        var v3: UInt64 = 0x7465_6462_7974_6573 ^ key1

        func round() {
            v0 = v0 &+ v1; v1 = rotate(v1, 13); v1 ^= v0; v0 = rotate(v0, 32)
            v2 = v2 &+ v3; v3 = rotate(v3, 16); v3 ^= v2
            v0 = v0 &+ v3; v3 = rotate(v3, 21); v3 ^= v0
            v2 = v2 &+ v1; v1 = rotate(v1, 17); v1 ^= v2; v2 = rotate(v2, 32)
        }
        func rotate(_ x: UInt64, _ b: UInt64) -> UInt64 { (x << b) | (x >> (64 - b)) }

        let fullWords = bytes.count / 8
        for word in 0..<fullWords {
            var m: UInt64 = 0
            for i in 0..<8 { m |= UInt64(bytes[word * 8 + i]) << (8 * UInt64(i)) }
            v3 ^= m
            round(); round()
            v0 ^= m
        }
        var last = UInt64(bytes.count & 0xff) << 56
        for i in 0..<(bytes.count % 8) {
            last |= UInt64(bytes[fullWords * 8 + i]) << (8 * UInt64(i))
        }
        v3 ^= last
        round(); round()
        v0 ^= last
        v2 ^= 0xff
        round(); round(); round(); round()
        return v0 ^ v1 ^ v2 ^ v3
    }
}
