import ArgumentParser
import Foundation
import Logging
import NodeRuntime
import ServiceLifecycle
import Topology

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension Certs {
    struct Rotate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Issue new node certificates from the existing CA (ca.pem and its key); nodes load them on SIGHUP without dropping links.",
            discussion: "Writes <node>.pem and <node>.key for every node of the topology into --out, keeping ca.pem. Send SIGHUP to each node (or restart it) to use them; established connections stay up, new ones use the new certificate."
        )

        @Option(help: "The topology file.") var topology: String
        @Option(help: "Directory holding ca.pem, where the node certificates are written.") var out: String
        @Option(help: "The CA's private key (default: <out>/ca.key).") var caKey: String?
        @Option(help: "Validity of the new certificates in days (at most the CA's).") var days = 825

        func run() throws {
            let topology = try loadTopology(self.topology)
            let keyPath = caKey ?? "\(out)/ca.key"
            let caPEM: String
            let caKeyPEM: String
            do { caPEM = try String(contentsOfFile: "\(out)/ca.pem", encoding: .utf8) } catch {
                throw ValidationError("cannot read the CA certificate \(out)/ca.pem: \(error)")
            }
            do { caKeyPEM = try String(contentsOfFile: keyPath, encoding: .utf8) } catch {
                throw ValidationError("cannot read the CA key \(keyPath): \(error) (give it with --ca-key)")
            }
            let files = try FederationCertificates.rotate(for: topology, caPEM: caPEM, caKeyPEM: caKeyPEM, validityDays: days)
            try FederationCertificates.write(files, to: out, force: false)
            let nodes = topology.sites.flatMap(\.nodes).map(\.name)
            print("wrote new certificates and keys for \(nodes.count) node(s) in \(out)/, signed by \(out)/ca.pem: \(nodes.joined(separator: ", "))")
            print("send SIGHUP to each node to load them (links stay up)")
        }
    }
}
