/// A property a fuzz input broke: which one, and what the checked code did instead. Thrown
/// rather than trapped, so a test replaying the corpus can name the file and go on; the fuzz
/// targets trap on it so that libFuzzer keeps the input as a crash.
public struct PropertyViolation: Error, Hashable, Sendable, CustomStringConvertible {
    public var property: String
    public var details: String

    public init(_ property: String, _ details: String) {
        self.property = property
        self.details = details
    }

    public var description: String { "\(property): \(details)" }
}
