/// Where an input is cut into two reads, derived from the input itself (FNV-1a, 64-bit), so a
/// crash input replays with the same cut and every mutation libFuzzer makes tries another one.
/// In `0...input.count`: either read may be empty.
public func cutPoint(_ input: [UInt8]) -> Int {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in input {
        hash ^= UInt64(byte)
        hash = hash &* 0x0000_0100_0000_01b3
    }
    return Int(hash % UInt64(input.count + 1))
}
