import RESP
import SessionModel

/// Sorted sets: https://redis.io/docs/latest/commands/?group=sorted-set, answered as
/// redis-server 7.0 answers them (t_zset.c): the same option parsing, the same order of
/// checks (syntax, then ranges, then the key's type) and the same error texts.
///
/// Reads go through the key's sorted index (`KeyState.sortedMembers`): a member's score costs
/// O(1), a range a binary search plus the members it returns.
extension Keyspace {
    typealias SortedItem = SortedSetIndex.Item

    /// ZADD key [NX|XX] [GT|LT] [CH] [INCR] score member [score member …], and ZINCRBY
    /// (`alwaysIncrement`), which Redis runs through the same code.
    mutating func zadd(_ context: inout CommandContext, alwaysIncrement: Bool) -> RESPValue {
        let arguments = context.arguments
        let key = arguments[1]
        var nx = false, xx = false, gt = false, lt = false, ch = false, incr = alwaysIncrement
        var scoreIndex = 2
        options: while scoreIndex < arguments.count {
            switch context.option(scoreIndex) {
            case "NX": nx = true
            case "XX": xx = true
            case "GT": gt = true
            case "LT": lt = true
            case "CH": ch = true
            case "INCR": incr = true
            default: break options
            }
            scoreIndex += 1
        }
        let remaining = arguments.count - scoreIndex
        guard remaining > 0, remaining % 2 == 0 else { return RedisError.syntax }
        guard !(nx && xx) else { return RedisError.zaddNXAndXX }
        guard !(nx && (gt || lt)), !(gt && lt) else { return RedisError.zaddGTLTAndNX }
        guard !incr || remaining == 2 else { return RedisError.zaddIncrPairs }
        // Every score is read before anything is written: the command runs whole or not at all.
        var given: [ScoredMember] = []
        for index in stride(from: scoreIndex, to: arguments.count, by: 2) {
            guard let score = RedisDouble.parse(arguments[index]) else { return RedisError.notFloat }
            given.append(ScoredMember(member: arguments[index + 1], score: score))
        }

        var pending: [[UInt8]: Double] = [:]
        var written: [[UInt8]] = []
        var added = 0, updated = 0, processed = 0
        var lastScore = 0.0
        do {
            // (No copy of the state may outlive this scope: the write would copy the whole key.)
            guard case .success(let zset) = collection(key, as: .zset, &context) else { return RedisError.wrongType }
            if zset != nil || !xx {
                let policy = conflict(for: key)
                // One member after the other, as Redis does: a member named twice sees its
                // first score.
                for element in given {
                    let current = pending[element.member] ?? zset?.score(of: element.member, now: context.now, policy: policy)
                    var score = element.score
                    if let current {
                        if nx { continue }
                        if incr {
                            score += current
                            guard !score.isNaN else { return RedisError.scoreNaN }
                        }
                        if (lt && score >= current) || (gt && score <= current) { continue }
                        processed += 1
                        lastScore = score
                        guard score != current else { continue }
                        updated += 1
                    } else {
                        guard !xx else { continue }
                        processed += 1
                        lastScore = score
                        added += 1
                    }
                    // Redis's small sets keep scores as text, where -0 reads back as 0: one form here.
                    if score == 0 { score = 0 }
                    if pending.updateValue(score, forKey: element.member) == nil { written.append(element.member) }
                }
            }
        }
        if !written.isEmpty {
            let members = written.map { ScoredMember(member: $0, score: pending[$0]!) }
            _ = apply(key, .addScoredMembers(members), &context, event: incr ? "zincr" : "zadd", eventClass: .zset)
        }
        if incr { return processed > 0 ? .double(lastScore) : .null }
        return .integer(Int64(ch ? added + updated : added))
    }

    mutating func zrem(_ context: inout CommandContext) -> RESPValue {
        let key = context.arguments[1]
        var removed: [[UInt8]] = []
        var count = 0
        do {
            // (No copy of the state may outlive this scope: the write would copy the whole key.)
            guard case .success(let zset) = collection(key, as: .zset, &context) else { return RedisError.wrongType }
            guard let zset else { return .integer(0) }
            var seen = Set<[UInt8]>()
            for member in context.arguments.dropFirst(2) where zset.isVisible(.sortedMember(member)) && seen.insert(member).inserted {
                removed.append(member)
            }
            count = zset.visibleElementCount(of: .zset)
        }
        return removeSorted(removed, from: key, remaining: count - removed.count, event: "zrem", &context)
    }

    /// Removes visible members; the last one takes the key with it (`del`, as Redis says).
    private mutating func removeSorted(_ members: [[UInt8]], from key: [UInt8], remaining: Int, event: String, _ context: inout CommandContext) -> RESPValue {
        guard !members.isEmpty else { return .integer(0) }
        _ = apply(key, .removeScoredMembers(members), &context, event: event, eventClass: .zset)
        if remaining == 0 {
            context.events.append(KeyspaceEvent("del", key: key, eventClass: .generic))
        }
        return .integer(Int64(members.count))
    }

    mutating func zcard(_ context: inout CommandContext) -> RESPValue {
        guard case .success(let zset) = collection(context.arguments[1], as: .zset, &context) else { return RedisError.wrongType }
        return .integer(Int64(zset?.visibleElementCount(of: .zset) ?? 0))
    }

    mutating func zscore(_ context: inout CommandContext) -> RESPValue {
        let key = context.arguments[1]
        guard case .success(let zset) = collection(key, as: .zset, &context) else { return RedisError.wrongType }
        countRead(found: zset != nil)
        return zset?.score(of: context.arguments[2], now: context.now, policy: conflict(for: key)).map(RESPValue.double) ?? .null
    }

    /// ZRANK/ZREVRANK key member (Redis 7.0: no WITHSCORE).
    mutating func zrank(_ context: inout CommandContext, reverse: Bool) -> RESPValue {
        let key = context.arguments[1], member = context.arguments[2]
        guard case .success(let zset) = collection(key, as: .zset, &context) else { return RedisError.wrongType }
        let policy = conflict(for: key)
        guard let zset, let score = zset.score(of: member, now: context.now, policy: policy) else { return .null }
        let items = zset.sortedMembers(now: context.now, policy: policy)
        let rank = SortedSetIndex.partitionPoint(items) { item in
            item.score != score ? item.score > score : !item.member.lexicographicallyPrecedes(member)
        }
        return .integer(Int64(reverse ? items.count - 1 - rank : rank))
    }

    /// ZCOUNT key min max.
    mutating func zcount(_ context: inout CommandContext) -> RESPValue {
        guard let range = ScoreRange(context.arguments[2], context.arguments[3]) else { return RedisError.minMaxNotFloat }
        let key = context.arguments[1]
        guard case .success(let zset) = collection(key, as: .zset, &context) else { return RedisError.wrongType }
        guard let zset else { return .integer(0) }
        return .integer(Int64(range.positions(in: zset.sortedMembers(now: context.now, policy: conflict(for: key))).count))
    }

    /// ZREMRANGEBYSCORE key min max.
    mutating func zremrangebyscore(_ context: inout CommandContext) -> RESPValue {
        guard let range = ScoreRange(context.arguments[2], context.arguments[3]) else { return RedisError.minMaxNotFloat }
        let key = context.arguments[1]
        var removed: [[UInt8]] = []
        var count = 0
        do {
            guard case .success(let zset) = collection(key, as: .zset, &context) else { return RedisError.wrongType }
            guard let zset else { return .integer(0) }
            let items = zset.sortedMembers(now: context.now, policy: conflict(for: key))
            removed = range.positions(in: items).map { items[$0].member }
            count = items.count
        }
        return removeSorted(removed, from: key, remaining: count - removed.count, event: "zremrangebyscore", &context)
    }

    // MARK: Ranges

    /// How a range command reads its bounds.
    enum RangeKind { case rank, score, lex }

    /// ZRANGE, ZRANGESTORE, ZRANGEBYSCORE, ZREVRANGEBYSCORE, ZRANGEBYLEX, ZREVRANGEBYLEX and
    /// ZREVRANGE (`zrangeGenericCommand`): `kind` and `reverse` are nil where the command takes
    /// them as options (BYSCORE, BYLEX, REV). `store`: ZRANGESTORE dst src …
    mutating func zrange(_ context: inout CommandContext, store: Bool, kind fixedKind: RangeKind?, reverse fixedReverse: Bool?) -> RESPValue {
        let arguments = context.arguments
        let sourceIndex = store ? 2 : 1
        var kind = fixedKind, reverse = fixedReverse
        var withScores = false
        var offset: Int64 = 0, limit: Int64 = -1
        var index = sourceIndex + 3
        while index < arguments.count {
            let left = arguments.count - index - 1
            switch context.option(index) {
            case "WITHSCORES" where !store:
                withScores = true
            case "LIMIT" where left >= 2:
                guard let parsedOffset = parseRedisInteger(arguments[index + 1]), let parsedLimit = parseRedisInteger(arguments[index + 2]) else {
                    return RedisError.notInteger
                }
                (offset, limit) = (parsedOffset, parsedLimit)
                index += 2
            case "REV" where reverse == nil: reverse = true
            case "BYLEX" where kind == nil: kind = .lex
            case "BYSCORE" where kind == nil: kind = .score
            default: return RedisError.syntax
            }
            index += 1
        }
        let rangeKind = kind ?? .rank
        let backwards = reverse ?? false
        // Redis tells "no LIMIT" by a count of -1: LIMIT n -1 with a rank range passes too.
        if limit != -1 && rangeKind == .rank {
            return .error("ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX")
        }
        if withScores && rangeKind == .lex {
            return .error("ERR syntax error, WITHSCORES not supported in combination with BYLEX")
        }
        // Reversed score and lex ranges are written max first.
        var lowIndex = sourceIndex + 1, highIndex = sourceIndex + 2
        if backwards && rangeKind != .rank { swap(&lowIndex, &highIndex) }
        let low = arguments[lowIndex], high = arguments[highIndex]

        let select: ([SortedItem]) -> [SortedItem]
        switch rangeKind {
        case .rank:
            guard let start = parseRedisInteger(low), let end = parseRedisInteger(high) else { return RedisError.notInteger }
            select = { Self.rankRange($0, start: start, end: end, reverse: backwards) }
        case .score:
            guard let range = ScoreRange(low, high) else { return RedisError.minMaxNotFloat }
            select = { range.select(in: $0, reverse: backwards, offset: offset, limit: limit) }
        case .lex:
            guard let range = LexRange(low, high) else { return .error("ERR min or max not valid string range item") }
            select = { range.select(in: $0, reverse: backwards, offset: offset, limit: limit) }
        }

        let source = arguments[sourceIndex]
        var selected: [SortedItem] = []
        do {
            guard case .success(let zset) = collection(source, as: .zset, &context) else { return RedisError.wrongType }
            if let zset { selected = select(zset.sortedMembers(now: context.now, policy: conflict(for: source))) }
        }
        guard store else {
            if withScores { return .pairArray(selected.map { RESPPair(.bulkString($0.member), .double($0.score)) }) }
            return .array(selected.map { .bulkString($0.member) })
        }
        return storeRange(selected, into: arguments[1], &context)
    }

    /// ZRANGESTORE's destination becomes exactly the members selected (its expiry gone, as
    /// for any new value); nothing selected deletes it.
    private mutating func storeRange(_ selected: [SortedItem], into destination: [UInt8], _ context: inout CommandContext) -> RESPValue {
        guard !selected.isEmpty else {
            if type(of: destination, now: context.now, events: &context.events) != nil {
                _ = apply(destination, .delete, &context, event: "del", eventClass: .generic)
            }
            return .integer(0)
        }
        let members = selected.map { ScoredMember(member: $0.member, score: $0.score) }
        _ = apply(destination, .replace(.zset(members), expireAtMilliseconds: nil), &context, event: "zrangestore", eventClass: .zset)
        return .integer(Int64(members.count))
    }

    /// `genericZrangebyrankCommand`: negative indexes count from the end; out-of-range ends
    /// are clamped. Reversed, rank 0 is the highest score.
    static func rankRange(_ items: [SortedItem], start: Int64, end: Int64, reverse: Bool) -> [SortedItem] {
        let length = Int64(items.count)
        var start = start < 0 ? start + length : start
        var end = end < 0 ? end + length : end
        if start < 0 { start = 0 }
        guard start <= end, start < length else { return [] }
        if end >= length { end = length - 1 }
        if reverse {
            (start, end) = (length - 1 - end, length - 1 - start)
            return Array(items[Int(start)...Int(end)].reversed())
        }
        return Array(items[Int(start)...Int(end)])
    }

    /// Walks from `first` in the range's direction as Redis does: `offset` members skipped
    /// unchecked, then at most `limit` (negative: all) while `inRange` holds. A negative offset
    /// walks off the end (nothing); an offset past the set's size returns nothing at once.
    static func walk(_ items: [SortedItem], from first: Int?, reverse: Bool, offset: Int64, limit: Int64, inRange: (SortedItem) -> Bool) -> [SortedItem] {
        guard var position = first, offset >= 0, offset < Int64(items.count) || offset == 0 else { return [] }
        guard inRange(items[position]) else { return [] }
        let step = reverse ? -1 : 1
        position += step * Int(offset)
        var taken: [SortedItem] = []
        var left = limit
        while position >= 0, position < items.count, left != 0, inRange(items[position]) {
            taken.append(items[position])
            position += step
            left -= 1
        }
        return taken
    }
}

/// A score range as ZRANGEBYSCORE, ZCOUNT and ZREMRANGEBYSCORE read it (`zslParseRange`):
/// `(` makes a bound exclusive; `-inf` and `+inf` are numbers.
struct ScoreRange {
    var min: Double, max: Double
    var minExclusive: Bool, maxExclusive: Bool

    init?(_ low: [UInt8], _ high: [UInt8]) {
        guard let low = RedisDouble.parseRangeBound(low), let high = RedisDouble.parseRangeBound(high) else { return nil }
        (min, minExclusive, max, maxExclusive) = (low.value, low.exclusive, high.value, high.exclusive)
    }

    func atLeastMin(_ score: Double) -> Bool { minExclusive ? score > min : score >= min }
    func atMostMax(_ score: Double) -> Bool { maxExclusive ? score < max : score <= max }

    /// No score can be in it (`zslIsInRange`).
    var isEmpty: Bool { min > max || (min == max && (minExclusive || maxExclusive)) }

    /// The positions of the members in range, found by binary search (the items are sorted by
    /// score).
    func positions(in items: [SortedSetIndex.Item]) -> Range<Int> {
        guard !isEmpty else { return 0..<0 }
        let lower = SortedSetIndex.partitionPoint(items) { atLeastMin($0.score) }
        let upper = SortedSetIndex.partitionPoint(items) { !atMostMax($0.score) }
        return lower..<Swift.max(lower, upper)
    }

    func select(in items: [SortedSetIndex.Item], reverse: Bool, offset: Int64, limit: Int64) -> [SortedSetIndex.Item] {
        let found = positions(in: items)
        guard !found.isEmpty else { return [] }
        return Keyspace.walk(items, from: reverse ? found.upperBound - 1 : found.lowerBound, reverse: reverse, offset: offset, limit: limit) {
            atLeastMin($0.score) && atMostMax($0.score)
        }
    }
}

/// A range of member names as ZRANGEBYLEX reads it (`zslParseLexRange`): `[` inclusive, `(`
/// exclusive, `-` and `+` the ends. Meant for members of one score, where the order by score
/// is the order by name; over mixed scores the walk follows the order by score, as Redis's
/// does for its small (listpack) sets.
struct LexRange {
    enum Bound: Equatable {
        case minimum, maximum
        case name([UInt8], exclusive: Bool)
    }

    var min: Bound, max: Bound

    init?(_ low: [UInt8], _ high: [UInt8]) {
        guard let min = Self.bound(low), let max = Self.bound(high) else { return nil }
        (self.min, self.max) = (min, max)
    }

    static func bound(_ bytes: [UInt8]) -> Bound? {
        switch bytes.first {
        case UInt8(ascii: "+") where bytes.count == 1: return .maximum
        case UInt8(ascii: "-") where bytes.count == 1: return .minimum
        case UInt8(ascii: "("): return .name(Array(bytes.dropFirst()), exclusive: true)
        case UInt8(ascii: "["): return .name(Array(bytes.dropFirst()), exclusive: false)
        default: return nil
        }
    }

    /// `sdscmplex`: the ends compare below and above every name.
    static func compare(_ a: Bound, _ b: Bound) -> Int {
        switch (a, b) {
        case (.minimum, .minimum), (.maximum, .maximum): return 0
        case (.minimum, _), (_, .maximum): return -1
        case (.maximum, _), (_, .minimum): return 1
        case (.name(let x, _), .name(let y, _)):
            return x == y ? 0 : (x.lexicographicallyPrecedes(y) ? -1 : 1)
        }
    }

    func atLeastMin(_ member: [UInt8]) -> Bool {
        let order = Self.compare(.name(member, exclusive: false), min)
        if case .name(_, true) = min { return order > 0 }
        return order >= 0
    }

    func atMostMax(_ member: [UInt8]) -> Bool {
        let order = Self.compare(.name(member, exclusive: false), max)
        if case .name(_, true) = max { return order < 0 }
        return order <= 0
    }

    /// `zzlIsInLexRange`: the range is not empty and overlaps the set's first and last names.
    func overlaps(_ items: [SortedSetIndex.Item]) -> Bool {
        let order = Self.compare(min, max)
        var exclusive = false
        if case .name(_, true) = min { exclusive = true }
        if case .name(_, true) = max { exclusive = true }
        guard order < 0 || (order == 0 && !exclusive) else { return false }
        guard let first = items.first, let last = items.last else { return false }
        return atLeastMin(last.member) && atMostMax(first.member)
    }

    func select(in items: [SortedSetIndex.Item], reverse: Bool, offset: Int64, limit: Int64) -> [SortedSetIndex.Item] {
        guard overlaps(items) else { return [] }
        // Names are in order when every score is equal: then a binary search finds the start.
        let ordered = items.first?.score == items.last?.score
        var first: Int?
        switch (ordered, reverse) {
        case (true, true):
            let after = SortedSetIndex.partitionPoint(items) { !atMostMax($0.member) }
            first = after > 0 ? after - 1 : nil
        case (true, false):
            let start = SortedSetIndex.partitionPoint(items) { atLeastMin($0.member) }
            first = start < items.count ? start : nil
        case (false, true):
            first = items.lastIndex { atMostMax($0.member) }
        case (false, false):
            first = items.firstIndex { atLeastMin($0.member) }
        }
        return Keyspace.walk(items, from: first, reverse: reverse, offset: offset, limit: limit) {
            atLeastMin($0.member) && atMostMax($0.member)
        }
    }
}
