/// Keys ordered by expiry time, for the active sweep. Entries are not removed when a key's
/// expiry changes: the sweep checks each popped entry against the key's current expiry.
struct ExpiryQueue {
    var heap: [(at: UInt64, key: [UInt8])] = []

    var count: Int { heap.count }

    mutating func insert(_ key: [UInt8], at: UInt64) {
        heap.append((at, key))
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard heap[child].at < heap[parent].at else { break }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    /// The earliest entry due at or before `now`, removed from the queue.
    mutating func popDue(now: UInt64) -> (at: UInt64, key: [UInt8])? {
        guard let first = heap.first, first.at < now else { return nil }
        heap.swapAt(0, heap.count - 1)
        heap.removeLast()
        var parent = 0
        while true {
            let left = 2 * parent + 1, right = left + 1
            var smallest = parent
            if left < heap.count && heap[left].at < heap[smallest].at { smallest = left }
            if right < heap.count && heap[right].at < heap[smallest].at { smallest = right }
            guard smallest != parent else { break }
            heap.swapAt(parent, smallest)
            parent = smallest
        }
        return first
    }

    mutating func removeAll() {
        heap.removeAll()
    }
}
