import RESP
import SessionModel

/// Generic key commands: https://redis.io/docs/latest/commands/?group=generic
extension Keyspace {
    mutating func delete(_ context: inout CommandContext) -> RESPValue {
        var removed: Int64 = 0
        for key in context.arguments.dropFirst()
        where lookup(key, now: context.now, events: &context.events) != nil
            && apply(key, .delete, &context, event: "del", eventClass: .generic)
        {
            removed += 1
        }
        return .integer(removed)
    }

    mutating func exists(_ context: inout CommandContext) -> RESPValue {
        var found: Int64 = 0
        for key in context.arguments.dropFirst() where type(of: key, now: context.now, events: &context.events) != nil {
            found += 1
        }
        return .integer(found)
    }

    mutating func type(_ context: inout CommandContext) -> RESPValue {
        .simpleString(type(of: context.arguments[1], now: context.now, events: &context.events)?.rawValue ?? "none")
    }

    /// EXPIRE/PEXPIRE/EXPIREAT/PEXPIREAT key time [NX|XX|GT|LT].
    mutating func expire(_ context: inout CommandContext, unitMilliseconds: UInt64, absolute: Bool) -> RESPValue {
        let key = context.arguments[1]
        var nx = false, xx = false, gt = false, lt = false
        for index in 3..<max(3, context.arguments.count) {
            switch context.option(index) {
            case "NX": nx = true
            case "XX": xx = true
            case "GT": gt = true
            case "LT": lt = true
            default: return .error("ERR Unsupported option \(String(decoding: context.arguments[index], as: UTF8.self))")
            }
        }
        if nx && (xx || gt || lt) { return RedisError.expireOptionsNXWithOthers }
        if gt && lt { return RedisError.expireOptionsGTAndLT }
        guard let raw = parseRedisInteger(context.arguments[2]) else { return RedisError.notInteger }

        // Redis: a time that overflows is an error; a time not in the future deletes the key.
        let at: UInt64
        if raw <= 0 {
            at = 0
        } else {
            guard let computed = Self.absoluteExpiry(raw, unitMilliseconds: unitMilliseconds, absolute: absolute, now: context.now) else {
                return RedisError.invalidExpire(context.name)
            }
            at = computed
        }
        guard lookup(key, now: context.now, events: &context.events) != nil, let stored = state(of: key) else { return .integer(0) }
        let current = stored.expireAt
        if nx && current != nil { return .integer(0) }
        if xx && current == nil { return .integer(0) }
        if gt && (current == nil || at <= current!) { return .integer(0) }
        if lt, let current, at >= current { return .integer(0) }
        if at <= context.now {
            _ = apply(key, .delete, &context, event: "del", eventClass: .generic)
        } else {
            _ = apply(key, .expire(atMilliseconds: at), &context, event: "expire", eventClass: .generic)
        }
        return .integer(1)
    }

    mutating func persist(_ context: inout CommandContext) -> RESPValue {
        let key = context.arguments[1]
        guard lookup(key, now: context.now, events: &context.events) != nil else { return .integer(0) }
        return .integer(apply(key, .persist, &context, event: "persist", eventClass: .generic) ? 1 : 0)
    }

    /// TTL/PTTL (remaining) and EXPIRETIME/PEXPIRETIME (absolute): -2 missing, -1 no expiry.
    mutating func ttl(_ context: inout CommandContext, unitMilliseconds: UInt64, absolute: Bool) -> RESPValue {
        let key = context.arguments[1]
        guard lookup(key, now: context.now, events: &context.events) != nil, let stored = state(of: key) else { return .integer(-2) }
        guard let at = stored.expireAt else { return .integer(-1) }
        if absolute { return .integer(Int64(at / unitMilliseconds)) }
        let remaining = at >= context.now ? at - context.now : 0
        // Redis rounds TTL to the nearest second.
        return .integer(Int64(unitMilliseconds == 1 ? remaining : (remaining + 500) / 1_000))
    }

    mutating func rename(_ context: inout CommandContext, onlyIfDestinationMissing: Bool) -> RESPValue {
        let source = context.arguments[1], destination = context.arguments[2]
        guard lookup(source, now: context.now, events: &context.events) != nil else { return RedisError.noSuchKey }
        if source == destination { return onlyIfDestinationMissing ? .integer(0) : .ok }
        if onlyIfDestinationMissing, lookup(destination, now: context.now, events: &context.events) != nil {
            return .integer(0)
        }
        let timestamp = clock.tick(physicalMilliseconds: context.now)
        let sourceLifeStart = lifeStart(of: source, now: context.now)
        let destinationLifeStart = lifeStart(of: destination, now: context.now)
        var sourceStored = keys.removeValue(forKey: source) ?? StoredKey()
        var destinationStored = keys.removeValue(forKey: destination) ?? StoredKey()
        collected[destination] = nil
        let destinationExisted = destinationStored.state.value(now: context.now, policy: conflict(for: destination)) != nil
        guard
            let deltas = KeyState.rename(
                source: &sourceStored.state,
                sourceKey: source,
                destination: &destinationStored.state,
                destinationKey: destination,
                site: configuration.site,
                timestamp: timestamp,
                now: context.now,
                sourcePolicy: policy(for: source),
                destinationPolicy: policy(for: destination),
                sourceLifeStart: sourceLifeStart,
                destinationLifeStart: destinationLifeStart
            )
        else { preconditionFailure("Invalid state: RENAME of a key that exists produced no deltas") }
        store(source, sourceStored, changed: true)
        store(destination, destinationStored, changed: true)
        statistics.keysDestroyed += destinationExisted ? 1 : 0
        context.deltas += [deltas.source, deltas.destination]
        context.events.append(KeyspaceEvent("rename_from", key: source, eventClass: .generic))
        context.events.append(KeyspaceEvent("rename_to", key: destination, eventClass: .generic))
        return onlyIfDestinationMissing ? .integer(1) : .ok
    }

    /// SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]. Keys are visited in the order of a
    /// fixed 64-bit hash of their name; the cursor is the next hash to visit. A key present for
    /// the whole iteration is returned exactly once, and cursors stay valid across restarts.
    mutating func scan(_ context: inout CommandContext) -> RESPValue {
        guard let cursor = UInt64(String(decoding: context.arguments[1], as: UTF8.self)) else { return RedisError.invalidCursor }
        var pattern: GlobPattern?
        var countHint = 10
        var typeFilter: KeyType?
        var filterUnknownType = false
        var index = 2
        while index < context.arguments.count {
            let option = context.option(index)
            guard index + 1 < context.arguments.count else { return RedisError.syntax }
            let argument = context.arguments[index + 1]
            switch option {
            case "MATCH": pattern = GlobPattern(argument)
            case "COUNT":
                guard let parsed = parseRedisInteger(argument) else { return RedisError.notInteger }
                guard parsed >= 1 else { return RedisError.syntax }
                countHint = Int(min(parsed, Int64(Int32.max)))
            case "TYPE":
                typeFilter = KeyType(rawValue: String(decoding: argument, as: UTF8.self).lowercased())
                filterUnknownType = typeFilter == nil
            default: return RedisError.syntax
            }
            index += 2
        }
        let batch: [(hash: UInt64, key: [UInt8])]
        var next: UInt64
        if let partitioning = configuration.partitioning {
            // A site of several nodes: the cursor names a partition (top bits) and a position
            // in it, and each call visits one partition, on its primary.
            let partition = Self.scanPartition(ofCursor: cursor)
            guard partition < partitioning.partitionCount else { return RedisError.invalidCursor }
            (batch, next) = Self.scanBatch(partitionKeys[partition], cursor: cursor & Self.scanPositionMask, count: countHint) {
                max(1, Self.scanHash($0) >> UInt64(Self.scanPartitionBits))
            }
            if next == 0 && partition + 1 < partitioning.partitionCount {
                next = UInt64(partition + 1) << UInt64(64 - Self.scanPartitionBits)
            } else if next != 0 {
                next |= UInt64(partition) << UInt64(64 - Self.scanPartitionBits)
            }
        } else {
            (batch, next) = Self.scanBatch(keys.keys, cursor: cursor, count: countHint, hash: Self.scanHash)
        }
        var found: [RESPValue] = []
        for (_, stored) in batch {
            // The cursor walks every database's keys; a call answers those of the client's.
            guard let (database, key) = DatabaseKeys.split(stored), database == context.database else { continue }
            guard let type = type(of: stored, now: context.now, events: &context.events) else { continue }
            if filterUnknownType { continue }
            if let typeFilter, type != typeFilter { continue }
            if let pattern, !pattern.matchesEverything, !pattern.matches(key) { continue }
            found.append(.bulkString(key))
        }
        return .array([.bulk(String(next)), .array(found)])
    }

    /// The SCAN order: a fixed hash, never 0 (cursor 0 means "start" and "done").
    static func scanHash(_ key: [UInt8]) -> UInt64 {
        max(1, StateDigest(of: key).low)
    }

    /// With partitions, a cursor's top bits are the partition (16,384 at most: 14 bits).
    static let scanPartitionBits = 14
    static let scanPositionMask: UInt64 = (1 << UInt64(64 - scanPartitionBits)) - 1

    /// The partition a SCAN cursor visits on a site of several nodes.
    public static func scanPartition(ofCursor cursor: UInt64) -> Int {
        Int(cursor >> UInt64(64 - scanPartitionBits))
    }

    /// The `count` keys of `candidates` with the smallest hashes at or above `cursor`, and the
    /// next cursor (0: none left). Keys sharing the last hash are all in this batch or all in
    /// the next one.
    static func scanBatch(
        _ candidates: some Collection<[UInt8]>, cursor: UInt64, count: Int, hash: ([UInt8]) -> UInt64
    ) -> (batch: [(hash: UInt64, key: [UInt8])], next: UInt64) {
        var batch: [(hash: UInt64, key: [UInt8])] = []
        for key in candidates {
            let value = hash(key)
            guard value >= cursor else { continue }
            if batch.count < count {
                batch.append((value, key))
                if batch.count == count { batch.sort { $0.hash < $1.hash } }
            } else if value < batch[batch.count - 1].hash {
                let position = batch.firstIndex { $0.hash > value } ?? batch.count - 1
                batch.insert((value, key), at: position)
                batch.removeLast()
            }
        }
        batch.sort { $0.hash < $1.hash }
        var next: UInt64 = 0
        if batch.count == count, let last = batch.last {
            let boundary = last.hash
            let sameHash = candidates.filter { hash($0) == boundary }
            batch.removeAll { $0.hash == boundary }
            batch += sameHash.map { (boundary, $0) }
            next = boundary == UInt64.max ? 0 : boundary + 1
        }
        return (batch, next)
    }

    // MARK: Several partitions of a site (each node answers for the partitions it leads)

    /// Visible keys of `database` in `partitions` (DBSIZE over a site of several nodes).
    public func count(now: UInt64, inPartitions partitions: Set<Int>, database: Int) -> Int {
        partitions.reduce(0) { total, partition in
            total + partitionKeys[partition].count { key in
                DatabaseKeys.database(of: key) == database && (keys[key].map { isVisible($0.state, key: key, now: now) } ?? false)
            }
        }
    }

    /// Visible keys of `database` in `partitions` matching `pattern`, named as in that
    /// database (KEYS over a site of several nodes). Expired keys are skipped, not expired
    /// here: that stays the sweep's work.
    public func keys(matching pattern: [UInt8], inPartitions partitions: Set<Int>, now: UInt64, database: Int) -> [[UInt8]] {
        let glob = GlobPattern(pattern)
        return partitions.sorted().flatMap { partition in
            partitionKeys[partition].compactMap { stored -> [UInt8]? in
                guard let (keyDatabase, key) = DatabaseKeys.split(stored), keyDatabase == database,
                    glob.matchesEverything || glob.matches(key), keys[stored].map({ isVisible($0.state, key: stored, now: now) }) ?? false
                else { return nil }
                return key
            }
        }
    }

    /// Deletes every key of `database` (nil: of every database) in `partitions` (FLUSHDB and
    /// FLUSHALL over a site of several nodes); returns the deltas to replicate.
    public mutating func flush(partitions: Set<Int>, now: UInt64, database: Int?) -> [Delta] {
        var deltas: [Delta] = []
        for partition in partitions.sorted() {
            for key in Array(partitionKeys[partition]) where database == nil || DatabaseKeys.database(of: key) == database {
                guard let stored = keys[key], isVisible(stored.state, key: key, now: now) || stored.state.isExpired(now: now) else { continue }
                if let delta = write(key, .delete, now: now) { deltas.append(delta) }
            }
        }
        return deltas
    }

    func isVisible(_ state: KeyState, key: [UInt8], now: UInt64) -> Bool {
        !state.isEmpty && !state.isExpired(now: now) && state.visibleType(policy: conflict(for: key)) != nil
    }

    /// KEYS pattern: the client's database's keys, in its names.
    mutating func keysMatching(_ context: inout CommandContext) -> RESPValue {
        let pattern = GlobPattern(context.arguments[1])
        var found: [[UInt8]] = []
        for stored in Array(keys.keys) {
            guard let (database, key) = DatabaseKeys.split(stored), database == context.database,
                pattern.matchesEverything || pattern.matches(key)
            else { continue }
            if type(of: stored, now: context.now, events: &context.events) != nil { found.append(key) }
        }
        return .array(found.sorted { $0.lexicographicallyPrecedes($1) }.map(RESPValue.bulkString))
    }

    /// FLUSHDB (the keys of `database`) and FLUSHALL (nil: of every database).
    mutating func flush(_ context: inout CommandContext, database: Int?) -> RESPValue {
        if context.arguments.count > 2 { return RedisError.syntax }
        if context.arguments.count == 2, !["ASYNC", "SYNC"].contains(context.option(1)) { return RedisError.syntax }
        // Keys expired but kept for their grace period are deleted too (as by the flush of a
        // site of several nodes): left alone, a touch another site made before their expiry
        // would bring them back after the flush.
        for key in Array(keys.keys) where database == nil || DatabaseKeys.database(of: key) == database {
            guard let stored = keys[key], isVisible(stored.state, key: key, now: context.now) || stored.state.isExpired(now: context.now) else { continue }
            if let delta = write(key, .delete, now: context.now) { context.deltas.append(delta) }
        }
        context.events.removeAll()
        // Only FLUSHALL may drop the whole table at once; FLUSHDB's deletes released their
        // keys already (without tombstones, an emptied key is dropped as it is written).
        if !configuration.retainTombstones && database == nil {
            keys.removeAll()
            partitionKeys = partitionKeys.map { _ in [] }
            merkle = merkle.map { KeptMerkleLeaves(layout: $0.layout) }
            expiryQueue.removeAll()
            usedMemoryBytes = 0
        }
        return .ok
    }
}
