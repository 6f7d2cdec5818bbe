import Foundation
import SessionModel
import Testing
@testable import Topology

@Suite struct TopologyValidationTests {
    static let valid = """
        federation: acme
        topologyVersion: 3
        sites:
          - name: seoul
            id: 1
            nodes:
              - name: seoul-1
                client: 127.0.0.1:6379
                peer: 127.0.0.1:7379
                federation: 127.0.0.1:8379
                admin: 127.0.0.1:9379
          - name: tokyo
            id: 2
            role: passive
            nodes:
              - name: tokyo-1
                client: 127.0.0.1:6380
                peer: 127.0.0.1:7380
                federation: 127.0.0.1:8380
                admin: 127.0.0.1:9380
        """

    /// `clientTLS:` and each node's TLS port come together; the port is an address like the
    /// others (no two the same).
    @Test func clientTLS_needsEveryNodesPort_andTheSettings() throws {
        let withTLS = Self.valid.replacingOccurrences(of: "sites:\n", with: "clientTLS:\n  directory: certs\n  ca: certs/ca.pem\nsites:\n")
            .replacingOccurrences(of: "        admin: 127.0.0.1:9379\n", with: "        admin: 127.0.0.1:9379\n        clientTLS: 127.0.0.1:6390\n")
        let found = errors(withTLS)
        #expect(found.count == 1 && found[0].key == "sites[1].nodes[0].clientTLS" && found[0].message.contains("every node needs its TLS port"), "\(found)")
        let both = withTLS.replacingOccurrences(of: "        admin: 127.0.0.1:9380", with: "        admin: 127.0.0.1:9380\n        clientTLS: 127.0.0.1:6391")
        guard case .success(let topology) = TopologyParser.parse(both, file: "t.yaml") else { Issue.record("\(errors(both))"); return }
        #expect(topology.clientTLS == Topology.ClientTLSSettings(directory: "certs", ca: "certs/ca.pem"))
        #expect(topology.sites[1].nodes[0].clientTLS == Topology.Address(host: "127.0.0.1", port: 6391))
        let clash = both.replacingOccurrences(of: "clientTLS: 127.0.0.1:6391", with: "clientTLS: 127.0.0.1:6380")
        #expect(errors(clash).contains { $0.key == "sites[1].nodes[0].clientTLS" && $0.message.contains("already used") })
        let portWithoutSettings = Self.valid.replacingOccurrences(of: "        admin: 127.0.0.1:9379\n", with: "        admin: 127.0.0.1:9379\n        clientTLS: 127.0.0.1:6390\n")
        #expect(errors(portWithoutSettings).contains { $0.message.contains("needs clientTLS:") })
    }

    func errors(_ text: String) -> [TopologyError] {
        switch TopologyParser.parse(text, file: "t.yaml") {
        case .success: return []
        case .failure(let errors): return errors.errors
        }
    }

    func expectError(_ text: String, line: Int, key: String, containing fragment: String, sourceLocation: SourceLocation = #_sourceLocation) {
        let found = errors(text)
        #expect(found.contains { $0.line == line && $0.key == key && $0.message.contains(fragment) },
                "expected \(line) \(key) '\(fragment)', got \(found)", sourceLocation: sourceLocation)
    }

    @Test func valid_parsesEverything() throws {
        let topology = try TopologyParser.parse(Self.valid, file: "t.yaml").get()
        #expect(topology.federation == "acme")
        #expect(topology.topologyVersion == 3)
        #expect(topology.sites.map(\.name) == ["seoul", "tokyo"])
        #expect(topology.sites[1].role == .passive)
        #expect(topology.sites[0].nodes[0].client == Topology.Address(host: "127.0.0.1", port: 6379))
        #expect(topology.sites[0].nodes[0].voter)
        #expect(topology.defaults.partitions == 64)
        #expect(topology.links == .mesh)
        #expect(topology.node(named: "tokyo-1")?.site.id == 2)
    }

    @Test func unknownKey_namesFileLineAndKey() {
        let text = Self.valid.replacingOccurrences(of: "topologyVersion: 3", with: "topologyVersion: 3\nreplicas: 2")
        expectError(text, line: 3, key: "replicas", containing: "unknown key")
        #expect(errors(text).first?.description.hasPrefix("t.yaml:3: replicas: unknown key") == true)
    }

    @Test func unknownSiteInLinks() {
        expectError(Self.valid + "\nlinks: [[seoul, osaka]]", line: 21, key: "links[0]", containing: "unknown site 'osaka'")
        expectError(Self.valid + "\nlinks: {hub: osaka}", line: 21, key: "links.hub", containing: "unknown site 'osaka'")
    }

    @Test func siteWithoutLink_refused() {
        let three = Self.valid + """

              - name: paris
                id: 3
                nodes:
                  - name: paris-1
                    client: 127.0.0.1:6381
                    peer: 127.0.0.1:7381
                    federation: 127.0.0.1:8381
                    admin: 127.0.0.1:9381
            links: [[seoul, tokyo]]
            """
        #expect(errors(three).contains { $0.key == "links" && $0.message.contains("'paris' has no link") })
    }

    @Test func duplicates_namesIdsAddresses() {
        expectError(Self.valid.replacingOccurrences(of: "name: tokyo\n", with: "name: seoul\n"), line: 12, key: "sites[1].name", containing: "duplicate site name 'seoul'")
        expectError(Self.valid.replacingOccurrences(of: "id: 2", with: "id: 1"), line: 13, key: "sites[1].id", containing: "duplicate site id 1")
        expectError(Self.valid.replacingOccurrences(of: "name: tokyo-1", with: "name: seoul-1"), line: 16, key: "sites[1].nodes[0].name", containing: "duplicate node name")
        expectError(Self.valid.replacingOccurrences(of: "127.0.0.1:6380", with: "127.0.0.1:6379"), line: 17, key: "sites[1].nodes[0].client", containing: "already used by seoul-1.client")
    }

    @Test func backupCountNeedsEnoughNodes() {
        let text = Self.valid.replacingOccurrences(of: "topologyVersion: 3", with: "topologyVersion: 3\ndefaults:\n  backupCount: 2") + """

                  - name: tokyo-2
                    client: 127.0.0.1:6390
                    peer: 127.0.0.1:7390
                    federation: 127.0.0.1:8390
                    admin: 127.0.0.1:9390
            """
        #expect(errors(text).contains { $0.key == "sites[1].nodes" && $0.message.contains("backupCount 2 needs at least 3 nodes") })
    }

    @Test func passiveOnlyFederation_refused() {
        let text = Self.valid.replacingOccurrences(of: "    id: 1\n", with: "    id: 1\n    role: passive\n")
        #expect(errors(text).contains { $0.key == "sites" && $0.message.contains("every site is passive") })
    }

    @Test func badValues_typedMessages() {
        expectError(Self.valid.replacingOccurrences(of: "127.0.0.1:9380", with: "localhost"), line: 20, key: "sites[1].nodes[0].admin", containing: "must be host:port")
        expectError(Self.valid.replacingOccurrences(of: "role: passive", with: "role: standby"), line: 14, key: "sites[1].role", containing: "must be one of active, passive")
        expectError(Self.valid.replacingOccurrences(of: "topologyVersion: 3", with: "topologyVersion: three"), line: 2, key: "topologyVersion", containing: "must be an integer")
        expectError("federation: x\ntopologyVersion: 1\nsites: []", line: 3, key: "sites", containing: "non-empty list")
        expectError("federation: [unclosed", line: 2, key: "(document)", containing: "not valid YAML")
        expectError("", line: 1, key: "(document)", containing: "empty")
    }

    /// Found by fuzzing: a file that is YAML but not a mapping was refused with an empty key
    /// (`t.yaml:1: : must be a mapping`); the whole file is "(document)", as for invalid YAML.
    @Test func documentNotAMapping_errorNamesTheDocument() {
        expectError("just some text", line: 1, key: "(document)", containing: "must be a mapping")
        expectError("- a\n- b", line: 1, key: "(document)", containing: "must be a mapping")
        expectError("[a]: 1\nfederation: x", line: 1, key: "(document)", containing: "keys must be strings")
        expectError("\"\": 1\nfederation: x", line: 1, key: "(document)", containing: "unknown key")
    }

    @Test func plaintextFederationOffLoopback_refused() {
        let text = Self.valid.replacingOccurrences(of: "federation: 127.0.0.1:8380", with: "federation: 192.0.2.10:8380")
        expectError(text, line: 19, key: "sites[1].nodes[0].federation", containing: "plaintext federation is allowed on loopback only")
    }

    @Test func controlPlaneTiming_parsedAndBounded() throws {
        let timed = Self.valid.replacingOccurrences(of: "topologyVersion: 3", with: "topologyVersion: 3\ndefaults:\n  electionTimeoutMilliseconds: 300\n  failureTimeoutMilliseconds: 400")
        let topology = try TopologyParser.parse(timed, file: "t.yaml").get()
        #expect(topology.defaults.electionTimeoutMilliseconds == 300)
        #expect(topology.defaults.failureTimeoutMilliseconds == 400)
        #expect(try TopologyParser.parse(Self.valid, file: "t.yaml").get().defaults.electionTimeoutMilliseconds == 1_000)
        let tooShort = Self.valid.replacingOccurrences(of: "topologyVersion: 3", with: "topologyVersion: 3\ndefaults:\n  electionTimeoutMilliseconds: 5")
        expectError(tooShort, line: 4, key: "defaults.electionTimeoutMilliseconds", containing: "100")
    }

    @Test func collectionSettings_parsedAndBounded() throws {
        let set = Self.valid.replacingOccurrences(of: "topologyVersion: 3", with: "topologyVersion: 3\ndefaults:\n  collectionIntervalMilliseconds: 0\n  collectionHorizonMilliseconds: 60000")
        let topology = try TopologyParser.parse(set, file: "t.yaml").get()
        #expect(topology.defaults.collectionIntervalMilliseconds == 0)
        #expect(topology.defaults.collectionHorizonMilliseconds == 60_000)
        #expect(try TopologyParser.parse(Self.valid, file: "t.yaml").get().defaults.collectionIntervalMilliseconds == 10_000)
        let tooShort = Self.valid.replacingOccurrences(of: "topologyVersion: 3", with: "topologyVersion: 3\ndefaults:\n  collectionHorizonMilliseconds: 10")
        expectError(tooShort, line: 4, key: "defaults.collectionHorizonMilliseconds", containing: "1000")
    }

    /// Off unless asked for: clients that detect cluster mode would otherwise change mode.
    @Test func clusterClients_offByDefault_aBooleanOnly() throws {
        #expect(try TopologyParser.parse(Self.valid, file: "t.yaml").get().defaults.clusterClients == false)
        let on = Self.valid.replacingOccurrences(of: "topologyVersion: 3", with: "topologyVersion: 3\ndefaults:\n  clusterClients: true")
        #expect(try TopologyParser.parse(on, file: "t.yaml").get().defaults.clusterClients == true)
        let wrong = Self.valid.replacingOccurrences(of: "topologyVersion: 3", with: "topologyVersion: 3\ndefaults:\n  clusterClients: 3")
        expectError(wrong, line: 4, key: "defaults.clusterClients", containing: "true or false")
    }

    /// One loop unless asked for; a count the node cannot run is refused with its line.
    @Test func threads_oneByDefault_boundedCount() throws {
        #expect(try TopologyParser.parse(Self.valid, file: "t.yaml").get().defaults.threads == 1)
        let four = Self.valid.replacingOccurrences(of: "topologyVersion: 3", with: "topologyVersion: 3\ndefaults:\n  threads: 4")
        #expect(try TopologyParser.parse(four, file: "t.yaml").get().defaults.threads == 4)
        let none = Self.valid.replacingOccurrences(of: "topologyVersion: 3", with: "topologyVersion: 3\ndefaults:\n  threads: 0")
        expectError(none, line: 4, key: "defaults.threads", containing: "between 1 and 256, got 0")
    }

    @Test func plaintextPeerOffLoopbackInAMultiNodeSite_refused() {
        let text = """
            federation: acme
            topologyVersion: 1
            sites:
              - name: seoul
                id: 1
                nodes:
                  - name: seoul-1
                    client: 127.0.0.1:6379
                    peer: 127.0.0.1:7379
                    federation: 127.0.0.1:8379
                    admin: 127.0.0.1:9379
                  - name: seoul-2
                    client: 127.0.0.1:6381
                    peer: 192.0.2.11:7381
                    federation: 127.0.0.1:8381
                    admin: 127.0.0.1:9381
            """
        #expect(errors(text).contains { $0.key == "sites[0].nodes[1].peer" && $0.message.contains("plaintext peer traffic is allowed on loopback only") }, "\(errors(text))")
        // A one-node site has no peer traffic: its peer address is not checked.
        #expect(errors(Self.valid.replacingOccurrences(of: "peer: 127.0.0.1:7379", with: "peer: 192.0.2.10:7379")).isEmpty)
    }

    @Test func policies_resolveMergePolicyPerKey() throws {
        let text = Self.valid + "\npolicies:\n  - pattern: \"spring:session:index:*\"\n    deletePolicy: update-wins\ndefaults:\n  conflictPolicy: site-priority"
        let topology = try TopologyParser.parse(text, file: "t.yaml").get()
        #expect(topology.mergePolicy(forKey: Array("spring:session:index:x".utf8)).delete == .updateWins)
        #expect(topology.mergePolicy(forKey: Array("spring:session:sessions:x".utf8)).delete == .deleteWins)
        #expect(topology.defaultMergePolicy.conflict == .sitePriority([SiteID(1), SiteID(2)]))
    }

    @Test func exampleFiles_allValid() throws {
        let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../topologies").standardized
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".yaml") }.sorted()
        #expect(files == ["active-active-3-regions.yaml", "active-passive-dr.yaml", "hub-spoke.yaml", "local-demo.yaml", "local-site.yaml", "single-node.yaml"])
        for file in files {
            let text = try String(contentsOf: directory.appendingPathComponent(file), encoding: .utf8)
            let result = TopologyParser.parse(text, file: file)
            if case .failure(let errors) = result { Issue.record("\(file): \(errors)") }
        }
    }
}
