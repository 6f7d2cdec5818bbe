import Testing
@testable import NodeRuntime

@Suite struct CommandCountsTests {
    @Test func countsBySlotAndByName_agree() {
        var counts = CommandCounts()
        let get = counts.slot(for: "get")
        let set = counts.slot(for: "set")
        #expect(get != set)
        #expect(counts.slot(for: "get") == get, "a name keeps its slot")
        counts.count(slot: get)
        counts.count(slot: get)
        counts.count("set")
        counts.count("hset")
        #expect(counts.byName == ["get": 2, "set": 1, "hset": 1])
    }

    /// CONFIG RESETSTAT: the counts start again, but a slot a connection holds still names
    /// the same command (a stale slot would count under another name, or trap).
    @Test func reset_zeroesCounts_keepsSlots() {
        var statistics = RuntimeStatistics()
        let get = statistics.commands.slot(for: "get")
        statistics.commands.count(slot: get)
        statistics.commandsProcessed = 5
        statistics.reset()
        #expect(statistics.commandsProcessed == 0)
        #expect(statistics.commands.byName.isEmpty, "a name not run since the reset is not listed")
        statistics.commands.count(slot: get)
        #expect(statistics.commands.byName == ["get": 1])
        #expect(statistics.commands.slot(for: "set") == get + 1)
    }
}

@Suite struct CommandResolverTests {
    /// A client may send any bytes as a command name: names the node does not know must not
    /// take a counter each, or a stream of made-up names grows the node's memory for ever.
    @Test func unknownNames_takeNoCounter() {
        var counts = CommandCounts()
        var resolver = CommandResolver()
        for index in 0..<1_000 {
            let resolved = resolver.resolve(Array("nosuchcommand\(index)".utf8), counts: &counts)
            #expect(resolved.spec == nil && resolved.slot == nil)
        }
        #expect(counts.slotCount == 0)
        let get = resolver.resolve(Array("GET".utf8), counts: &counts)
        #expect(get.name == "get" && get.dataCommand == .get && get.slot != nil)
        #expect(counts.slotCount == 1)
        #expect(resolver.resolve(Array("GET".utf8), counts: &counts) === get, "a repeated name is resolved once")
    }
}
