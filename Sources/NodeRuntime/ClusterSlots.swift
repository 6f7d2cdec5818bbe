import ControlPlane
import Crypto
import RESP
import SessionModel

/// The site's partition table as Redis Cluster's slot map, for cluster-aware clients (CLUSTER
/// SLOTS, SHARDS, NODES). A partition owns a contiguous range of the 16,384 slots
/// (`Partitioning`), so each range a client is told names the node that runs that
/// partition's writes: a client that routes by it reaches the primary in one hop instead of
/// being forwarded there. Pure: the map and the node addresses in, the ranges out.
///
/// A client that routes by a stale map is not told `MOVED`: the node it reached forwards the
/// command as it does for any client, so a map one step behind costs a hop, never an error.
struct ClusterSlots: Equatable {
    /// A node as clients reach it.
    struct Node: Hashable {
        var name: String
        /// 40 hex digits, as Redis's node IDs: stable for a node's name within its site.
        var id: String
        var host: String
        /// The port for the asking connection's kind: TLS for a client that came over TLS.
        var port: Int
        /// Both ports, for CLUSTER SHARDS (`port` is plaintext there, `tls-port` TLS).
        var plainPort: Int
        var tlsPort: Int?

        init(name: String, id: String, host: String, port: Int, plainPort: Int? = nil, tlsPort: Int? = nil) {
            self.name = name
            self.id = id
            self.host = host
            self.port = port
            self.plainPort = plainPort ?? port
            self.tlsPort = tlsPort
        }
    }

    /// Slots `first...last`, whose writes run on `primary`; `replicas` hold in-sync copies.
    struct Range: Equatable {
        var first: Int
        var last: Int
        var primary: Node
        var replicas: [Node]
    }

    var ranges: [Range]
    /// Every node of the site a client can reach, whether or not it holds a range now (a
    /// node just joined, or draining): CLUSTER NODES lists them all, the asking node included.
    var directory: [Node]

    init(ranges: [Range], directory: [Node]) {
        self.ranges = ranges
        self.directory = directory.sorted { $0.name < $1.name }
    }

    /// The ranges of a partition table. Adjacent partitions with the same primary and copies
    /// are one range, as Redis reports a node's contiguous slots. A partition without a
    /// primary, or whose primary has no address, is left out: its slots are uncovered, as in
    /// a Redis cluster whose master failed, until the control plane assigns one.
    init(partitionCount: Int, assignments: [PartitionAssignment], nodes: [String: Node]) {
        directory = nodes.values.sorted { $0.name < $1.name }
        var ranges: [Range] = []
        for assignment in assignments.sorted(by: { $0.partition < $1.partition }) {
            guard let primaryName = assignment.primary, let primary = nodes[primaryName] else { continue }
            let replicas = assignment.backups.filter { assignment.inSync.contains($0) }.sorted().compactMap { nodes[$0] }
            let (first, last) = Self.slots(ofPartition: assignment.partition, partitionCount: partitionCount)
            guard first <= last else { continue }
            if let previous = ranges.last, previous.last + 1 == first, previous.primary == primary, previous.replicas == replicas {
                ranges[ranges.count - 1].last = last
            } else {
                ranges.append(Range(first: first, last: last, primary: primary, replicas: replicas))
            }
        }
        self.ranges = ranges
    }

    /// One node holding every slot: a site of one node.
    init(alone node: Node) {
        ranges = [Range(first: 0, last: Partitioning.slotCount - 1, primary: node, replicas: [])]
        directory = [node]
    }

    /// The slots `Partitioning.partition(ofSlot:)` maps to `partition`: those `s` with
    /// `s * count / 16384 == partition`.
    static func slots(ofPartition partition: Int, partitionCount: Int) -> (first: Int, last: Int) {
        let slotCount = Partitioning.slotCount
        let first = (partition * slotCount + partitionCount - 1) / partitionCount
        let last = ((partition + 1) * slotCount + partitionCount - 1) / partitionCount - 1
        return (first, last)
    }

    /// A node's ID: the SHA-1 of its site and name, in hex. Every node computes the same ID
    /// for a node, and it survives restarts, as a Redis node's ID in nodes.conf does.
    static func nodeID(site: String, node: String) -> String {
        let digest = Insecure.SHA1.hash(data: Array("\(site)/\(node)".utf8))
        return digest.map { byte in
            let hex = String(byte, radix: 16)
            return byte < 16 ? "0" + hex : hex
        }.joined()
    }

    var coveredSlots: Int { ranges.reduce(0) { $0 + $1.last - $1.first + 1 } }

    /// CLUSTER SLOTS: `[first, last, [host, port, id], replicas…]` per range.
    var slotsReply: RESPValue {
        func node(_ node: Node) -> RESPValue { .array([.bulk(node.host), .integer(Int64(node.port)), .bulk(node.id)]) }
        return .array(ranges.map { range in
            .array([.integer(Int64(range.first)), .integer(Int64(range.last)), node(range.primary)] + range.replicas.map(node))
        })
    }

    /// CLUSTER SHARDS: one shard per distinct set of holders, with its slot ranges and nodes.
    var shardsReply: RESPValue {
        var order: [[String]] = []
        var shards: [[String]: (slots: [Int], primary: Node, replicas: [Node])] = [:]
        for range in ranges {
            let holders = [range.primary.name] + range.replicas.map(\.name)
            if shards[holders] == nil {
                order.append(holders)
                shards[holders] = ([], range.primary, range.replicas)
            }
            shards[holders]!.slots += [range.first, range.last]
        }
        func describe(_ node: Node, role: String) -> RESPValue {
            .map([
                RESPPair(.bulk("id"), .bulk(node.id)),
                RESPPair(.bulk("port"), .integer(Int64(node.plainPort))),
            ] + (node.tlsPort.map { [RESPPair(.bulk("tls-port"), .integer(Int64($0)))] } ?? []) + [
                RESPPair(.bulk("ip"), .bulk(node.host)),
                RESPPair(.bulk("endpoint"), .bulk(node.host)),
                RESPPair(.bulk("role"), .bulk(role)),
                RESPPair(.bulk("replication-offset"), .integer(0)),
                RESPPair(.bulk("health"), .bulk("online")),
            ])
        }
        return .array(order.map { holders in
            let shard = shards[holders]!
            return .map([
                RESPPair(.bulk("slots"), .array(shard.slots.map { .integer(Int64($0)) })),
                RESPPair(.bulk("nodes"), .array([describe(shard.primary, role: "master")] + shard.replicas.map { describe($0, role: "replica") })),
            ])
        })
    }

    /// CLUSTER NODES: one line per node. Every node of a site is a primary of some
    /// partitions and a backup of others, which Redis's format cannot say of one node, so
    /// every node is listed as a master with the slots it is primary for (none, for a node
    /// that holds no primary now).
    func nodesText(myself: String, epoch: UInt64) -> String {
        directory.map { node in
            let slots = ranges.filter { $0.primary == node }.map { $0.first == $0.last ? "\($0.first)" : "\($0.first)-\($0.last)" }
            let flags = node.name == myself ? "myself,master" : "master"
            return (["\(node.id) \(node.host):\(node.port)@0 \(flags) - 0 0 \(epoch) connected"] + slots).joined(separator: " ") + "\n"
        }.joined()
    }
}
