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
    public var classes: Set<KeyspaceEvent.EventClass> = []

    public init() {}

    /// Parses Redis's flag string ("KEA", "Egx", ""); nil for an unknown letter.
    public init?(_ text: String) {
        for flag in text {
            switch flag {
            case "K": keyspace = true
            case "E": keyevent = true
            case "A": classes.formUnion([.generic, .string, .hash, .set, .expired, .evicted])
            case "g", "$", "h", "s", "x", "e", "n": classes.insert(KeyspaceEvent.EventClass(rawValue: flag)!)
            case "l", "z", "t", "m", "d": break  // lists, sorted sets, streams, key-miss, module: nothing to emit here
            default: return nil
            }
        }
    }

    /// Redis's canonical spelling, as CONFIG GET prints it.
    public var text: String {
        var out = ""
        let all: Set<KeyspaceEvent.EventClass> = [.generic, .string, .hash, .set, .expired, .evicted]
        if all.isSubset(of: classes) {
            out += "A"
        } else {
            for flag in [KeyspaceEvent.EventClass.generic, .string, .hash, .set, .expired, .evicted] where classes.contains(flag) {
                out.append(flag.rawValue)
            }
        }
        if classes.contains(.new) { out += "n" }
        if keyspace { out += "K" }
        if keyevent { out += "E" }
        return (keyspace || keyevent) && !classes.isEmpty ? out : (classes.isEmpty ? "" : out)
    }

    public func enables(_ event: KeyspaceEvent) -> Bool {
        (keyspace || keyevent) && classes.contains(event.eventClass)
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
            case .expire: add("expire", .generic)
            case .persist: add("persist", .generic)
            case .deleteKey: add("del", .generic)
            }
        }
        return events
    }
}
