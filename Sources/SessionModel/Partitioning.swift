/// Key → slot → partition, as in Redis Cluster: CRC16 (XMODEM) of the key, or of its hash tag
/// (the part between the first `{` and the next `}`, when not empty), modulo 16384 slots. A
/// site's partitions each own a contiguous range of slots, so keys sharing a hash tag always
/// share a partition.
public struct Partitioning: Hashable, Sendable {
    public static let slotCount = 16_384
    public let partitionCount: Int

    public init(partitionCount: Int) {
        precondition(partitionCount >= 1 && partitionCount <= Self.slotCount, "Invalid state: \(partitionCount) partitions")
        self.partitionCount = partitionCount
    }

    public func partition(of key: [UInt8]) -> Int {
        partition(ofSlot: Self.slot(of: key))
    }

    public func partition(ofSlot slot: Int) -> Int {
        slot * partitionCount / Self.slotCount
    }

    public static func slot(of key: [UInt8]) -> Int {
        Int(crc16(hashTag(of: key)) % UInt16(slotCount))
    }

    static func hashTag(of key: [UInt8]) -> ArraySlice<UInt8> {
        guard let open = key.firstIndex(of: UInt8(ascii: "{")),
            let close = key[(open + 1)...].firstIndex(of: UInt8(ascii: "}")),
            close > open + 1
        else { return key[...] }
        return key[(open + 1)..<close]
    }

    /// CRC-16/XMODEM (polynomial 0x1021, initial value 0), the variant Redis Cluster uses,
    /// a byte at a time from a table: every command computes it, several times on a site.
    static func crc16(_ bytes: ArraySlice<UInt8>) -> UInt16 {
        var crc: UInt16 = 0
        crc16Table.withUnsafeBufferPointer { table in
            for byte in bytes {
                crc = (crc << 8) ^ table[Int(UInt8(truncatingIfNeeded: crc >> 8) ^ byte)]
            }
        }
        return crc
    }

    /// The CRC of each byte value alone, shifted into the top byte (the bitwise definition
    /// run once per value).
    static let crc16Table: [UInt16] = (0..<256).map { value in
        var crc = UInt16(value) << 8
        for _ in 0..<8 {
            crc = crc & 0x8000 != 0 ? (crc << 1) ^ 0x1021 : crc << 1
        }
        return crc
    }
}
