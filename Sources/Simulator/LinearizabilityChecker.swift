/// One operation of a client on one register (a string key, or one field of a hash), as the
/// client saw it: when it was invoked and when its reply came (event numbers of the run, so
/// two events never tie).
public struct RegisterOperation: Hashable, Sendable {
    public enum Kind: Hashable, Sendable {
        /// Wrote this value (values are unique per run).
        case write(Int)
        /// Read this value (nil: the register was empty).
        case read(Int?)
    }

    public var client: Int
    public var kind: Kind
    public var invokedAt: UInt64
    /// Nil for a write whose outcome the client never learned (it may have happened at any
    /// time after its invocation, or never).
    public var respondedAt: UInt64?

    public init(client: Int, kind: Kind, invokedAt: UInt64, respondedAt: UInt64?) {
        self.client = client
        self.kind = kind
        self.invokedAt = invokedAt
        self.respondedAt = respondedAt
    }
}

/// Linearizability of a register's history, checked the way Wing and Gong (1993) and Lowe's
/// memoised refinement (as in Porcupine) do: search for a total order of the operations that
/// respects real time (an operation answered before another was invoked comes first) in
/// which every read returns the latest write. Writes with unknown outcomes may be placed
/// anywhere after their invocation, or left out.
public enum LinearizabilityChecker {
    /// Nil when the history is linearizable; else a description of the first register state
    /// from which no operation could be placed.
    public static func check(_ history: [RegisterOperation]) -> String? {
        let operations = history.sorted { ($0.invokedAt, $0.client) < ($1.invokedAt, $1.client) }
        let count = operations.count
        guard count > 0 else { return nil }
        let words = (count + 63) / 64
        struct Visit: Hashable {
            var placed: [UInt64]
            var value: Int?
        }
        var seen = Set<Visit>()
        var deepest = 0
        var deepestState: (value: Int?, placed: Int) = (nil, 0)
        let required = operations.indices.filter { operations[$0].respondedAt != nil }

        // Depth-first search over the next operation to place. An operation may come next only
        // if no unplaced operation was answered before it was invoked.
        var stack: [(placed: [UInt64], value: Int?, count: Int)] = [(Array(repeating: 0, count: words), nil, 0)]
        func isPlaced(_ placed: [UInt64], _ index: Int) -> Bool { placed[index / 64] & (1 << UInt64(index % 64)) != 0 }
        while let (placed, value, placedCount) = stack.popLast() {
            guard seen.insert(Visit(placed: placed, value: value)).inserted else { continue }
            if placedCount > deepest {
                deepest = placedCount
                deepestState = (value, placedCount)
            }
            // Done once every answered operation is placed (unknown writes may stay out).
            if required.allSatisfy({ isPlaced(placed, $0) }) { return nil }
            var earliestResponse = UInt64.max
            for index in 0..<count where !isPlaced(placed, index) {
                if let responded = operations[index].respondedAt { earliestResponse = min(earliestResponse, responded) }
            }
            for index in 0..<count where !isPlaced(placed, index) && operations[index].invokedAt < earliestResponse {
                var next = value
                switch operations[index].kind {
                case .write(let written): next = written
                case .read(let read): guard read == value else { continue }
                }
                var nextPlaced = placed
                nextPlaced[index / 64] |= 1 << UInt64(index % 64)
                stack.append((nextPlaced, next, placedCount + 1))
            }
        }
        return "no order of \(count) operations explains the history: at most \(deepestState.placed) could be placed (register then held \(deepestState.value.map(String.init) ?? "nothing"))"
    }
}
