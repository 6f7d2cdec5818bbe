/// Redis's encoding thresholds (`hash-max-listpack-entries` and the like). Tools and test
/// suites tune them with CONFIG SET and abort when it fails; this store keeps every key in
/// one encoding, so they are accepted, validated as Redis validates them, read back by
/// CONFIG GET under both their names, and otherwise have no effect.
struct EncodingSettings {
    struct Parameter {
        let name: String
        /// The pre-7.0 name (`ziplist`), an alias of the same value.
        let alias: String?
        let range: ClosedRange<Int>
        let defaultValue: Int
        /// A memory value (`64`, `1kb`, `2m`), as Redis parses the `*-value` thresholds.
        var memory = false
    }

    /// Redis 7's parameters with its defaults and bounds.
    static let parameters: [Parameter] = [
        Parameter(name: "hash-max-listpack-entries", alias: "hash-max-ziplist-entries", range: 0...Int.max, defaultValue: 512),
        Parameter(name: "hash-max-listpack-value", alias: "hash-max-ziplist-value", range: 0...Int.max, defaultValue: 64, memory: true),
        Parameter(name: "zset-max-listpack-entries", alias: "zset-max-ziplist-entries", range: 0...Int.max, defaultValue: 128),
        Parameter(name: "zset-max-listpack-value", alias: "zset-max-ziplist-value", range: 0...Int.max, defaultValue: 64, memory: true),
        Parameter(name: "set-max-intset-entries", alias: nil, range: 0...Int.max, defaultValue: 512),
        Parameter(name: "set-max-listpack-entries", alias: nil, range: 0...Int.max, defaultValue: 128),
        Parameter(name: "set-max-listpack-value", alias: nil, range: 0...Int.max, defaultValue: 64, memory: true),
        Parameter(name: "list-max-listpack-size", alias: "list-max-ziplist-size", range: Int(Int32.min)...Int(Int32.max), defaultValue: -2),
        Parameter(name: "list-compress-depth", alias: nil, range: 0...Int(Int32.max), defaultValue: 0),
    ]

    private(set) var values: [String: Int] = Dictionary(uniqueKeysWithValues: parameters.map { ($0.name, $0.defaultValue) })

    /// The parameter `name` (either spelling) stands for, or nil when it is none of these.
    static func parameter(named name: String) -> Parameter? {
        parameters.first { $0.name == name || $0.alias == name }
    }

    /// The value CONFIG SET would store, or Redis's error for `text`.
    static func parse(_ text: String, for parameter: Parameter, as name: String) -> Result<Int, ConfigurationError> {
        if parameter.memory {
            guard let bytes = ClientConnection.parseMemory(text) else {
                return .failure(ConfigurationError(message: "ERR CONFIG SET failed (possibly related to argument '\(name)') - argument must be a memory value"))
            }
            return .success(bytes)
        }
        guard let value = Int(text) else {
            return .failure(ConfigurationError(message: "ERR CONFIG SET failed (possibly related to argument '\(name)') - argument couldn't be parsed into an integer"))
        }
        guard parameter.range.contains(value) else {
            return .failure(
                ConfigurationError(
                    message: "ERR CONFIG SET failed (possibly related to argument '\(name)') - argument must be between \(parameter.range.lowerBound) and \(parameter.range.upperBound) inclusive"
                )
            )
        }
        return .success(value)
    }

    mutating func set(_ parameter: Parameter, to value: Int) {
        values[parameter.name] = value
    }

    /// Every name (both spellings) with its value, for CONFIG GET.
    var entries: [String: String] {
        var result: [String: String] = [:]
        for parameter in Self.parameters {
            let value = String(values[parameter.name]!)
            result[parameter.name] = value
            if let alias = parameter.alias { result[alias] = value }
        }
        return result
    }

    struct ConfigurationError: Error {
        let message: String
    }
}
