import Keyspace
import RESP

/// A command name as it was sent, resolved: its lowercase name, its table entry, whether the
/// keyspace runs it, and its counter. A class: kept from one command to the next, it is handed
/// on without copying its fields.
final class ResolvedCommand {
    let sent: [UInt8]
    let name: String
    let spec: CommandSpec?
    /// Nil for a command the keyspace does not run.
    let dataCommand: DataCommand?
    /// Its counter in `RuntimeStatistics.commands`; nil for a name the node does not know
    /// (only known commands are counted: any bytes may be sent as a name).
    let slot: Int?

    init(sent: [UInt8], name: String, spec: CommandSpec?, dataCommand: DataCommand?, slot: Int?) {
        self.sent = sent
        self.name = name
        self.spec = spec
        self.dataCommand = dataCommand
        self.slot = slot
    }
}

/// Resolves command names, remembering the last one. A client, and the stream of commands
/// forwarded by another node, repeat a few commands: a name is lowercased and looked up in
/// the tables once rather than on every command (about a twentieth of a pipelined GET).
struct CommandResolver {
    private var last: ResolvedCommand?

    mutating func resolve(_ sent: [UInt8], counts: inout CommandCounts) -> ResolvedCommand {
        if let last, last.sent == sent { return last }
        let name = String(decoding: sent, as: UTF8.self).lowercased()
        let spec = CommandTable.spec(for: name)
        let resolved = ResolvedCommand(
            sent: sent, name: name, spec: spec, dataCommand: spec == nil ? nil : DataCommand(name: name), slot: spec == nil ? nil : counts.slot(for: name)
        )
        last = resolved
        return resolved
    }
}
