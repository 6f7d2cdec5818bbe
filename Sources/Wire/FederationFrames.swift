#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Federation
import SessionModel

// The protobuf encoding of the federation protocol's messages (`Federation` defines them):
// each `FederationMessage` is one body of `sessionfed.v1.Frame`, and the handshake's `Hello`
// is a message of its own.

extension FederationMessage {
    /// The frame body that carries the message.
    var wireBody: Sessionfed_V1_Frame.OneOf_Body {
        switch self {
        case .deltaBatch(let batch):
            var wire = Sessionfed_V1_DeltaBatch()
            wire.originSite = batch.originSite.rawValue
            wire.senderSite = batch.senderSite.rawValue
            wire.partition = batch.partition
            wire.firstSequence = batch.firstSequence
            wire.deltas = batch.deltas.map(Sessionfed_V1_Delta.init)
            return .deltaBatch(wire)
        case .deltaBatchAck(let ack):
            var wire = Sessionfed_V1_DeltaBatchAck()
            wire.originSite = ack.originSite.rawValue
            wire.partition = ack.partition
            wire.sequence = ack.sequence
            return .deltaBatchAck(wire)
        case .keyStates(let partition, let records):
            var wire = Sessionfed_V1_KeyStateBatch()
            wire.partition = partition
            wire.states = records.map(\.wire)
            return .keyStateBatch(wire)
        case .merkleRootsRequest(let round):
            var wire = Sessionfed_V1_MerkleRootsRequest()
            wire.round = round
            return .merkleRootsRequest(wire)
        case .merkleRoots(let round, let roots):
            var wire = Sessionfed_V1_MerkleRoots()
            wire.round = round
            wire.roots = roots.map { Data($0.bytes) }
            return .merkleRoots(wire)
        case .merkleLeavesRequest(let round, let partitions):
            var wire = Sessionfed_V1_MerkleLeavesRequest()
            wire.round = round
            wire.partitions = partitions
            return .merkleLeavesRequest(wire)
        case .merkleLeaves(let round, let partitions):
            var wire = Sessionfed_V1_MerkleLeaves()
            wire.round = round
            wire.partitions = partitions.map { leaves in
                var entry = Sessionfed_V1_PartitionLeaves()
                entry.partition = leaves.partition
                entry.leaves = leaves.leaves.map { Data($0.bytes) }
                return entry
            }
            return .merkleLeaves(wire)
        case .bucketDigests(let round, let chunk, let buckets):
            var wire = Sessionfed_V1_BucketDigests()
            wire.round = round
            wire.chunk = chunk
            wire.buckets = buckets.map { bucket in
                var entry = Sessionfed_V1_Bucket()
                entry.partition = bucket.partition
                entry.leaf = bucket.leaf
                entry.keys = bucket.keys.map(\.wire)
                return entry
            }
            return .bucketDigests(wire)
        case .collectionCheck(let round, let keys):
            var wire = Sessionfed_V1_CollectionCheck()
            wire.round = round
            wire.keys = keys.map(\.wire)
            return .collectionCheck(wire)
        case .collectionVote(let round, let agreed, let partitions):
            var wire = Sessionfed_V1_CollectionVote()
            wire.round = round
            wire.agreed = agreed.map { Data($0) }
            wire.partitions = partitions
            return .collectionVote(wire)
        case .collectionCommit(let keys):
            var wire = Sessionfed_V1_CollectionCommit()
            wire.keys = keys.map(\.wire)
            return .collectionCommit(wire)
        case .bucketRepair(let repair):
            var wire = Sessionfed_V1_BucketRepair()
            wire.round = repair.round
            wire.chunk = repair.chunk
            wire.last = repair.last
            wire.states = repair.states.map(\.wire)
            wire.wanted = repair.wanted.map { Data($0) }
            return .bucketRepair(wire)
        }
    }

    /// The message a frame body carries (nil for a body that is not a federation message).
    static func federation(from body: Sessionfed_V1_Frame.OneOf_Body) throws(WireError) -> FederationMessage? {
        switch body {
        case .deltaBatch(let batch):
            var deltas: [Delta] = []
            deltas.reserveCapacity(batch.deltas.count)
            for delta in batch.deltas { deltas.append(try delta.model()) }
            guard batch.firstSequence > 0 || deltas.isEmpty else {
                throw .invalidValue(message: "DeltaBatch", field: "first_sequence", reason: "must be at least 1")
            }
            guard batch.firstSequence <= UInt64.max - UInt64(deltas.count) else {
                throw .invalidValue(message: "DeltaBatch", field: "first_sequence", reason: "sequence numbers overflow")
            }
            return .deltaBatch(
                DeltaBatch(
                    originSite: SiteID(batch.originSite),
                    senderSite: SiteID(batch.senderSite),
                    partition: batch.partition,
                    firstSequence: batch.firstSequence,
                    deltas: deltas
                )
            )
        case .deltaBatchAck(let ack):
            return .deltaBatchAck(DeltaBatchAck(originSite: SiteID(ack.originSite), partition: ack.partition, sequence: ack.sequence))
        case .keyStateBatch(let batch):
            var records: [KeyStateRecord] = []
            for state in batch.states { records.append(try KeyStateRecord(wire: state)) }
            return .keyStates(partition: batch.partition, records)
        case .merkleRootsRequest(let request):
            return .merkleRootsRequest(round: request.round)
        case .merkleRoots(let roots):
            var digests: [StateDigest] = []
            for root in roots.roots { digests.append(try StateDigest(wire: root, in: "MerkleRoots")) }
            return .merkleRoots(round: roots.round, roots: digests)
        case .merkleLeavesRequest(let request):
            return .merkleLeavesRequest(round: request.round, partitions: request.partitions)
        case .merkleLeaves(let wire):
            var partitions: [PartitionLeaves] = []
            for entry in wire.partitions {
                var leaves: [StateDigest] = []
                for leaf in entry.leaves { leaves.append(try StateDigest(wire: leaf, in: "PartitionLeaves")) }
                partitions.append(PartitionLeaves(partition: entry.partition, leaves: leaves))
            }
            return .merkleLeaves(round: wire.round, partitions)
        case .bucketDigests(let wire):
            var buckets: [Bucket] = []
            for entry in wire.buckets {
                buckets.append(Bucket(partition: entry.partition, leaf: entry.leaf, keys: try entry.keys.map(KeyDigest.init(wire:))))
            }
            return .bucketDigests(round: wire.round, chunk: wire.chunk, buckets)
        case .collectionCheck(let wire):
            return .collectionCheck(round: wire.round, try wire.keys.map(KeyDigest.init(wire:)))
        case .collectionVote(let wire):
            return .collectionVote(round: wire.round, agreed: wire.agreed.map { Array($0) }, partitions: wire.partitions)
        case .collectionCommit(let wire):
            return .collectionCommit(try wire.keys.map(KeyDigest.init(wire:)))
        case .bucketRepair(let wire):
            var records: [KeyStateRecord] = []
            for state in wire.states { records.append(try KeyStateRecord(wire: state)) }
            return .bucketRepair(
                BucketRepair(round: wire.round, chunk: wire.chunk, last: wire.last, states: records, wanted: wire.wanted.map { Array($0) })
            )
        default:
            return nil
        }
    }
}

extension KeyDigest {
    var wire: Sessionfed_V1_KeyDigest {
        var wire = Sessionfed_V1_KeyDigest()
        wire.key = Data(key)
        wire.digest = Data(digest.bytes)
        return wire
    }

    init(wire: Sessionfed_V1_KeyDigest) throws(WireError) {
        self.init(key: Array(wire.key), digest: try StateDigest(wire: wire.digest, in: "KeyDigest"))
    }
}

extension StateDigest {
    /// 16 bytes, big-endian `high` then `low`.
    public var bytes: [UInt8] {
        (0..<8).map { UInt8(truncatingIfNeeded: high >> (56 - 8 * $0)) }
            + (0..<8).map { UInt8(truncatingIfNeeded: low >> (56 - 8 * $0)) }
    }

    init(wire: Data, in message: String) throws(WireError) {
        guard wire.count == 16 else {
            throw .invalidValue(message: message, field: "digest", reason: "must be 16 bytes, got \(wire.count)")
        }
        let bytes = Array(wire)
        self.init(
            high: bytes[0..<8].reduce(UInt64(0)) { $0 << 8 | UInt64($1) },
            low: bytes[8..<16].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        )
    }
}

extension Hello {
    var wire: Sessionfed_V1_Hello {
        var wire = Sessionfed_V1_Hello()
        wire.federation = federation
        wire.protocolVersion = protocolVersion
        wire.siteID = site.rawValue
        wire.siteName = siteName
        wire.nodeName = nodeName
        wire.topologyVersion = topologyVersion
        if let roles {
            wire.roleEpoch = roles.epoch
            wire.roles = Sessionfed_V1_RoleAssignment(roles)
        }
        wire.incarnation = incarnation
        wire.targetSiteID = targetSite.rawValue
        wire.voters = voters
        return wire
    }

    init(wire: Sessionfed_V1_Hello) {
        self.init(
            federation: wire.federation, protocolVersion: wire.protocolVersion, site: SiteID(wire.siteID),
            siteName: wire.siteName, nodeName: wire.nodeName, topologyVersion: wire.topologyVersion,
            roles: wire.hasRoles ? wire.roles.model : nil, incarnation: wire.incarnation, targetSite: SiteID(wire.targetSiteID), voters: wire.voters
        )
    }
}

extension KeyStateRecord {
    var wire: Sessionfed_V1_KeyState { Sessionfed_V1_KeyState(key: key, state: state) }

    init(wire: Sessionfed_V1_KeyState) throws(WireError) {
        let (key, model) = try wire.model()
        self.init(key: key, state: model)
    }
}
