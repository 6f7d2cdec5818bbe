#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Redis's reading and printing of doubles (sorted-set scores), done with the C library's own
/// `strtod` and `%.17g` so every corner (hex floats, `infinity`, denormals, overflow) reads
/// and prints byte for byte as redis-server 7.0 does.
public enum RedisDouble {
    /// `getDoubleFromObject` (object.c): the whole argument must be a number; no leading
    /// space, not empty, not NaN; out of range (overflow to ±inf or underflow to 0) refused.
    /// `inf`, `+inf` and `-inf` are numbers. Nil: `-ERR value is not a valid float`.
    public static func parse(_ bytes: [UInt8]) -> Double? {
        guard let first = bytes.first, !isSpace(first) else { return nil }
        guard let (value, consumed, outOfRange) = scan(bytes), consumed == bytes.count, !value.isNaN else { return nil }
        if outOfRange && (value.isInfinite || value == 0) { return nil }
        return value
    }

    /// A ZRANGEBYSCORE bound (`zslParseRange`, t_zset.c): `(` makes it exclusive; the rest is
    /// read by `strtod` up to the end, which is looser than `parse` (an empty or spaced number
    /// reads, out-of-range values saturate). Nil: `-ERR min or max is not a float`.
    public static func parseRangeBound(_ bytes: [UInt8]) -> (value: Double, exclusive: Bool)? {
        let exclusive = bytes.first == UInt8(ascii: "(")
        let number = Array(exclusive ? bytes.dropFirst() : bytes[...])
        guard let (value, consumed, _) = scan(number), !value.isNaN else { return nil }
        // Redis checks the character where strtod stopped is the C string's end.
        guard consumed == number.count || number[consumed] == 0 else { return nil }
        return (value, exclusive)
    }

    /// `addReplyDouble` (networking.c, Redis 7.0): `%.17g`, and `inf`/`-inf`.
    public static func format(_ number: Double) -> String {
        if number.isNaN { return "nan" }
        if number.isInfinite { return number > 0 ? "inf" : "-inf" }
        var buffer = [CChar](repeating: 0, count: 40)
        let length = withVaList([number]) { arguments in
            buffer.withUnsafeMutableBufferPointer { vsnprintf($0.baseAddress, $0.count, "%.17g", arguments) }
        }
        return String(decoding: buffer.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// `strtod` over the bytes up to the first NUL: the value, how many bytes it read, and
    /// whether it set ERANGE.
    private static func scan(_ bytes: [UInt8]) -> (Double, Int, Bool)? {
        var text = bytes.map { CChar(bitPattern: $0) }
        text.append(0)
        return text.withUnsafeBufferPointer { buffer -> (Double, Int, Bool)? in
            guard let start = buffer.baseAddress else { return nil }
            var end: UnsafeMutablePointer<CChar>?
            errno = 0
            let value = strtod(start, &end)
            let outOfRange = errno == ERANGE
            guard let end else { return nil }
            return (value, start.distance(to: UnsafePointer(end)), outOfRange)
        }
    }

    private static func isSpace(_ byte: UInt8) -> Bool {
        byte == 0x20 || (byte >= 0x09 && byte <= 0x0d)
    }
}
