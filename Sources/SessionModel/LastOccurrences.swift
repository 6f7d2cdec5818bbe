/// Values in the order their keys first appear, each key once, a repeated key's last value
/// taking the earlier one's place (Redis's `HSET k f 1 f 2` stores 2). A few values are
/// checked by scanning and many by hashing, so the common write of one or two elements
/// allocates no dictionary for it.
public struct LastOccurrences<Key: Hashable, Value> {
    public private(set) var values: [Value] = []
    private var positions: [Key: Int]?
    private let key: (Value) -> Key

    public init(expected count: Int, key: @escaping (Value) -> Key) {
        values.reserveCapacity(count)
        positions = count > 8 ? [:] : nil
        self.key = key
    }

    public mutating func put(_ value: Value) {
        let name = key(value)
        let earlier = positions != nil ? positions![name] : values.firstIndex { key($0) == name }
        if let earlier {
            values[earlier] = value
        } else {
            positions?[name] = values.count
            values.append(value)
        }
    }
}
