import Testing

@testable import SessionModel

@Suite struct PartitioningTests {
    /// Slots Redis itself gives (CLUSTER KEYSLOT on redis-server 7.0 and Redis Cluster's
    /// documentation): a cluster-aware client computes these, so ours must be the same.
    @Test func slots_areRedisClusters() {
        let known: [(String, Int)] = [
            ("somekey", 11_058), ("foo{hash_tag}", 2_515), ("bar{hash_tag}", 2_515), ("foo", 12_182), ("123456789", 12_739),
            ("", 0), ("{}", 15_257), ("{user1000}.following", 3_443), ("foo{}{bar}", 8_363), ("foo{{bar}}zap", 4_015),
        ]
        for (key, slot) in known {
            #expect(Partitioning.slot(of: Array(key.utf8)) == slot, "\(key)")
        }
    }

    /// CRC-16/XMODEM's check value, and the byte-at-a-time table against the bit-at-a-time
    /// definition for every single byte and some longer inputs.
    @Test func crc16_matchesTheBitwiseDefinition() {
        func bitwise(_ bytes: [UInt8]) -> UInt16 {
            var crc: UInt16 = 0
            for byte in bytes {
                crc ^= UInt16(byte) << 8
                for _ in 0..<8 { crc = crc & 0x8000 != 0 ? (crc << 1) ^ 0x1021 : crc << 1 }
            }
            return crc
        }
        #expect(Partitioning.crc16(Array("123456789".utf8)[...]) == 0x31C3)
        for byte in 0...255 {
            #expect(Partitioning.crc16([UInt8(byte)][...]) == bitwise([UInt8(byte)]))
        }
        var input: [UInt8] = []
        for index in 0..<300 {
            input.append(UInt8((index * 37 + 11) & 0xFF))
            #expect(Partitioning.crc16(input[...]) == bitwise(input))
        }
    }
}
