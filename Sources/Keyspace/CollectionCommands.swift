import RESP
import SessionModel

/// Hashes and sets: https://redis.io/docs/latest/commands/?group=hash, ?group=set
extension Keyspace {
    // MARK: Hashes

    mutating func hashFields(_ key: [UInt8], _ context: inout CommandContext) -> Result<[HashField], WrongType> {
        value(key, as: .hash, &context).map { value in
            if case .hash(let fields)? = value { return fields }
            return []
        }
    }

    mutating func hset(_ context: inout CommandContext) -> RESPValue {
        guard context.arguments.count >= 4, context.arguments.count % 2 == 0 else { return RedisError.wrongArity(context.name) }
        let key = context.arguments[1]
        // The key's place in the table serves the count and the write: one lookup per HSET.
        let (type, found) = located(key, now: context.now, events: &context.events)
        guard type == nil || type == .hash else { return RedisError.wrongType }
        // A repeated field: the last value counts, as in Redis.
        var unique = LastOccurrences<[UInt8], HashField>(expected: (context.arguments.count - 2) / 2) { $0.field }
        for index in stride(from: 2, to: context.arguments.count, by: 2) {
            unique.put(HashField(field: context.arguments[index], value: context.arguments[index + 1]))
        }
        let fields = unique.values
        var added = fields.count
        if type != nil, let found {
            added = reading(at: found) { stored in fields.count { !stored.isVisible(.field($0.field)) } }
        }
        _ = apply(key, .setFields(fields), &context, event: "hset", eventClass: .hash, at: found)
        return context.name == "hmset" ? .ok : .integer(Int64(added))
    }

    mutating func hsetnx(_ context: inout CommandContext) -> RESPValue {
        let key = context.arguments[1]
        switch collection(key, as: .hash, &context) {
        case .failure: return RedisError.wrongType
        case .success(let hash): if hash?.isVisible(.field(context.arguments[2])) == true { return .integer(0) }
        }
        _ = apply(key, .setFields([HashField(field: context.arguments[2], value: context.arguments[3])]), &context, event: "hset", eventClass: .hash)
        return .integer(1)
    }

    mutating func hget(_ context: inout CommandContext) -> RESPValue {
        let key = context.arguments[1]
        guard let type = type(of: key, now: context.now, events: &context.events) else {
            countRead(found: false)
            return .null
        }
        guard type == .hash else { return RedisError.wrongType }
        countRead(found: true)
        return .bulkOrNull(state(of: key)?.fieldValue(context.arguments[2], now: context.now, policy: conflict(for: key)))
    }

    mutating func hmget(_ context: inout CommandContext) -> RESPValue {
        let key = context.arguments[1]
        guard case .success(let hash) = collection(key, as: .hash, &context) else { return RedisError.wrongType }
        countRead(found: hash != nil)
        let policy = conflict(for: key)
        return .array(context.arguments.dropFirst(2).map { name in .bulkOrNull(hash?.fieldValue(name, now: context.now, policy: policy)) })
    }

    mutating func hgetall(_ context: inout CommandContext) -> RESPValue {
        guard case .success(let fields) = hashFields(context.arguments[1], &context) else { return RedisError.wrongType }
        countRead(found: !fields.isEmpty)
        return .map(fields.map { RESPPair(.bulkString($0.field), .bulkString($0.value)) })
    }

    mutating func hdel(_ context: inout CommandContext) -> RESPValue {
        let key = context.arguments[1]
        var removed: [[UInt8]] = []
        var count = 0
        do {
            // (No copy of the state may outlive this scope: the write would copy the whole key.)
            guard case .success(let hash) = collection(key, as: .hash, &context) else { return RedisError.wrongType }
            guard let hash else { return .integer(0) }
            for name in Set(context.arguments.dropFirst(2)).sorted(by: { $0.lexicographicallyPrecedes($1) }) where hash.isVisible(.field(name)) {
                removed.append(name)
            }
            count = hash.visibleElementCount(of: .hash)
        }
        guard !removed.isEmpty else { return .integer(0) }
        _ = apply(key, .removeFields(removed), &context, event: "hdel", eventClass: .hash)
        if removed.count == count {
            context.events.append(KeyspaceEvent("del", key: key, eventClass: .generic))
        }
        return .integer(Int64(removed.count))
    }

    mutating func hexists(_ context: inout CommandContext) -> RESPValue {
        guard case .success(let hash) = collection(context.arguments[1], as: .hash, &context) else { return RedisError.wrongType }
        return .integer(hash?.isVisible(.field(context.arguments[2])) == true ? 1 : 0)
    }

    mutating func hlen(_ context: inout CommandContext) -> RESPValue {
        guard case .success(let hash) = collection(context.arguments[1], as: .hash, &context) else { return RedisError.wrongType }
        return .integer(Int64(hash?.visibleElementCount(of: .hash) ?? 0))
    }

    mutating func hkeys(_ context: inout CommandContext, values: Bool) -> RESPValue {
        guard case .success(let fields) = hashFields(context.arguments[1], &context) else { return RedisError.wrongType }
        return .array(fields.map { .bulkString(values ? $0.value : $0.field) })
    }

    mutating func hstrlen(_ context: inout CommandContext) -> RESPValue {
        let key = context.arguments[1]
        guard case .success(let hash) = collection(key, as: .hash, &context) else { return RedisError.wrongType }
        return .integer(Int64(hash?.fieldValue(context.arguments[2], now: context.now, policy: conflict(for: key))?.count ?? 0))
    }

    mutating func hincrby(_ context: inout CommandContext) -> RESPValue {
        let key = context.arguments[1]
        guard let amount = parseRedisInteger(context.arguments[3]) else { return RedisError.notInteger }
        var existing: [UInt8]?
        switch collection(key, as: .hash, &context) {
        case .failure: return RedisError.wrongType
        case .success(let hash): existing = hash?.fieldValue(context.arguments[2], now: context.now, policy: conflict(for: key))
        }
        var current: Int64 = 0
        if let existing {
            guard let parsed = parseRedisInteger(existing) else { return RedisError.hashNotInteger }
            current = parsed
        }
        let (result, overflow) = current.addingReportingOverflow(amount)
        guard !overflow else { return RedisError.overflow }
        _ = apply(key, .setFields([HashField(field: context.arguments[2], value: Array(String(result).utf8))]), &context, event: "hincrby", eventClass: .hash)
        return .integer(result)
    }

    // MARK: Sets

    mutating func members(_ key: [UInt8], _ context: inout CommandContext) -> Result<[[UInt8]], WrongType> {
        value(key, as: .set, &context).map { value in
            if case .set(let members)? = value { return members }
            return []
        }
    }

    mutating func sadd(_ context: inout CommandContext) -> RESPValue {
        let key = context.arguments[1]
        var unique: [[UInt8]] = []
        do {
            // (No copy of the state may outlive this scope: the write would copy the whole key.)
            guard case .success(let set) = collection(key, as: .set, &context) else { return RedisError.wrongType }
            var seen = Set<[UInt8]>()
            for member in context.arguments.dropFirst(2) where !seen.contains(member) && set?.isVisible(.member(member)) != true {
                seen.insert(member)
                unique.append(member)
            }
        }
        guard !unique.isEmpty else { return .integer(0) }
        _ = apply(key, .addMembers(unique), &context, event: "sadd", eventClass: .set)
        return .integer(Int64(unique.count))
    }

    mutating func srem(_ context: inout CommandContext) -> RESPValue {
        let key = context.arguments[1]
        var removed: [[UInt8]] = []
        var count = 0
        do {
            // (No copy of the state may outlive this scope: the write would copy the whole key.)
            guard case .success(let set) = collection(key, as: .set, &context) else { return RedisError.wrongType }
            guard let set else { return .integer(0) }
            var seen = Set<[UInt8]>()
            for member in context.arguments.dropFirst(2) where set.isVisible(.member(member)) && seen.insert(member).inserted {
                removed.append(member)
            }
            count = set.visibleElementCount(of: .set)
        }
        guard !removed.isEmpty else { return .integer(0) }
        _ = apply(key, .removeMembers(removed), &context, event: "srem", eventClass: .set)
        if removed.count == count {
            context.events.append(KeyspaceEvent("del", key: key, eventClass: .generic))
        }
        return .integer(Int64(removed.count))
    }

    mutating func smembers(_ context: inout CommandContext) -> RESPValue {
        guard case .success(let members) = members(context.arguments[1], &context) else { return RedisError.wrongType }
        return .set(members.map(RESPValue.bulkString))
    }

    mutating func sismember(_ context: inout CommandContext) -> RESPValue {
        guard case .success(let set) = collection(context.arguments[1], as: .set, &context) else { return RedisError.wrongType }
        return .integer(set?.isVisible(.member(context.arguments[2])) == true ? 1 : 0)
    }

    mutating func smismember(_ context: inout CommandContext) -> RESPValue {
        guard case .success(let set) = collection(context.arguments[1], as: .set, &context) else { return RedisError.wrongType }
        return .array(context.arguments.dropFirst(2).map { .integer(set?.isVisible(.member($0)) == true ? 1 : 0) })
    }

    mutating func scard(_ context: inout CommandContext) -> RESPValue {
        guard case .success(let set) = collection(context.arguments[1], as: .set, &context) else { return RedisError.wrongType }
        return .integer(Int64(set?.visibleElementCount(of: .set) ?? 0))
    }

    /// HSCAN/SSCAN key cursor [MATCH pattern] [COUNT count] [NOVALUES]: small collections are
    /// returned whole with cursor 0, as Redis does for its compact encodings.
    mutating func collectionScan(_ context: inout CommandContext, type: KeyType) -> RESPValue {
        guard UInt64(String(decoding: context.arguments[2], as: UTF8.self)) != nil else { return RedisError.invalidCursor }
        var pattern: GlobPattern?
        var noValues = false
        var index = 3
        while index < context.arguments.count {
            let option = context.option(index)
            if option == "NOVALUES" && type == .hash {
                noValues = true
                index += 1
                continue
            }
            guard index + 1 < context.arguments.count else { return RedisError.syntax }
            switch option {
            case "MATCH": pattern = GlobPattern(context.arguments[index + 1])
            case "COUNT":
                guard let count = parseRedisInteger(context.arguments[index + 1]) else { return RedisError.notInteger }
                guard count >= 1 else { return RedisError.syntax }
            default: return RedisError.syntax
            }
            index += 2
        }
        func keep(_ name: [UInt8]) -> Bool { pattern.map { $0.matchesEverything || $0.matches(name) } ?? true }
        var items: [RESPValue] = []
        if type == .hash {
            guard case .success(let fields) = hashFields(context.arguments[1], &context) else { return RedisError.wrongType }
            for field in fields where keep(field.field) {
                items.append(.bulkString(field.field))
                if !noValues { items.append(.bulkString(field.value)) }
            }
        } else {
            guard case .success(let members) = members(context.arguments[1], &context) else { return RedisError.wrongType }
            items = members.filter(keep).map(RESPValue.bulkString)
        }
        return .array([.bulk("0"), .array(items)])
    }
}
