import SessionModel

/// The effect of one command on one partition, as its primary replicates it to its backups
/// (DESIGN.md §3). A backup that applies the same writes in the same order holds the same
/// keys: deltas are joined (the same lattice join federation uses, so a copy that already
/// holds part of a write — after a state transfer — is not harmed by it) and expired keys
/// are dropped as the primary dropped them. Expiry is the primary's decision alone inside a
/// site: a backup never expires a key by its own clock, so clock drift between nodes cannot
/// make two copies of a partition differ.
public struct ReplicatedWrite: Hashable, Sendable {
    public var deltas: [Delta]
    /// Keys the primary found expired and released (lazily or by its active sweep).
    public var expiredKeys: [[UInt8]]
    /// Whole key states merged in: another site's data an anti-entropy round brought (a join,
    /// like deltas).
    public var states: [TransferredKey]
    /// Keys the primary collected federation-wide (every site agreed on their state): dropped,
    /// their context remembered as the primary remembers it.
    public var collectedKeys: [[UInt8]]

    public init(deltas: [Delta] = [], expiredKeys: [[UInt8]] = [], states: [TransferredKey] = [], collectedKeys: [[UInt8]] = []) {
        self.deltas = deltas
        self.expiredKeys = expiredKeys
        self.states = states
        self.collectedKeys = collectedKeys
    }

    public var isEmpty: Bool { deltas.isEmpty && expiredKeys.isEmpty && states.isEmpty && collectedKeys.isEmpty }
}

/// One key's full state, as a state transfer carries it.
public struct TransferredKey: Hashable, Sendable {
    public var key: [UInt8]
    public var state: KeyState

    public init(key: [UInt8], state: KeyState) {
        self.key = key
        self.state = state
    }
}

/// Limits and timing of a partition's replication.
public struct ReplicationSettings: Hashable, Sendable {
    /// Writes per replication message: a backup that fell behind is caught up in messages of
    /// this size, so one resend never builds an unbounded frame.
    public var maximumWritesPerMessage = 256
    /// Keys per state-transfer chunk: one chunk is read, encoded and merged in well under a
    /// millisecond for session-sized keys, so a transfer never stalls an event loop.
    public var keysPerChunk = 128
    /// A backup whose acknowledgements stop advancing for this long is sent again everything
    /// past what it acknowledged (a connection was replaced and frames were lost).
    public var resendAfterMilliseconds: UInt64 = 200
    /// A backup asks again for a transfer nobody answered after this long (the primary may
    /// not have applied the map that names the backup yet).
    public var transferRequestRetryMilliseconds: UInt64 = 250
    /// A backup that heard nothing of its running transfer for this long starts it again.
    public var transferTimeoutMilliseconds: UInt64 = 2_000
    /// The writes a primary keeps for a backup that is catching up; beyond it the backup's
    /// transfer is abandoned (it restarts), so a stuck copy cannot grow the primary's memory
    /// without bound. In-sync backups are never abandoned: the control plane removes them.
    public var maximumLogWrites = 100_000

    public init() {}
}
