/// Commands run, by name (INFO commandstats, `/status`). Each name the node meets gets a slot
/// once; a connection resolves a name to its slot when it first sees it, so counting a command
/// is an array increment rather than a String-keyed dictionary update (hashing the name cost
/// about a fiftieth of a SET).
struct CommandCounts {
    private var slots: [String: Int] = [:]
    private var names: [String] = []
    private var counts: [UInt64] = []

    /// The slot of `name`, made on first use. Slots are never taken back (RESETSTAT zeroes
    /// the counts), so a slot a connection holds stays valid for the node's life.
    mutating func slot(for name: String) -> Int {
        if let slot = slots[name] { return slot }
        let slot = names.count
        slots[name] = slot
        names.append(name)
        counts.append(0)
        return slot
    }

    mutating func count(slot: Int) {
        counts[slot] += 1
    }

    mutating func count(_ name: String) {
        count(slot: slot(for: name))
    }

    /// Names given a counter so far.
    var slotCount: Int { names.count }

    /// CONFIG RESETSTAT.
    mutating func zero() {
        for index in counts.indices { counts[index] = 0 }
    }

    /// The names run at least once since the start or the last RESETSTAT.
    var byName: [String: UInt64] {
        var byName: [String: UInt64] = [:]
        for (slot, name) in names.enumerated() where counts[slot] > 0 { byName[name] = counts[slot] }
        return byName
    }
}
