import ControlPlane
import RESP
import SessionModel
import Testing
import Topology

@testable import NodeRuntime

@Suite struct ClusterSlotsTests {
    static let nodes: [String: ClusterSlots.Node] = Dictionary(uniqueKeysWithValues: ["a", "b", "c"].enumerated().map { index, name in
        (name, ClusterSlots.Node(name: name, id: ClusterSlots.nodeID(site: "seoul", node: name), host: "10.0.0.\(index + 1)", port: 6379))
    })

    /// Three partitions: a, b, a as primaries, each backed by the other.
    static let alternating = ClusterSlots(
        partitionCount: 3,
        assignments: [
            PartitionAssignment(partition: 0, primary: "a", backups: ["b"], inSync: ["b"]),
            PartitionAssignment(partition: 1, primary: "b", backups: ["a"], inSync: ["a"]),
            PartitionAssignment(partition: 2, primary: "a", backups: ["b"], inSync: ["b"]),
        ],
        nodes: nodes
    )

    /// The ranges a client is told must be exactly the slots the node routes to that
    /// partition, or a cluster client would send keys to the wrong primary.
    @Test(arguments: [1, 2, 3, 7, 16, 271, 1_000, 16_384])
    func partitionSlots_agreeWithPartitioning(partitionCount: Int) {
        let partitioning = Partitioning(partitionCount: partitionCount)
        var next = 0
        for partition in 0..<partitionCount {
            let (first, last) = ClusterSlots.slots(ofPartition: partition, partitionCount: partitionCount)
            #expect(first == next, "partition \(partition) starts where the one before ended")
            #expect(last >= first)
            #expect(partitioning.partition(ofSlot: first) == partition)
            #expect(partitioning.partition(ofSlot: last) == partition)
            next = last + 1
        }
        #expect(next == Partitioning.slotCount, "every slot belongs to some partition")
    }

    @Test func adjacentPartitionsOfTheSameHolders_formOneRange() {
        let assignments = [
            PartitionAssignment(partition: 0, primary: "a", backups: ["b"], inSync: ["b"]),
            PartitionAssignment(partition: 1, primary: "a", backups: ["b"], inSync: ["b"]),
            PartitionAssignment(partition: 2, primary: "b", backups: ["c"], inSync: ["c"]),
            PartitionAssignment(partition: 3, primary: "a", backups: ["b"], inSync: ["b"]),
        ]
        let slots = ClusterSlots(partitionCount: 4, assignments: assignments, nodes: Self.nodes)
        #expect(slots.ranges.map { [$0.first, $0.last] } == [[0, 8_191], [8_192, 12_287], [12_288, 16_383]])
        #expect(slots.ranges.map(\.primary.name) == ["a", "b", "a"])
        #expect(slots.coveredSlots == Partitioning.slotCount)
    }

    /// A backup still being copied is not offered as a replica, and a partition between
    /// primaries leaves its slots uncovered (CLUSTER INFO then says `fail`).
    @Test func onlyInSyncBackups_andNoPrimaryNoRange() {
        let assignments = [
            PartitionAssignment(partition: 0, primary: "a", backups: ["b", "c"], inSync: ["c"]),
            PartitionAssignment(partition: 1, primary: nil, backups: ["b"], inSync: ["b"]),
            PartitionAssignment(partition: 2, primary: "gone", backups: ["a"], inSync: ["a"]),
        ]
        let slots = ClusterSlots(partitionCount: 3, assignments: assignments, nodes: Self.nodes)
        #expect(slots.ranges.count == 1)
        #expect(slots.ranges[0].replicas.map(\.name) == ["c"])
        #expect(slots.coveredSlots == 5_462)
    }

    @Test func nodeIDs_areFortyHexDigits_stable_andDistinct() {
        let id = ClusterSlots.nodeID(site: "seoul", node: "seoul-1")
        #expect(id.count == 40)
        #expect(id.allSatisfy { $0.isHexDigit && !$0.isUppercase })
        #expect(id == ClusterSlots.nodeID(site: "seoul", node: "seoul-1"))
        #expect(id != ClusterSlots.nodeID(site: "seoul", node: "seoul-2"))
        #expect(id != ClusterSlots.nodeID(site: "lisbon", node: "seoul-1"))
    }

    @Test func slotsReply_hasRedisShape() {
        let assignments = [
            PartitionAssignment(partition: 0, primary: "a", backups: ["b"], inSync: ["b"]),
            PartitionAssignment(partition: 1, primary: "b", backups: [], inSync: []),
        ]
        let slots = ClusterSlots(partitionCount: 2, assignments: assignments, nodes: Self.nodes)
        let a = Self.nodes["a"]!, b = Self.nodes["b"]!
        #expect(
            slots.slotsReply
                == .array([
                    .array([.integer(0), .integer(8_191), .array([.bulk("10.0.0.1"), .integer(6379), .bulk(a.id)]), .array([.bulk("10.0.0.2"), .integer(6379), .bulk(b.id)])]),
                    .array([.integer(8_192), .integer(16_383), .array([.bulk("10.0.0.2"), .integer(6379), .bulk(b.id)])]),
                ])
        )
    }

    /// redis-benchmark --cluster and cluster tools parse these lines field by field.
    @Test func nodesText_listsEveryNodeOnceWithItsPrimarySlots() {
        let slots = Self.alternating
        let lines = slots.nodesText(myself: "b", epoch: 9).split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
        // c holds no primary and no in-sync copy now, and is listed all the same.
        #expect(lines.count == 3)
        let c = lines.first { $0[0] == Self.nodes["c"]!.id }!
        #expect(c.count == 8 && c[2] == "master")
        let a = lines.first { $0[0] == Self.nodes["a"]!.id }!, b = lines.first { $0[0] == Self.nodes["b"]!.id }!
        #expect(a[1] == "10.0.0.1:6379@0" && a[2] == "master" && a[3] == "-" && a[6] == "9" && a[7] == "connected")
        #expect(Array(a[8...]) == ["0-5461", "10923-16383"])
        #expect(b[2] == "myself,master")
        #expect(Array(b[8...]) == ["5462-10922"])
    }

    @Test func shardsReply_groupsRangesByHolders() {
        let slots = Self.alternating
        guard case .array(let shards) = slots.shardsReply else {
            Issue.record("not an array")
            return
        }
        #expect(shards.count == 2)
        guard case .map(let first) = shards[0] else {
            Issue.record("a shard is not a map")
            return
        }
        #expect(first[0] == RESPPair(.bulk("slots"), .array([.integer(0), .integer(5_461), .integer(10_923), .integer(16_383)])))
    }

    /// As Redis: `port` is the plaintext port and `tls-port` the TLS one, whichever kind of
    /// connection asked; CLUSTER SLOTS and NODES give the asking connection's kind.
    @Test func shards_giveBothPorts() {
        let tls = ClusterSlots.Node(name: "a", id: ClusterSlots.nodeID(site: "s", node: "a"), host: "10.0.0.1", port: 6380, plainPort: 6379, tlsPort: 6380)
        let slots = ClusterSlots(alone: tls)
        #expect(slots.slotsReply == .array([.array([.integer(0), .integer(16_383), .array([.bulk("10.0.0.1"), .integer(6380), .bulk(tls.id)])])]))
        guard case .array(let shards) = slots.shardsReply, case .map(let shard) = shards[0], case .array(let nodes) = shard[1].value,
            case .map(let fields) = nodes[0]
        else {
            Issue.record("unexpected CLUSTER SHARDS shape: \(slots.shardsReply)")
            return
        }
        #expect(fields.contains(RESPPair(.bulk("port"), .integer(6379))))
        #expect(fields.contains(RESPPair(.bulk("tls-port"), .integer(6380))))
    }

    /// Every node of a multi-node site, by the port of the asking connection's kind.
    @Test func clusterNodes_ofASiteWithClientTLS_byConnectionKind() throws {
        let text = """
            federation: f
            topologyVersion: 1
            tls:
              directory: certs
              ca: certs/ca.pem
            clientTLS:
              directory: certs
            sites:
              - name: seoul
                id: 1
                nodes:
                  - {name: seoul-1, client: "10.0.0.1:6379", peer: "10.0.0.1:7000", federation: "10.0.0.1:7100", admin: "10.0.0.1:7200", clientTLS: "10.0.0.1:6380"}
                  - {name: seoul-2, client: "0.0.0.0:6379", peer: "10.0.0.2:7000", federation: "10.0.0.2:7100", admin: "10.0.0.2:7200", clientTLS: "0.0.0.0:6380"}
            """
        let site = try TopologyParser.parse(text, file: "t.yaml").get().sites[0]
        let plain = ClientConnection.clusterNodes(of: site, overTLS: false)
        let tls = ClientConnection.clusterNodes(of: site, overTLS: true)
        #expect(plain.mapValues { "\($0.host):\($0.port)" } == ["seoul-1": "10.0.0.1:6379", "seoul-2": "10.0.0.2:6379"])
        #expect(tls.mapValues { "\($0.host):\($0.port)" } == ["seoul-1": "10.0.0.1:6380", "seoul-2": "10.0.0.2:6380"])
        #expect(tls.values.allSatisfy { $0.plainPort == 6379 && $0.tlsPort == 6380 })
        #expect(plain["seoul-2"]!.id == tls["seoul-2"]!.id && plain["seoul-1"]!.id != plain["seoul-2"]!.id)
    }

    @Test func wildcardClientHosts_advertiseThePeerHost() {
        #expect(ClientConnection.advertisedHost(client: .init(host: "0.0.0.0", port: 6379), peer: .init(host: "10.1.2.3", port: 7000)) == "10.1.2.3")
        #expect(ClientConnection.advertisedHost(client: .init(host: "::", port: 6379), peer: .init(host: "10.1.2.3", port: 7000)) == "10.1.2.3")
        #expect(ClientConnection.advertisedHost(client: .init(host: "10.9.9.9", port: 6379), peer: .init(host: "10.1.2.3", port: 7000)) == "10.9.9.9")
    }
}
