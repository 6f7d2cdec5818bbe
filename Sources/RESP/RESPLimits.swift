/// Limits on what a client can make the server buffer or allocate. Each is a named constant
/// with Redis's default where Redis has one, so clients see the same boundaries.
public struct RESPLimits: Hashable, Sendable {
    /// Redis `proto-max-bulk-len`: 512 MiB, the largest string Redis stores.
    public static let defaultMaximumBulkBytes = 512 * 1024 * 1024
    /// Redis's multibulk limit: 1,048,576 arguments per command.
    public static let defaultMaximumArguments = 1024 * 1024
    /// Redis `PROTO_INLINE_MAX_SIZE`: 64 KiB for an inline (telnet-style) command line.
    public static let defaultMaximumInlineBytes = 64 * 1024
    /// Redis `client-query-buffer-limit`: 1 GiB of unprocessed input per client.
    public static let defaultMaximumQueryBufferBytes = 1024 * 1024 * 1024

    public var maximumBulkBytes: Int
    public var maximumArguments: Int
    public var maximumInlineBytes: Int
    public var maximumQueryBufferBytes: Int

    public init(
        maximumBulkBytes: Int = defaultMaximumBulkBytes,
        maximumArguments: Int = defaultMaximumArguments,
        maximumInlineBytes: Int = defaultMaximumInlineBytes,
        maximumQueryBufferBytes: Int = defaultMaximumQueryBufferBytes
    ) {
        self.maximumBulkBytes = maximumBulkBytes
        self.maximumArguments = maximumArguments
        self.maximumInlineBytes = maximumInlineBytes
        self.maximumQueryBufferBytes = maximumQueryBufferBytes
    }

    public static let `default` = RESPLimits()
}
