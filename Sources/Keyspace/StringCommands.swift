import RESP
import SessionModel

/// Strings: https://redis.io/docs/latest/commands/?group=string
extension Keyspace {
    /// The expiry options SET and GETEX share, as an absolute time.
    enum ExpiryOption {
        case none
        case at(UInt64)
        case keep
        case persist
    }

    /// Converts EX/PX/EXAT/PXAT `value` to an absolute time in ms; nil when out of range.
    static func absoluteExpiry(_ value: Int64, unitMilliseconds: UInt64, absolute: Bool, now: UInt64) -> UInt64? {
        guard value > 0 else { return nil }
        let (milliseconds, overflow) = UInt64(value).multipliedReportingOverflow(by: unitMilliseconds)
        guard !overflow, milliseconds <= UInt64(Int64.max) else { return nil }
        if absolute { return milliseconds }
        let (at, overflow2) = milliseconds.addingReportingOverflow(now)
        guard !overflow2, at <= UInt64(Int64.max) else { return nil }
        return at
    }

    struct ExpiryError: Error {
        var reply: RESPValue
    }

    /// The absolute time the EX/PX/EXAT/PXAT option at `index` names (its value follows it;
    /// `index` moves onto the value), or the error Redis gives for it.
    static func expiryTime(_ option: String, at index: inout Int, _ context: CommandContext) -> Result<UInt64, ExpiryError> {
        guard index + 1 < context.arguments.count else { return .failure(ExpiryError(reply: RedisError.syntax)) }
        index += 1
        guard let raw = parseRedisInteger(context.arguments[index]) else { return .failure(ExpiryError(reply: RedisError.notInteger)) }
        let unit: UInt64 = option.hasPrefix("P") ? 1 : 1_000
        guard let at = absoluteExpiry(raw, unitMilliseconds: unit, absolute: option.hasSuffix("AT"), now: context.now) else {
            return .failure(ExpiryError(reply: RedisError.invalidExpire(context.name)))
        }
        return .success(at)
    }

    mutating func get(_ context: inout CommandContext) -> RESPValue {
        switch value(context.arguments[1], as: .string, &context) {
        case .failure: return RedisError.wrongType
        case .success(let value?):
            countRead(found: true)
            guard case .string(let bytes) = value else { return .null }
            return .bulkString(bytes)
        case .success(nil):
            countRead(found: false)
            return .null
        }
    }

    mutating func set(_ context: inout CommandContext) -> RESPValue {
        let key = context.arguments[1], newValue = context.arguments[2]
        var onlyIfMissing = false, onlyIfExists = false, returnOld = false
        var expiry = ExpiryOption.none
        var index = 3
        while index < context.arguments.count {
            let option = context.option(index)
            switch option {
            case "NX" where !onlyIfExists: onlyIfMissing = true
            case "XX" where !onlyIfMissing: onlyIfExists = true
            case "GET": returnOld = true
            case "KEEPTTL":
                guard case .none = expiry else { return RedisError.syntax }
                expiry = .keep
            case "EX", "PX", "EXAT", "PXAT":
                guard case .none = expiry else { return RedisError.syntax }
                switch Self.expiryTime(option, at: &index, context) {
                case .success(let at): expiry = .at(at)
                case .failure(let error): return error.reply
                }
            default:
                return RedisError.syntax
            }
            index += 1
        }
        var old: [UInt8]?
        let exists: Bool
        var found: KeyIndex?
        if returnOld {
            switch value(key, as: .string, &context) {
            case .failure: return RedisError.wrongType
            case .success(let value):
                if case .string(let bytes)? = value { old = bytes }
                exists = value != nil
            }
        } else {
            // Whether the key is there, not its value: building the value cost a sixth of a SET.
            // An expired key still fires its `expired` event here, as in Redis.
            // The key's place in the table is kept for the write: one lookup per SET, not two.
            let visible = located(key, now: context.now, events: &context.events)
            exists = visible.type != nil
            found = visible.index
        }
        if (onlyIfMissing && exists) || (onlyIfExists && !exists) {
            return returnOld ? .bulkOrNull(old) : .null
        }
        storeString(key, newValue, expiry: expiry, &context, at: found)
        return returnOld ? .bulkOrNull(old) : .ok
    }

    /// SET's effect once its conditions passed: the value, then the expiry; an absolute time
    /// already past deletes the key (as Redis does for EXAT/PXAT in the past).
    /// `found`: the key's place in the table, when the caller just looked it up.
    mutating func storeString(_ key: [UInt8], _ newValue: [UInt8], expiry: ExpiryOption, _ context: inout CommandContext, at found: KeyIndex? = nil) {
        if case .at(let at) = expiry, at <= context.now {
            _ = apply(key, .delete, &context, event: "del", eventClass: .generic)
            return
        }
        let keep: Bool
        if case .keep = expiry { keep = true } else { keep = false }
        _ = apply(key, .setString(newValue, keepExpiry: keep), &context, event: "set", eventClass: .string, at: found)
        if case .at(let at) = expiry {
            _ = apply(key, .expire(atMilliseconds: at), &context, event: "expire", eventClass: .generic)
        }
    }

    mutating func setWithExpiry(_ context: inout CommandContext, unitMilliseconds: UInt64) -> RESPValue {
        guard let raw = parseRedisInteger(context.arguments[2]) else { return RedisError.notInteger }
        guard let at = Self.absoluteExpiry(raw, unitMilliseconds: unitMilliseconds, absolute: false, now: context.now) else {
            return RedisError.invalidExpire(context.name)
        }
        storeString(context.arguments[1], context.arguments[3], expiry: .at(at), &context)
        return .ok
    }

    mutating func setnx(_ context: inout CommandContext) -> RESPValue {
        let key = context.arguments[1]
        guard lookup(key, now: context.now, events: &context.events) == nil else { return .integer(0) }
        storeString(key, context.arguments[2], expiry: .none, &context)
        return .integer(1)
    }

    /// GETSET key value (https://redis.io/docs/latest/commands/getset/): SET key value GET,
    /// deprecated since Redis 6.2 but still sent by older session and cache libraries.
    mutating func getset(_ context: inout CommandContext) -> RESPValue {
        let key = context.arguments[1]
        switch value(key, as: .string, &context) {
        case .failure: return RedisError.wrongType
        case .success(let old):
            countRead(found: old != nil)
            storeString(key, context.arguments[2], expiry: .none, &context)
            if case .string(let bytes)? = old { return .bulkString(bytes) }
            return .null
        }
    }

    mutating func getdel(_ context: inout CommandContext) -> RESPValue {
        let key = context.arguments[1]
        switch value(key, as: .string, &context) {
        case .failure: return RedisError.wrongType
        case .success(nil): return .null
        case .success(.string(let bytes)?):
            _ = apply(key, .delete, &context, event: "del", eventClass: .generic)
            return .bulkString(bytes)
        case .success(_?): return .null
        }
    }

    mutating func getex(_ context: inout CommandContext) -> RESPValue {
        let key = context.arguments[1]
        var expiry = ExpiryOption.none
        var index = 2
        while index < context.arguments.count {
            let option = context.option(index)
            switch option {
            case "PERSIST":
                guard case .none = expiry else { return RedisError.syntax }
                expiry = .persist
            case "EX", "PX", "EXAT", "PXAT":
                guard case .none = expiry else { return RedisError.syntax }
                switch Self.expiryTime(option, at: &index, context) {
                case .success(let at): expiry = .at(at)
                case .failure(let error): return error.reply
                }
            default:
                return RedisError.syntax
            }
            index += 1
        }
        switch value(key, as: .string, &context) {
        case .failure: return RedisError.wrongType
        case .success(nil):
            countRead(found: false)
            return .null
        case .success(let value?):
            countRead(found: true)
            switch expiry {
            case .at(let at) where at <= context.now:
                _ = apply(key, .delete, &context, event: "del", eventClass: .generic)
            case .at(let at):
                _ = apply(key, .expire(atMilliseconds: at), &context, event: "expire", eventClass: .generic)
            case .persist:
                _ = apply(key, .persist, &context, event: "persist", eventClass: .generic)
            case .none, .keep:
                break
            }
            guard case .string(let bytes) = value else { return .null }
            return .bulkString(bytes)
        }
    }

    mutating func mget(_ context: inout CommandContext) -> RESPValue {
        var replies: [RESPValue] = []
        for key in context.arguments.dropFirst() {
            if case .string(let bytes)? = lookup(key, now: context.now, events: &context.events) {
                countRead(found: true)
                replies.append(.bulkString(bytes))
            } else {
                countRead(found: false)
                replies.append(.null)
            }
        }
        return .array(replies)
    }

    mutating func mset(_ context: inout CommandContext, onlyIfNoneExist: Bool) -> RESPValue {
        guard context.arguments.count % 2 == 1 else { return RedisError.wrongArity(context.name) }
        let pairs = stride(from: 1, to: context.arguments.count, by: 2).map { (context.arguments[$0], context.arguments[$0 + 1]) }
        if onlyIfNoneExist {
            for (key, _) in pairs where lookup(key, now: context.now, events: &context.events) != nil {
                return .integer(0)
            }
        }
        for (key, newValue) in pairs {
            storeString(key, newValue, expiry: .none, &context)
        }
        return onlyIfNoneExist ? .integer(1) : .ok
    }

    mutating func append(_ context: inout CommandContext) -> RESPValue {
        let key = context.arguments[1]
        switch value(key, as: .string, &context) {
        case .failure: return RedisError.wrongType
        case .success(let value):
            var current: [UInt8] = []
            if case .string(let bytes)? = value { current = bytes }
            guard current.count + context.arguments[2].count <= RESPLimits.defaultMaximumBulkBytes else { return RedisError.stringTooLong }
            _ = apply(key, .append(context.arguments[2]), &context, event: "append", eventClass: .string)
            return .integer(Int64(current.count + context.arguments[2].count))
        }
    }

    mutating func strlen(_ context: inout CommandContext) -> RESPValue {
        switch value(context.arguments[1], as: .string, &context) {
        case .failure: return RedisError.wrongType
        case .success(.string(let bytes)?): return .integer(Int64(bytes.count))
        case .success: return .integer(0)
        }
    }

    mutating func increment(_ context: inout CommandContext, by amount: Int64) -> RESPValue {
        let key = context.arguments[1]
        switch value(key, as: .string, &context) {
        case .failure: return RedisError.wrongType
        case .success(let value):
            var current: Int64 = 0
            if case .string(let bytes)? = value {
                guard let parsed = parseRedisInteger(bytes) else { return RedisError.notInteger }
                current = parsed
            }
            let (result, overflow) = current.addingReportingOverflow(amount)
            guard !overflow else { return RedisError.overflow }
            _ = apply(key, .setString(Array(String(result).utf8), keepExpiry: true), &context, event: "incrby", eventClass: .string)
            return .integer(result)
        }
    }
}
