import CAllocator

/// Hands the memory of released keys back to the system. Freed key states go back to the
/// allocator's free lists, not to the system: after collection releases the sessions of a
/// federation, or a mass logout, the node's RSS would stay at its largest. Once a second the
/// keyspace rebuilds its sparse containers, and when that or the keyspace's shrinking freed
/// a good part of it, the allocator returns its free pages (`malloc_trim`).
struct MemoryRelease {
    static let intervalMilliseconds: Int64 = 1_000
    /// Below this much freed, trimming is not worth its pause.
    static let minimumFreedBytes = 4 << 20

    /// The keyspace's largest estimate since the last trim.
    var peakUsedBytes = 0

    /// Whether to trim now, given whether containers shrank and the keyspace's estimate.
    mutating func shouldTrim(shrank: Bool, usedBytes: Int) -> Bool {
        peakUsedBytes = max(peakUsedBytes, usedBytes)
        let freed = peakUsedBytes - usedBytes
        guard shrank || (freed >= Self.minimumFreedBytes && freed * 4 >= peakUsedBytes) else { return false }
        peakUsedBytes = usedBytes
        return true
    }

    /// Blocks this large are mapped on their own and unmapped when freed (the keyspace's
    /// dictionaries and sets once they hold thousands of keys).
    static let mmapThresholdBytes = 128 << 10

    /// Set once at startup, before the keyspace allocates: freed session memory coalesces, so
    /// that trimming can give whole pages back (fast bins pin them), and large containers,
    /// once outgrown or shrunk, leave no hole in the heap for small allocations to pin
    /// (measured in Benchmarks/README.md, "Memory after collection").
    static func configureAllocator() {
        sessionfed_allocator_disable_fast_bins()
        sessionfed_allocator_fix_mmap_threshold(mmapThresholdBytes)
    }

    static func trim() {
        sessionfed_allocator_trim()
    }

    /// Bytes the allocator has handed out and not had back (INFO `allocator_allocated`).
    static var allocatedBytes: Int { Int(sessionfed_allocator_allocated_bytes()) }
}

extension NodeState {
    /// Runs on the event loop every `MemoryRelease.intervalMilliseconds`.
    func releaseFreedMemory() {
        let shrank = keyspace.shrinkIfSparse()
        if memoryRelease.shouldTrim(shrank: shrank, usedBytes: keyspace.usedMemoryBytes) { MemoryRelease.trim() }
    }
}
