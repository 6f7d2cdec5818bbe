import RESP
import SessionModel
import Testing
@testable import Keyspace

/// The keyspace's commands are resolved from their names once per connection; the names, the
/// command table and the keyspace must agree on which commands these are.
@Suite struct DataCommandTests {
    @Test func everyDataCommand_hasATableEntry_andResolvesFromItsName() {
        for command in DataCommand.allCases {
            #expect(CommandTable.spec(for: command.rawValue) != nil, "\(command) has no command table entry")
            #expect(DataCommand(name: command.rawValue) == command)
            #expect(Keyspace.isDataCommand(command.rawValue))
        }
    }

    @Test func otherNames_areNotDataCommands() {
        for name in ["ping", "publish", "multi", "exec", "client", "info", "GET", "", "hset "] {
            #expect(DataCommand(name: name) == nil, "\(name)")
            #expect(!Keyspace.isDataCommand(name), "\(name)")
        }
        var keyspace = Keyspace(configuration: KeyspaceConfiguration(site: SiteID(1)))
        #expect(keyspace.execute([Array("ping".utf8)], name: "ping", now: 1) == nil, "not run by the keyspace")
    }

    /// The commands whose reply depends on the name they were sent by (HMSET and HSET,
    /// DECRBY and INCRBY share their code) answer as Redis does when run resolved.
    @Test func executeByCommand_keepsTheNamesDifferences() {
        var keyspace = Keyspace(configuration: KeyspaceConfiguration(site: SiteID(1)))
        let script: [([String], RESPValue)] = [
            (["hset", "h", "f", "v"], .integer(1)), (["hmset", "h", "g", "w"], .ok), (["hget", "h", "g"], .bulkString(Array("w".utf8))),
            (["incrby", "n", "5"], .integer(5)), (["decrby", "n", "3"], .integer(2)), (["get", "n"], .bulkString(Array("2".utf8))),
        ]
        for (line, expected) in script {
            let result = keyspace.execute(line.map { Array($0.utf8) }, command: DataCommand(name: line[0])!, now: 1)
            #expect(result.reply == expected, "\(line)")
        }
    }
}
