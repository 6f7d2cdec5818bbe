/// Why bytes from a peer could not be decoded. Thrown, never trapped: the caller closes the one
/// connection the bytes came from (DESIGN.md §6).
public enum WireError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The bytes are not a valid protobuf encoding of the expected message.
    case malformed(message: String, reason: String)
    /// A field the model needs is absent.
    case missingField(message: String, field: String)
    /// A field holds a value the model cannot accept.
    case invalidValue(message: String, field: String, reason: String)
    /// A frame announced a length above the limit.
    case frameTooLarge(length: UInt32, limit: UInt32)

    public var description: String {
        switch self {
        case .malformed(let message, let reason):
            return "malformed \(message): \(reason)"
        case .missingField(let message, let field):
            return "\(message) is missing \(field)"
        case .invalidValue(let message, let field, let reason):
            return "\(message).\(field) is invalid: \(reason)"
        case .frameTooLarge(let length, let limit):
            return "frame of \(length) bytes exceeds the limit of \(limit) bytes"
        }
    }
}
