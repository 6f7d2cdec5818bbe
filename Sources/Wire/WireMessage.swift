import SessionModel
import SwiftProtobuf

/// Encoding and decoding of single messages, with protobuf errors turned into `WireError`.
public enum WireMessage {
    /// Decoder options: a nesting limit well above what our messages use, so hostile input
    /// cannot recurse deeply.
    static let decodingOptions: BinaryDecodingOptions = {
        var options = BinaryDecodingOptions()
        options.messageDepthLimit = 32
        return options
    }()

    public static func encode<M: SwiftProtobuf.Message>(_ message: M) -> [UInt8] {
        do {
            return try message.serializedBytes()
        } catch {
            // proto3 messages have no required fields, so serialization cannot fail.
            preconditionFailure("Invalid state: serializing \(M.protoMessageName) failed: \(error)")
        }
    }

    public static func decode<M: SwiftProtobuf.Message>(_ type: M.Type, from bytes: [UInt8]) throws(WireError) -> M {
        do {
            return try M(serializedBytes: bytes, options: decodingOptions)
        } catch {
            throw .malformed(message: M.protoMessageName, reason: "\(error)")
        }
    }

    public static func encode(_ delta: Delta) -> [UInt8] {
        encode(Sessionfed_V1_Delta(delta))
    }

    public static func decodeDelta(_ bytes: [UInt8]) throws(WireError) -> Delta {
        try decode(Sessionfed_V1_Delta.self, from: bytes).model()
    }

    public static func encode(key: [UInt8], state: KeyState) -> [UInt8] {
        encode(Sessionfed_V1_KeyState(key: key, state: state))
    }

    public static func decodeKeyState(_ bytes: [UInt8]) throws(WireError) -> (key: [UInt8], state: KeyState) {
        try decode(Sessionfed_V1_KeyState.self, from: bytes).model()
    }
}
