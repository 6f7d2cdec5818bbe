import NIOCore
import NIOSSL
import Topology

/// The TLS listener for applications (`clientTLS:`, Redis's `tls-port`): the node presents
/// `<directory>/<node>.pem` and `.key`; with `ca`, a client must present a certificate that
/// CA signed, or the handshake fails and the connection closes. A client speaking plaintext
/// to this port fails the handshake too: nothing it sent is run.
enum ClientTLS {
    /// The client TLS context, reloadable on SIGHUP; the expiries of its certificate and CA.
    static func reloadable(settings: Topology.ClientTLSSettings, node: String, topologyDirectory: String) throws -> ReloadableTLS<NIOSSLContext> {
        try ReloadableTLS {
            let directory = FederationTLSPaths.resolve(settings.directory, in: topologyDirectory)
            var expiries = ["client-tls": try TLSFiles.notAfter(ofPEMFile: "\(directory)/\(node).pem")]
            if let ca = settings.ca { expiries["client-ca"] = try TLSFiles.notAfter(ofPEMFile: FederationTLSPaths.resolve(ca, in: topologyDirectory)) }
            return ReloadableTLS.Loaded(contexts: try context(settings: settings, node: node, topologyDirectory: topologyDirectory), expiries: expiries)
        }
    }

    static func context(settings: Topology.ClientTLSSettings, node: String, topologyDirectory: String) throws -> NIOSSLContext {
        let directory = FederationTLSPaths.resolve(settings.directory, in: topologyDirectory)
        let certificatePath = "\(directory)/\(node).pem"
        let keyPath = "\(directory)/\(node).key"
        let chain = try TLSFiles.certificates(certificatePath, what: "this node's client TLS certificate", hint: "")
        let key = try TLSFiles.privateKey(keyPath, what: "this node's client TLS key", hint: "")
        var configuration = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        configuration.minimumTLSVersion = .tlsv12
        if let ca = settings.ca {
            let roots = try TLSFiles.certificates(FederationTLSPaths.resolve(ca, in: topologyDirectory), what: "the client CA", hint: "")
            configuration.trustRoots = .certificates(roots)
            // Clients are not named by host: any certificate the CA signed is accepted.
            configuration.certificateVerification = .noHostnameVerification
        } else {
            configuration.certificateVerification = .none
        }
        return try NIOSSLContext(configuration: configuration)
    }
}
