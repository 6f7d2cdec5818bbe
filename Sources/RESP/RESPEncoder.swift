import NIOCore

/// Writes replies in the connection's protocol version.
public enum RESPEncoder {
    public static func encode(_ value: RESPValue, version: RESPVersion, into buffer: inout ByteBuffer) {
        switch value {
        case .simpleString(let text):
            buffer.writeInteger(UInt8(ascii: "+"))
            buffer.writeString(text)
            buffer.writeCRLF()
        case .error(let text):
            buffer.writeInteger(UInt8(ascii: "-"))
            buffer.writeString(text)
            buffer.writeCRLF()
        case .integer(let number):
            buffer.writeInteger(UInt8(ascii: ":"))
            buffer.writeDecimal(number)
            buffer.writeCRLF()
        case .bulkString(let bytes):
            buffer.writeInteger(UInt8(ascii: "$"))
            buffer.writeDecimal(Int64(bytes.count))
            buffer.writeCRLF()
            buffer.writeBytes(bytes)
            buffer.writeCRLF()
        case .array(let values):
            writeAggregate("*", values, version: version, into: &buffer)
        case .null:
            buffer.writeStaticString(version == .v3 ? "_\r\n" : "$-1\r\n")
        case .nullArray:
            buffer.writeStaticString(version == .v3 ? "_\r\n" : "*-1\r\n")
        case .double(let number):
            let text = formatDouble(number)
            if version == .v3 {
                buffer.writeInteger(UInt8(ascii: ","))
                buffer.writeString(text)
                buffer.writeCRLF()
            } else {
                encode(.bulk(text), version: version, into: &buffer)
            }
        case .boolean(let flag):
            if version == .v3 {
                buffer.writeStaticString(flag ? "#t\r\n" : "#f\r\n")
            } else {
                encode(.integer(flag ? 1 : 0), version: version, into: &buffer)
            }
        case .map(let pairs):
            if version == .v3 {
                buffer.writeInteger(UInt8(ascii: "%"))
                buffer.writeDecimal(Int64(pairs.count))
                buffer.writeCRLF()
                for pair in pairs {
                    encode(pair.key, version: version, into: &buffer)
                    encode(pair.value, version: version, into: &buffer)
                }
            } else {
                writeAggregate("*", pairs.flatMap { [$0.key, $0.value] }, version: version, into: &buffer)
            }
        case .pairArray(let pairs):
            if version == .v3 {
                writeAggregate("*", pairs.map { .array([$0.key, $0.value]) }, version: version, into: &buffer)
            } else {
                writeAggregate("*", pairs.flatMap { [$0.key, $0.value] }, version: version, into: &buffer)
            }
        case .set(let values):
            writeAggregate(version == .v3 ? "~" : "*", values, version: version, into: &buffer)
        case .push(let values):
            writeAggregate(version == .v3 ? ">" : "*", values, version: version, into: &buffer)
        case .verbatim(let format, let text):
            if version == .v3 {
                buffer.writeInteger(UInt8(ascii: "="))
                buffer.writeDecimal(Int64(text.count + 4))
                buffer.writeCRLF()
                buffer.writeString(format)
                buffer.writeInteger(UInt8(ascii: ":"))
                buffer.writeBytes(text)
                buffer.writeCRLF()
            } else {
                encode(.bulkString(text), version: version, into: &buffer)
            }
        }
    }

    public static func encode(_ value: RESPValue, version: RESPVersion) -> [UInt8] {
        var buffer = ByteBufferAllocator().buffer(capacity: 64)
        encode(value, version: version, into: &buffer)
        return buffer.readBytes(length: buffer.readableBytes) ?? []
    }

    /// Redis 7.0 prints doubles with `%.17g` (0.1 is `0.10000000000000001`) and `inf`/`-inf`.
    static func formatDouble(_ number: Double) -> String {
        RedisDouble.format(number)
    }

    private static func writeAggregate(_ marker: Character, _ values: [RESPValue], version: RESPVersion, into buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt8(ascii: marker.unicodeScalars.first!))
        buffer.writeDecimal(Int64(values.count))
        buffer.writeCRLF()
        for value in values {
            encode(value, version: version, into: &buffer)
        }
    }
}

extension ByteBuffer {
    @inline(__always)
    mutating func writeCRLF() {
        writeInteger(UInt16(0x0d0a))
    }

    /// ASCII decimal without going through String.
    @inline(__always)
    mutating func writeDecimal(_ value: Int64) {
        if value >= 0 && value < 10 {
            writeInteger(UInt8(ascii: "0") + UInt8(value))
            return
        }
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                     UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var magnitude = value.magnitude
        var count = 0
        withUnsafeMutableBytes(of: &digits) { raw in
            repeat {
                raw[19 - count] = UInt8(ascii: "0") + UInt8(magnitude % 10)
                magnitude /= 10
                count += 1
            } while magnitude > 0
            if value < 0 {
                raw[19 - count] = UInt8(ascii: "-")
                count += 1
            }
            writeBytes(UnsafeRawBufferPointer(rebasing: raw[(20 - count)...]))
        }
    }
}
