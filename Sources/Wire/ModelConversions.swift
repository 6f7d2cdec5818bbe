#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import SessionModel
import SwiftProtobuf

// Model <-> wire. Encoding is canonical (sorted elements, entries and vector entries), so equal
// model values give equal bytes. Decoding validates everything a peer could get wrong and
// throws `WireError`.

extension Sessionfed_V1_Dot {
    init(_ dot: Dot) {
        self.init()
        site = dot.site.rawValue
        counter = dot.counter
    }

    func model(in message: String) throws(WireError) -> Dot {
        guard counter > 0 else {
            throw .invalidValue(message: message, field: "dot.counter", reason: "must be at least 1")
        }
        guard counter <= Dot.maximumCounter else {
            throw .invalidValue(message: message, field: "dot.counter", reason: "exceeds \(Dot.maximumCounter)")
        }
        return Dot(site: SiteID(site), counter: counter)
    }
}

extension Sessionfed_V1_VersionVector {
    init(_ vector: VersionVector) {
        self.init()
        entries = vector.entries.map { entry in
            var wire = Sessionfed_V1_VersionVectorEntry()
            wire.site = entry.site.rawValue
            wire.counter = entry.counter
            return wire
        }
    }

    func model(in message: String) throws(WireError) -> VersionVector {
        var counters: [SiteID: UInt64] = [:]
        for entry in entries {
            let site = SiteID(entry.site)
            guard counters[site] == nil else {
                throw .invalidValue(message: message, field: "version_vector", reason: "site \(entry.site) appears twice")
            }
            guard entry.counter <= Dot.maximumCounter else {
                throw .invalidValue(message: message, field: "version_vector", reason: "counter exceeds \(Dot.maximumCounter)")
            }
            counters[site] = entry.counter
        }
        return VersionVector(counters)
    }
}

extension Sessionfed_V1_HlcTimestamp {
    init(_ timestamp: HLCTimestamp) {
        self.init()
        physicalMs = timestamp.physicalMilliseconds
        logical = timestamp.logical
    }

    var model: HLCTimestamp {
        HLCTimestamp(physicalMilliseconds: physicalMs, logical: logical)
    }
}

extension Sessionfed_V1_CausalContext {
    init(_ context: CausalContext) {
        self.init()
        vector = Sessionfed_V1_VersionVector(context.vector)
        ranges = context.cloud.map { run in
            var wire = Sessionfed_V1_DotRange()
            wire.site = run.site.rawValue
            wire.first = run.first
            wire.last = run.last
            return wire
        }
    }

    func model(in message: String) throws(WireError) -> CausalContext {
        var runs: [DotRange] = []
        for dot in cloud { runs.append(DotRange(try dot.model(in: message))) }
        for run in ranges {
            guard run.first >= 1, run.first <= run.last else {
                throw .invalidValue(message: message, field: "ranges", reason: "\(run.first)..\(run.last) is not a range of counters from 1")
            }
            guard run.last <= Dot.maximumCounter else {
                throw .invalidValue(message: message, field: "ranges", reason: "counter exceeds \(Dot.maximumCounter)")
            }
            runs.append(DotRange(site: SiteID(run.site), first: run.first, last: run.last))
        }
        return CausalContext(vector: try vector.model(in: message), cloud: runs)
    }
}

extension Sessionfed_V1_Element {
    init(_ element: Element) {
        self.init()
        switch element {
        case .string: kind = .stringValue(true)
        case .field(let name): kind = .hashField(Data(name))
        case .member(let name): kind = .setMember(Data(name))
        case .expiry: kind = .expiry(true)
        case .restart: kind = .restart(true)
        case .sortedMember(let name): kind = .sortedSetMember(Data(name))
        }
    }

    func model(in message: String) throws(WireError) -> Element {
        switch kind {
        case .stringValue: return .string
        case .hashField(let name): return .field(Array(name))
        case .setMember(let name): return .member(Array(name))
        case .expiry: return .expiry
        case .restart: return .restart
        case .sortedSetMember(let name): return .sortedMember(Array(name))
        case nil: throw .missingField(message: message, field: "element.kind")
        }
    }
}

extension Sessionfed_V1_ElementEntry {
    init(element: Element, entry: ElementEntry) {
        self.init()
        self.element = Sessionfed_V1_Element(element)
        dot = Sessionfed_V1_Dot(entry.dot)
        timestamp = Sessionfed_V1_HlcTimestamp(entry.timestamp)
        switch entry.payload {
        case .bytes(let bytes): payload = .value(Data(bytes))
        case .present: payload = .present(true)
        case .expireAt(let at): payload = .expireAtMs(at)
        case .persist: payload = .persist(true)
        case .score(let score): payload = .score(score)
        }
        if !entry.deletesSeen.isEmpty {
            deletesSeen = Sessionfed_V1_VersionVector(entry.deletesSeen)
        }
    }

    func model() throws(WireError) -> (Element, ElementEntry) {
        let message = "ElementEntry"
        guard hasElement else { throw .missingField(message: message, field: "element") }
        guard hasDot else { throw .missingField(message: message, field: "dot") }
        let element = try self.element.model(in: message)
        let modelPayload: ElementPayload
        switch (element, payload) {
        case (.string, .value(let bytes)?), (.field, .value(let bytes)?):
            modelPayload = .bytes(Array(bytes))
        case (.member, .present?), (.restart, .present?):
            modelPayload = .present
        case (.expiry, .expireAtMs(let at)?):
            modelPayload = .expireAt(at)
        case (.expiry, .persist?):
            modelPayload = .persist
        case (.sortedMember, .score(let score)?):
            guard !score.isNaN else { throw .invalidValue(message: message, field: "score", reason: "is NaN") }
            modelPayload = .score(score)
        case (_, nil):
            throw .missingField(message: message, field: "payload")
        default:
            throw .invalidValue(message: message, field: "payload", reason: "does not fit element \(element)")
        }
        let entry = ElementEntry(
            dot: try dot.model(in: message),
            timestamp: timestamp.model,
            payload: modelPayload,
            deletesSeen: try deletesSeen.model(in: message)
        )
        return (element, entry)
    }
}

extension Sessionfed_V1_KeyState {
    public init(key: [UInt8], state: KeyState) {
        self.init()
        self.key = Data(key)
        context = Sessionfed_V1_CausalContext(state.context)
        deletes = Sessionfed_V1_VersionVector(state.deletes)
        for (element, elementEntries) in state.elements.ordered {
            for entry in elementEntries {
                entries.append(Sessionfed_V1_ElementEntry(element: element, entry: entry))
            }
        }
    }

    public func model() throws(WireError) -> (key: [UInt8], state: KeyState) {
        var elements: [Element: [ElementEntry]] = [:]
        for wire in entries {
            let (element, entry) = try wire.model()
            elements[element, default: []].append(entry)
        }
        let state = KeyState(
            context: try context.model(in: "KeyState.context"),
            deletes: try deletes.model(in: "KeyState.deletes"),
            elements: elements
        )
        return (Array(key), state)
    }
}

extension Sessionfed_V1_Operation {
    init(_ operation: SessionModel.Operation) {
        self.init()
        switch operation {
        case .setString(let value): kind = .setString(Data(value))
        case .setField(let field, let value):
            var pair = Sessionfed_V1_HashFieldValue()
            pair.field = Data(field)
            pair.value = Data(value)
            kind = .setField(pair)
        case .removeField(let field): kind = .removeField(Data(field))
        case .addMember(let member): kind = .addMember(Data(member))
        case .removeMember(let member): kind = .removeMember(Data(member))
        case .expire(let at): kind = .expireAtMs(at)
        case .persist: kind = .persist(true)
        case .deleteKey: kind = .deleteKey(true)
        case .restartKey: kind = .restartKey(true)
        case .setScore(let member, let score):
            var scored = Sessionfed_V1_ScoredMember()
            scored.member = Data(member)
            scored.score = score
            kind = .setScore(scored)
        case .removeScoredMember(let member): kind = .removeScoredMember(Data(member))
        }
    }

    func model() throws(WireError) -> SessionModel.Operation {
        switch kind {
        case .setString(let value): return .setString(Array(value))
        case .setField(let pair): return .setField(Array(pair.field), value: Array(pair.value))
        case .removeField(let field): return .removeField(Array(field))
        case .addMember(let member): return .addMember(Array(member))
        case .removeMember(let member): return .removeMember(Array(member))
        case .expireAtMs(let at): return .expire(atMilliseconds: at)
        case .persist: return .persist
        case .deleteKey: return .deleteKey
        case .restartKey: return .restartKey
        case .setScore(let scored):
            guard !scored.score.isNaN else { throw .invalidValue(message: "Operation", field: "set_score.score", reason: "is NaN") }
            return .setScore(Array(scored.member), score: scored.score)
        case .removeScoredMember(let member): return .removeScoredMember(Array(member))
        case nil: throw .missingField(message: "Operation", field: "kind")
        }
    }
}

extension Sessionfed_V1_Delta {
    public init(_ delta: Delta) {
        self.init()
        key = Data(delta.key)
        dot = Sessionfed_V1_Dot(delta.dot)
        timestamp = Sessionfed_V1_HlcTimestamp(delta.timestamp)
        if !delta.context.isEmpty {
            context = Sessionfed_V1_CausalContext(delta.context)
        }
        if !delta.deletes.isEmpty {
            deletes = Sessionfed_V1_VersionVector(delta.deletes)
        }
        operations = delta.operations.map(Sessionfed_V1_Operation.init)
    }

    public func model() throws(WireError) -> Delta {
        guard hasDot else { throw .missingField(message: "Delta", field: "dot") }
        guard !operations.isEmpty else { throw .missingField(message: "Delta", field: "operations") }
        var modelOperations: [SessionModel.Operation] = []
        for operation in operations { modelOperations.append(try operation.model()) }
        let firstDot = try dot.model(in: "Delta")
        guard firstDot.counter <= Dot.maximumCounter - UInt64(modelOperations.count) else {
            throw .invalidValue(message: "Delta", field: "dot.counter", reason: "the write's dots would overflow")
        }
        return Delta(
            key: Array(key),
            dot: firstDot,
            timestamp: timestamp.model,
            context: try context.model(in: "Delta.context"),
            deletes: try deletes.model(in: "Delta.deletes"),
            operations: modelOperations
        )
    }
}

extension Sessionfed_V1_RoleAssignment {
    init(_ assignment: RoleAssignment) {
        self.init()
        epoch = assignment.epoch
        issuer = assignment.issuer.rawValue
        active = assignment.active.map(\.rawValue)
    }

    var model: RoleAssignment {
        RoleAssignment(epoch: epoch, issuer: SiteID(issuer), active: active.map(SiteID.init))
    }
}
