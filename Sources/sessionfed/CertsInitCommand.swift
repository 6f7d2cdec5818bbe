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
    struct Init: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a federation CA and one certificate per node of a topology (ca.pem, <node>.pem, <node>.key)."
        )

        @Option(help: "The topology file.") var topology: String
        @Option(help: "Directory to write into (the topology's tls.directory).") var out: String
        @Option(help: "Validity of the certificates in days.") var days = 825
        @Flag(help: "Replace an existing CA (every node must then get the new files).") var force = false
        @Option(help: "Write the CA's private key here instead of next to the node certificates (keep it off the nodes).") var caKeyOut: String?

        func run() throws {
            let topology = try loadTopology(self.topology)
            var files = try FederationCertificates.issue(for: topology, validityDays: days)
            let keyPath = caKeyOut ?? "\(out)/ca.key"
            if let caKeyOut, let index = files.firstIndex(where: { $0.name == "ca.key" }) {
                let key = files.remove(at: index)
                try FederationCertificates.write([FederationCertificates.File(name: lastComponent(of: caKeyOut), contents: key.contents, secret: true)], to: directory(of: caKeyOut), force: force)
            }
            try FederationCertificates.write(files, to: out, force: force)
            let nodes = topology.sites.flatMap(\.nodes).map(\.name)
            print("wrote the CA certificate: \(out)/ca.pem (every node needs it)")
            print("wrote the CA private key: \(keyPath) (keep it off the nodes; `certs rotate` needs it)")
            print("wrote a certificate and key for \(nodes.count) node(s) in \(out)/: \(nodes.map { "\($0).pem, \($0).key" }.joined(separator: "; "))")
            if let tls = topology.tls {
                print("the topology expects ca: \(tls.ca), directory: \(tls.directory) (relative to the topology file)")
            } else {
                print("note: the topology has no tls: section; add `tls: {ca: <dir>/ca.pem, directory: <dir>}` to use these")
            }
        }
    }
}
