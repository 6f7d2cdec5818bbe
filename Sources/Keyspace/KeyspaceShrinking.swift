import SessionModel

/// Gives back the room of keys that are gone. Swift's dictionaries, sets and arrays keep
/// their capacity when elements leave, so after a mass logout, or once collection released
/// the deleted and expired sessions of a federation, a keyspace would go on holding the
/// memory of its largest size. A container holding less than a quarter of its capacity is
/// rebuilt at its size; the runtime then hands the freed pages back to the system.
extension Keyspace {
    /// Below this capacity a container is left alone: rebuilding it would give back little.
    static let shrinkMinimumCapacity = 1_024

    /// Rebuilds every container holding less than a quarter of its capacity (a cost in
    /// proportion to what it still holds). True when one was rebuilt.
    public mutating func shrinkIfSparse() -> Bool {
        var shrank = false
        if Self.isSparse(count: keys.count, capacity: keys.capacity) {
            keys = Self.compacted(keys)
            shrank = true
        }
        for partition in partitionKeys.indices where Self.isSparse(count: partitionKeys[partition].count, capacity: partitionKeys[partition].capacity) {
            partitionKeys[partition] = Self.compacted(partitionKeys[partition])
            shrank = true
        }
        if Self.isSparse(count: collected.count, capacity: collected.capacity) {
            collected = Self.compacted(collected)
            shrank = true
        }
        let remembered = collectedOrder.count - collectedOrderHead
        if Self.isSparse(count: remembered, capacity: collectedOrder.capacity) {
            collectedOrder = Self.compacted(collectedOrder[collectedOrderHead...])
            collectedOrderHead = 0
            shrank = true
        }
        if expiryQueue.shrinkIfSparse() { shrank = true }
        if merkle?.shrinkIfSparse() == true { shrank = true }
        if Self.isSparse(count: releasedByExpiry.count, capacity: releasedByExpiry.capacity) {
            releasedByExpiry = Self.compacted(releasedByExpiry[...])
            shrank = true
        }
        return shrank
    }

    // Fresh storage of the right size, element by element: the plain initialisers would share
    // the old storage, capacity and all.
    static func compacted<Key: Hashable, Value>(_ dictionary: [Key: Value]) -> [Key: Value] {
        var copy = [Key: Value](minimumCapacity: dictionary.count)
        for (key, value) in dictionary { copy[key] = value }
        return copy
    }

    static func compacted<Element: Hashable>(_ set: Set<Element>) -> Set<Element> {
        var copy = Set<Element>(minimumCapacity: set.count)
        for element in set { copy.insert(element) }
        return copy
    }

    static func compacted<Element>(_ slice: ArraySlice<Element>) -> [Element] {
        var copy: [Element] = []
        copy.reserveCapacity(slice.count)
        copy.append(contentsOf: slice)
        return copy
    }

    static func isSparse(count: Int, capacity: Int) -> Bool {
        capacity >= shrinkMinimumCapacity && count * 4 < capacity
    }
}

extension ExpiryQueue {
    mutating func shrinkIfSparse() -> Bool {
        guard Keyspace.isSparse(count: heap.count, capacity: heap.capacity) else { return false }
        // A copy of a valid heap is a valid heap.
        heap = Keyspace.compacted(heap[...])
        return true
    }
}

extension KeptMerkleLeaves {
    mutating func shrinkIfSparse() -> Bool {
        var shrank = false
        for partition in dirty.indices where Keyspace.isSparse(count: dirty[partition].count, capacity: dirty[partition].capacity) {
            dirty[partition] = Keyspace.compacted(dirty[partition])
            shrank = true
        }
        return shrank
    }
}
