import Foundation
import NIOSSL
import Synchronization
import X509

/// TLS contexts a node replaces while it runs (SIGHUP, after `sessionfed certs rotate`): each
/// new connection takes the context in force, established connections keep theirs, so no
/// link drops. A reload that fails (a missing or broken file) keeps the contexts in force.
final class ReloadableTLS<Contexts: Sendable>: Sendable {
    struct Loaded: Sendable {
        var contexts: Contexts
        /// Per certificate file loaded, when it expires (seconds since 1970).
        var expiries: [String: UInt64]
    }

    private let current: Mutex<Loaded>
    private let load: @Sendable () throws -> Loaded

    init(_ load: @escaping @Sendable () throws -> Loaded) throws {
        self.load = load
        current = Mutex(try load())
    }

    var contexts: Contexts { current.withLock { $0.contexts } }
    var expiries: [String: UInt64] { current.withLock { $0.expiries } }

    func reload() throws {
        let loaded = try load()
        current.withLock { $0 = loaded }
    }
}

/// The PEM files a node's TLS reads (federation, peers, clients), each failure naming the file
/// and what it was for.
enum TLSFiles {
    /// Every certificate of a PEM file; at least one.
    static func certificates(_ path: String, what: String, hint: String) throws -> [NIOSSLCertificate] {
        let certificates: [NIOSSLCertificate]
        do { certificates = try NIOSSLCertificate.fromPEMFile(path) } catch {
            throw FederationTLSError(message: "cannot read \(what) \(path): \(error)\(hint)")
        }
        guard !certificates.isEmpty else { throw FederationTLSError(message: "no certificate found in \(path)\(hint)") }
        return certificates
    }

    static func privateKey(_ path: String, what: String, hint: String) throws -> NIOSSLPrivateKey {
        do { return try NIOSSLPrivateKey(file: path, format: .pem) } catch {
            throw FederationTLSError(message: "cannot read \(what) \(path): \(error)\(hint)")
        }
    }

    /// When the first certificate of a PEM file expires (seconds since 1970).
    static func notAfter(ofPEMFile path: String) throws -> UInt64 {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let certificate = try Certificate(pemEncoded: text)
        return UInt64(max(0, certificate.notValidAfter.timeIntervalSince1970))
    }
}
