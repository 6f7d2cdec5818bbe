/// Values in the order their keys first appear, each key once, a repeated key's last value
/// taking the earlier one's place (Redis's `HSET k f 1 f 2` stores 2). A few values are
/// checked by scanning and many by hashing, so the common write of one or two elements
/// allocates no dictionary for it.
///
/// Inlinable, so that the keyspace's HSET and SADD get a copy specialized to their types: the
/// generic one cost a few percent of an HSET.
public struct LastOccurrences<Key: Hashable, Value> {
    @usableFromInline var storage: [Value] = []
    public var values: [Value] { storage }
    @usableFromInline var positions: [Key: Int]?
    @usableFromInline let key: (Value) -> Key

    @inlinable
    public init(expected count: Int, key: @escaping (Value) -> Key) {
        storage.reserveCapacity(count)
        positions = count > 8 ? [:] : nil
        self.key = key
    }

    @inlinable
    public mutating func put(_ value: Value) {
        let name = key(value)
        let earlier = positions != nil ? positions![name] : storage.firstIndex { key($0) == name }
        if let earlier {
            storage[earlier] = value
        } else {
            positions?[name] = storage.count
            storage.append(value)
        }
    }
}
