import Testing
import SessionModel

extension String {
    var bytes: [UInt8] { Array(utf8) }
}

/// One site of a scenario: its clock, its keys and the merge events it saw. No I/O: tests move
/// deltas between sites by hand.
struct TestSite {
    let id: SiteID
    var physicalMilliseconds: UInt64
    var clock = HybridLogicalClock()
    var keys: [[UInt8]: KeyState] = [:]
    var policy: MergePolicy
    var events: [MergeEvent] = []

    init(_ id: UInt32, physicalMilliseconds: UInt64 = 1_000_000, policy: MergePolicy = .default) {
        self.id = SiteID(id)
        self.physicalMilliseconds = physicalMilliseconds
        self.policy = policy
    }

    var now: UInt64 { physicalMilliseconds }

    /// A local write; `timestamp` overrides the clock to stage clock anomalies.
    @discardableResult
    mutating func write(_ key: String, _ write: KeyWrite, timestamp: HLCTimestamp? = nil) -> Delta? {
        let stamp = timestamp ?? clock.tick(physicalMilliseconds: physicalMilliseconds)
        var state = keys[key.bytes] ?? KeyState()
        let before = state
        let delta = state.write(write, key: key.bytes, site: id, timestamp: stamp, now: now, policy: policy)
        if let delta {
            // A write applies its delta visiting only what it touched: the same state as
            // joining the whole delta state.
            var joined = before
            _ = joined.merge(delta.state, policy: policy)
            #expect(state == joined, "a local write differs from joining its delta: \(write)")
        }
        keys[key.bytes] = state
        return delta
    }

    mutating func rename(_ source: String, to destination: String) -> (source: Delta, destination: Delta)? {
        var sourceState = keys[source.bytes] ?? KeyState()
        var destinationState = keys[destination.bytes] ?? KeyState()
        let deltas = KeyState.rename(
            source: &sourceState,
            sourceKey: source.bytes,
            destination: &destinationState,
            destinationKey: destination.bytes,
            site: id,
            timestamp: clock.tick(physicalMilliseconds: physicalMilliseconds),
            now: now,
            sourcePolicy: policy,
            destinationPolicy: policy
        )
        keys[source.bytes] = sourceState
        keys[destination.bytes] = destinationState
        return deltas
    }

    mutating func receive(_ delta: Delta) {
        _ = try? clock.receive(delta.timestamp, physicalMilliseconds: physicalMilliseconds)
        var state = keys[delta.key] ?? KeyState()
        // A delta joins visiting only the elements it names when it can; the whole-state join
        // must give the same state and events in every case.
        var joinedWhole = state
        let whole = joinedWhole.merge(delta.state, policy: policy)
        let outcome = state.merge(delta, policy: policy)
        #expect(state == joinedWhole && outcome == whole, "a delta's join differs from the whole-state join: \(delta)")
        events += outcome.events
        keys[delta.key] = state
    }

    mutating func receive(_ deltas: [Delta?]) {
        for delta in deltas {
            if let delta { receive(delta) }
        }
    }

    func value(_ key: String) -> KeyValue? {
        keys[key.bytes]?.value(now: now, policy: policy.conflict)
    }

    func state(_ key: String) -> KeyState {
        keys[key.bytes] ?? KeyState()
    }

    func field(_ key: String, _ field: String) -> String? {
        guard case .hash(let fields)? = value(key) else { return nil }
        return fields.first { $0.field == field.bytes }.map { String(decoding: $0.value, as: UTF8.self) }
    }
}

func fields(_ pairs: [(String, String)]) -> KeyWrite {
    .setFields(pairs.map { HashField(field: $0.0.bytes, value: $0.1.bytes) })
}

func hash(_ pairs: [(String, String)]) -> KeyValue {
    .hash(pairs.map { HashField(field: $0.0.bytes, value: $0.1.bytes) }.sorted { $0.field.lexicographicallyPrecedes($1.field) })
}

struct NoDeltaError: Error, CustomStringConvertible {
    var write: String
    var description: String { "the write \(write) produced no delta" }
}

extension TestSite {
    /// A write the scenario expects to change the key.
    @discardableResult
    mutating func commit(_ key: String, _ write: KeyWrite, timestamp: HLCTimestamp? = nil) throws -> Delta {
        guard let delta = self.write(key, write, timestamp: timestamp) else { throw NoDeltaError(write: "\(write)") }
        return delta
    }

    mutating func commitRename(_ source: String, to destination: String) throws -> (source: Delta, destination: Delta) {
        guard let deltas = rename(source, to: destination) else { throw NoDeltaError(write: "RENAME \(source)") }
        return deltas
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads test knobs from the environment (seed replay, history counts).
struct ProcessInfoEnvironment {
    func integer(_ name: String) -> Int? {
        guard let raw = getenv(name) else { return nil }
        return Int(String(cString: raw))
    }
}
