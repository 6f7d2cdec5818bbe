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
            var expiries = ["client-tls": try ReloadableTLS<NIOSSLContext>.notAfter(ofPEMFile: "\(directory)/\(node).pem")]
            if let ca = settings.ca { expiries["client-ca"] = try ReloadableTLS<NIOSSLContext>.notAfter(ofPEMFile: FederationTLSPaths.resolve(ca, in: topologyDirectory)) }
            return ReloadableTLS.Loaded(contexts: try context(settings: settings, node: node, topologyDirectory: topologyDirectory), expiries: expiries)
        }
    }

    static func context(settings: Topology.ClientTLSSettings, node: String, topologyDirectory: String) throws -> NIOSSLContext {
        let directory = FederationTLSPaths.resolve(settings.directory, in: topologyDirectory)
        let certificatePath = "\(directory)/\(node).pem"
        let keyPath = "\(directory)/\(node).key"
        let chain: [NIOSSLCertificate]
        let key: NIOSSLPrivateKey
        do { chain = try NIOSSLCertificate.fromPEMFile(certificatePath) } catch {
            throw FederationTLSError(message: "cannot read this node's client TLS certificate \(certificatePath): \(error)")
        }
        do { key = try NIOSSLPrivateKey(file: keyPath, format: .pem) } catch {
            throw FederationTLSError(message: "cannot read this node's client TLS key \(keyPath): \(error)")
        }
        guard !chain.isEmpty else { throw FederationTLSError(message: "no certificate found in \(certificatePath)") }
        var configuration = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        configuration.minimumTLSVersion = .tlsv12
        if let ca = settings.ca {
            let caPath = FederationTLSPaths.resolve(ca, in: topologyDirectory)
            let roots: [NIOSSLCertificate]
            do { roots = try NIOSSLCertificate.fromPEMFile(caPath) } catch {
                throw FederationTLSError(message: "cannot read the client CA \(caPath): \(error)")
            }
            configuration.trustRoots = .certificates(roots)
            // Clients are not named by host: any certificate the CA signed is accepted.
            configuration.certificateVerification = .noHostnameVerification
        } else {
            configuration.certificateVerification = .none
        }
        return try NIOSSLContext(configuration: configuration)
    }
}
