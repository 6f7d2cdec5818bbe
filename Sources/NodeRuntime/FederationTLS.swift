import Crypto
import Foundation
import NIOCore
import NIOSSL
import SwiftASN1
import Topology
import X509

/// Mutual TLS between sites: every node presents `<directory>/<node>.pem` and `.key`, and
/// accepts only peers whose certificate the federation CA signed. Which node a certificate
/// names (its subject alternative DNS names and common name) is checked against the peer's
/// Hello by the federation core.
struct FederationTLS: Sendable {
    let server: NIOSSLContext
    let client: NIOSSLContext

    /// Loads the node's federation and peer TLS, reloadable on SIGHUP; the expiries of the
    /// node's certificate and the CA.
    static func reloadable(settings: Topology.TLSSettings, node: String, topologyDirectory: String) throws -> ReloadableTLS<FederationTLS> {
        try ReloadableTLS {
            let tls = try FederationTLS(settings: settings, node: node, topologyDirectory: topologyDirectory)
            let directory = FederationTLSPaths.resolve(settings.directory, in: topologyDirectory)
            return ReloadableTLS.Loaded(
                contexts: tls,
                expiries: [
                    "node": try TLSFiles.notAfter(ofPEMFile: "\(directory)/\(node).pem"),
                    "ca": try TLSFiles.notAfter(ofPEMFile: FederationTLSPaths.resolve(settings.ca, in: topologyDirectory)),
                ]
            )
        }
    }

    init(settings: Topology.TLSSettings, node: String, topologyDirectory: String) throws {
        let caPath = FederationTLSPaths.resolve(settings.ca, in: topologyDirectory)
        let directory = FederationTLSPaths.resolve(settings.directory, in: topologyDirectory)
        let certificatePath = "\(directory)/\(node).pem"
        let keyPath = "\(directory)/\(node).key"
        let hint = "; create them with `sessionfed certs init --topology FILE --out DIR`"
        let roots = try TLSFiles.certificates(caPath, what: "the federation CA", hint: hint)
        let chain = try TLSFiles.certificates(certificatePath, what: "this node's certificate", hint: hint)
        let key = try TLSFiles.privateKey(keyPath, what: "this node's private key", hint: hint)
        var serverConfiguration = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key)
        )
        serverConfiguration.trustRoots = .certificates(roots)
        serverConfiguration.certificateVerification = .noHostnameVerification
        serverConfiguration.minimumTLSVersion = .tlsv12
        var clientConfiguration = TLSConfiguration.makeClientConfiguration()
        clientConfiguration.certificateChain = chain.map { .certificate($0) }
        clientConfiguration.privateKey = .privateKey(key)
        clientConfiguration.trustRoots = .certificates(roots)
        // Peers are named by node, not by host name: the core checks the certificate's names
        // against the node the peer claims to be and the topology.
        clientConfiguration.certificateVerification = .noHostnameVerification
        clientConfiguration.minimumTLSVersion = .tlsv12
        server = try NIOSSLContext(configuration: serverConfiguration)
        client = try NIOSSLContext(configuration: clientConfiguration)
    }

    /// The names the peer's verified certificate carries (DNS subject alternative names and the
    /// common name); nil when the channel has no TLS.
    static func peerNames(of channel: Channel) -> Set<String>? {
        guard let handler = try? channel.pipeline.syncOperations.handler(type: NIOSSLHandler.self) else { return nil }
        guard let peer = handler.peerCertificate, let der = try? peer.toDERBytes(), let certificate = try? Certificate(derEncoded: der) else {
            return []
        }
        var names: Set<String> = []
        if let alternatives = try? certificate.extensions.subjectAlternativeNames {
            for name in alternatives {
                if case .dnsName(let dns) = name { names.insert(dns) }
            }
        }
        for rdn in certificate.subject {
            for attribute in rdn where attribute.type == .RDNAttributeType.commonName {
                names.insert(String(describing: attribute.value))
            }
        }
        return names
    }
}

public enum FederationTLSPaths {
    /// A topology path, relative to the topology file's directory unless absolute.
    public static func resolve(_ path: String, in directory: String) -> String {
        path.hasPrefix("/") ? path : "\(directory)/\(path)"
    }
}

struct FederationTLSError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}

/// `sessionfed certs init`: a federation CA and one certificate per node of a topology.
public enum FederationCertificates {
    public struct File: Sendable {
        public var name: String
        public var contents: String
        /// Private keys are written readable by the owner only.
        public var secret: Bool

        public init(name: String, contents: String, secret: Bool) {
            self.name = name
            self.contents = contents
            self.secret = secret
        }
    }

    /// A new federation CA and one certificate per node (`sessionfed certs init`).
    public static func issue(for topology: Topology, validityDays: Int, now: Date = Date()) throws -> [File] {
        let caPrivateKey = Certificate.PrivateKey(P256.Signing.PrivateKey())
        let caName = try DistinguishedName {
            OrganizationName(topology.federation)
            CommonName("sessionfed federation CA (\(topology.federation))")
        }
        let ca = try Certificate(
            version: .v3,
            serialNumber: Certificate.SerialNumber(),
            publicKey: caPrivateKey.publicKey,
            notValidBefore: now.addingTimeInterval(-3_600),
            notValidAfter: now.addingTimeInterval(Double(validityDays) * 86_400),
            issuer: caName,
            subject: caName,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
            },
            issuerPrivateKey: caPrivateKey
        )
        return [
            File(name: "ca.pem", contents: try ca.serializeAsPEM().pemString, secret: false),
            File(name: "ca.key", contents: try caPrivateKey.serializeAsPEM().pemString, secret: true),
        ] + (try nodeCertificates(for: topology, ca: ca, caKey: caPrivateKey, validityDays: validityDays, now: now))
    }

    /// New certificates for every node from an existing CA (`sessionfed certs rotate`): the
    /// nodes keep trusting each other through the same CA while each reloads its own.
    public static func rotate(for topology: Topology, caPEM: String, caKeyPEM: String, validityDays: Int, now: Date = Date()) throws -> [File] {
        let ca = try Certificate(pemEncoded: caPEM)
        let caKey = try Certificate.PrivateKey(pemEncoded: caKeyPEM)
        guard caKey.publicKey == ca.publicKey else {
            throw FederationTLSError(message: "the CA key does not belong to the CA certificate")
        }
        return try nodeCertificates(for: topology, ca: ca, caKey: caKey, validityDays: validityDays, now: now)
    }

    static func nodeCertificates(for topology: Topology, ca: Certificate, caKey caPrivateKey: Certificate.PrivateKey, validityDays: Int, now: Date) throws -> [File] {
        let caName = ca.subject
        let notBefore = now.addingTimeInterval(-3_600)
        let notAfter = min(now.addingTimeInterval(Double(validityDays) * 86_400), ca.notValidAfter)
        var files: [File] = []
        for site in topology.sites {
            for node in site.nodes {
                let key = Certificate.PrivateKey(P256.Signing.PrivateKey())
                var alternatives: [GeneralName] = [.dnsName(node.name)]
                let host = node.federation.host
                if let octets = ipv4Octets(host) {
                    alternatives.append(.ipAddress(ASN1OctetString(contentBytes: ArraySlice(octets))))
                } else if host != node.name {
                    alternatives.append(.dnsName(host))
                }
                let certificate = try Certificate(
                    version: .v3,
                    serialNumber: Certificate.SerialNumber(),
                    publicKey: key.publicKey,
                    notValidBefore: notBefore,
                    notValidAfter: notAfter,
                    issuer: caName,
                    subject: try DistinguishedName {
                        OrganizationName(topology.federation)
                        OrganizationalUnitName(site.name)
                        CommonName(node.name)
                    },
                    signatureAlgorithm: .ecdsaWithSHA256,
                    extensions: try Certificate.Extensions {
                        Critical(BasicConstraints.notCertificateAuthority)
                        Critical(KeyUsage(digitalSignature: true))
                        try ExtendedKeyUsage([.serverAuth, .clientAuth])
                        SubjectAlternativeNames(alternatives)
                    },
                    issuerPrivateKey: caPrivateKey
                )
                files.append(File(name: "\(node.name).pem", contents: try certificate.serializeAsPEM().pemString, secret: false))
                files.append(File(name: "\(node.name).key", contents: try key.serializeAsPEM().pemString, secret: true))
            }
        }
        return files
    }

    static func ipv4Octets(_ host: String) -> [UInt8]? {
        let parts = host.split(separator: ".")
        guard parts.count == 4 else { return nil }
        let octets = parts.compactMap { UInt8($0) }
        return octets.count == 4 ? octets : nil
    }

    /// Writes the files into `directory` (created if missing). Refuses to replace an existing
    /// CA unless `force`: a new CA would lock out every node still holding the old one.
    public static func write(_ files: [File], to directory: String, force: Bool) throws {
        let manager = FileManager.default
        try manager.createDirectory(atPath: directory, withIntermediateDirectories: true)
        if !force, files.contains(where: { $0.name == "ca.pem" }), manager.fileExists(atPath: "\(directory)/ca.pem") {
            throw FederationTLSError(message: "\(directory)/ca.pem exists; a new CA locks out every node still using the old one. Pass --force to replace it")
        }
        for file in files {
            let path = "\(directory)/\(file.name)"
            guard manager.createFile(atPath: path, contents: Data(file.contents.utf8), attributes: [.posixPermissions: file.secret ? 0o600 : 0o644]) else {
                throw FederationTLSError(message: "cannot write \(path)")
            }
        }
    }
}

extension ReloadableTLS where Contexts == FederationTLS {
    /// The server context in force, asked at each accepted connection.
    var serverContext: @Sendable () -> NIOSSLContext { { self.contexts.server } }
    /// The client context in force, asked at each dial.
    var clientContext: @Sendable () -> NIOSSLContext { { self.contexts.client } }
}
