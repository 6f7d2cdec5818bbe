import SessionModel

/// A keyspace notification (https://redis.io/docs/latest/develop/use/keyspace-notifications/):
/// published on `__keyspace@0__:<key>` (message: the event) and `__keyevent@0__:<event>`
/// (message: the key) when `notify-keyspace-events` enables the event's class.
public struct KeyspaceEvent: Hashable, Sendable {
    /// Redis's event classes, by the flag letter of `notify-keyspace-events`.
    public enum EventClass: Character, Hashable, Sendable {
        case generic = "g"
        case string = "$"
        case hash = "h"
        case set = "s"
        case zset = "z"
        case expired = "x"
        case evicted = "e"
        case new = "n"
    }

    public var name: String
    public var key: [UInt8]
    public var eventClass: EventClass

    public init(_ name: String, key: [UInt8], eventClass: EventClass) {
        self.name = name
        self.key = key
        self.eventClass = eventClass
    }
}

/// The parsed `notify-keyspace-events` setting.
public struct NotificationFlags: Hashable, Sendable {
    public var keyspace = false
    public var keyevent = false
    /// Class letters set, among Redis's `g$lshzxetdn`. Those of types this store does not
    /// have (lists, streams, modules) are kept only to be read back as set.
    public var letters: Set<Character> = []
    /// `m`: key-miss events (none are raised here; read back as set).
    public var keyMiss = false

    /// Redis's class letters in the order it prints them; `A` is all but `n`.
    static let classOrder: [Character] = ["g", "$", "l", "s", "h", "z", "x", "e", "t", "d", "n"]
    static let all: Set<Character> = Set(classOrder.filter { $0 != "n" })

    public init() {}

    /// Parses Redis's flag string ("KEA", "Egx", ""); nil for an unknown letter.
    public init?(_ text: String) {
        for flag in text {
            switch flag {
            case "K": keyspace = true
            case "E": keyevent = true
            case "A": letters.formUnion(Self.all)
            case "m": keyMiss = true
            case _ where Self.classOrder.contains(flag): letters.insert(flag)
            default: return nil
            }
        }
    }

    /// The event classes enabled, of those this store raises.
    public var classes: Set<KeyspaceEvent.EventClass> {
        Set(letters.compactMap(KeyspaceEvent.EventClass.init(rawValue:)))
    }

    /// Redis's canonical spelling, as CONFIG GET prints it (notify.c's
    /// keyspaceEventsFlagsToString, checked against redis-server 7.0): `A` or the class letters
    /// in Redis's order (under `A`, `n` is not printed), then `K`, `E`, `m`.
    public var text: String {
        var out = Self.all.isSubset(of: letters) ? "A" : String(Self.classOrder.filter(letters.contains))
        if keyspace { out += "K" }
        if keyevent { out += "E" }
        if keyMiss { out += "m" }
        return out
    }

    public func enables(_ event: KeyspaceEvent) -> Bool {
        (keyspace || keyevent) && letters.contains(event.eventClass.rawValue)
    }
}

extension KeyspaceEvent {
    /// The events a write from another site fires where it is merged, as a Redis replica fires
    /// events for the commands its primary sends: one per kind of operation in the delta.
    public static func merged(_ delta: Delta) -> [KeyspaceEvent] {
        var events: [KeyspaceEvent] = []
        func add(_ name: String, _ eventClass: EventClass) {
            if !events.contains(where: { $0.name == name }) { events.append(KeyspaceEvent(name, key: delta.key, eventClass: eventClass)) }
        }
        for operation in delta.operations {
            switch operation {
            case .setString: add("set", .string)
            case .setField: add("hset", .hash)
            case .removeField: add("hdel", .hash)
            case .addMember: add("sadd", .set)
            case .removeMember: add("srem", .set)
            case .setScore: add("zadd", .zset)
            case .removeScoredMember: add("zrem", .zset)
            case .expire: add("expire", .generic)
            case .persist: add("persist", .generic)
            case .deleteKey: add("del", .generic)
            case .restartKey: break  // the hset, sadd or zadd that follows names the write
            }
        }
        return events
    }
}
