import Keyspace
import RESP

/// INFO and CONFIG.
extension ClientConnection {
    /// INFO [section ...]: Redis's text format, sections separated by blank lines.
    func info(_ arguments: [[UInt8]]) -> String {
        let requested = Set(arguments.dropFirst().map { String(decoding: $0, as: UTF8.self).lowercased() })
        let everything = requested.isEmpty || requested.contains("all") || requested.contains("everything") || requested.contains("default")
        let now = WallClock.nowMilliseconds()
        var sections: [String] = []
        func section(_ name: String, _ lines: [(String, String)]) {
            guard everything || requested.contains(name.lowercased()) else { return }
            sections.append("# \(name)\r\n" + lines.map { "\($0.0):\($0.1)\r\n" }.joined())
        }
        let node = state.configuration.node
        section("Server", [
            ("redis_version", ServerIdentity.redisCompatibleVersion),
            ("sessionfed_version", ServerIdentity.version),
            ("redis_mode", "standalone"),
            ("os", "Linux"),
            ("arch_bits", "64"),
            ("process_id", String(ProcessIdentity.current)),
            ("tcp_port", String(node.client.port)),
            ("uptime_in_seconds", String((now - state.startedAt) / 1_000)),
            ("uptime_in_days", String((now - state.startedAt) / 86_400_000)),
            ("sessionfed_node", node.name),
            ("sessionfed_site", state.configuration.site.name),
            ("sessionfed_federation", state.configuration.topology.federation),
            ("sessionfed_threads", String(state.configuration.topology.defaults.threads)),
        ])
        section("Clients", [
            ("connected_clients", String(state.clients.count)),
            ("maxclients", String(state.configuration.maximumClients)),
            ("blocked_clients", "0"),
            ("pubsub_clients", String(state.clients.values.filter { !$0.channels.isEmpty || !$0.patterns.isEmpty }.count)),
        ])
        let rss = ProcessIdentity.residentBytes()
        section("Memory", [
            ("used_memory", String(state.keyspace.usedMemoryBytes)),
            ("used_memory_human", Self.human(state.keyspace.usedMemoryBytes)),
            ("used_memory_rss", String(rss)),
            ("used_memory_rss_human", Self.human(rss)),
            ("allocator_allocated", String(MemoryRelease.allocatedBytes)),
            ("maxmemory", String(state.keyspace.configuration.maximumMemoryBytes)),
            ("maxmemory_human", Self.human(state.keyspace.configuration.maximumMemoryBytes)),
            ("maxmemory_policy", "noeviction"),
        ])
        section("Persistence", [
            ("loading", "0"),
            ("async_loading", "0"),
            ("rdb_bgsave_in_progress", "0"),
            ("aof_enabled", "0"),
        ])
        let stats = state.statistics, keyStats = state.keyspace.statistics
        section("Stats", [
            ("total_connections_received", String(stats.connectionsReceived)),
            ("total_commands_processed", String(stats.commandsProcessed)),
            ("rejected_connections", String(stats.rejectedConnections)),
            ("io_threads_active", state.configuration.topology.defaults.threads > 1 ? "1" : "0"),
            ("expired_keys", String(keyStats.expiredKeys)),
            ("evicted_keys", "0"),
            ("keyspace_hits", String(keyStats.keyspaceHits)),
            ("keyspace_misses", String(keyStats.keyspaceMisses)),
            ("pubsub_channels", String(state.channelSubscribers.count)),
            ("pubsub_patterns", String(state.patternSubscribers.count)),
            ("total_error_replies", String(stats.protocolErrors)),
            ("sessionfed_keys_created", String(keyStats.keysCreated)),
            ("sessionfed_keys_destroyed", String(keyStats.keysDestroyed)),
            ("sessionfed_oom_rejections", String(stats.rejectedForMemory)),
            ("sessionfed_deltas_produced", String(state.pendingDeltaCount)),
        ])
        // With `clusterClients`, CLUSTER SLOTS and its kin answer (ClusterCommands); clients in
        // standalone mode are served the same either way.
        section("Cluster", [("cluster_enabled", clusterClientsServed ? "1" : "0")])
        section("Replication", [
            ("role", "master"),
            ("connected_slaves", "0"),
        ])
        // As Redis: one line per database that holds keys.
        let counts = state.keyspace.countsByDatabase(now: now)
        section("Keyspace", counts.keys.sorted().map { ("db\($0)", "keys=\(counts[$0]!.keys),expires=\(counts[$0]!.expires),avg_ttl=0") })
        return sections.joined(separator: "\r\n")
    }

    static func human(_ bytes: Int) -> String {
        if bytes < 1_024 { return "\(bytes)B" }
        let units = ["K", "M", "G", "T"]
        var value = Double(bytes) / 1_024
        var unit = 0
        while value >= 1_024 && unit < units.count - 1 {
            value /= 1_024
            unit += 1
        }
        return String(format2: value) + units[unit]
    }

    /// CONFIG GET pattern [pattern ...] / CONFIG SET parameter value [parameter value ...] /
    /// CONFIG RESETSTAT.
    func config(_ arguments: [[UInt8]]) {
        let sub = String(decoding: arguments[1], as: UTF8.self).uppercased()
        switch sub {
        case "GET":
            guard arguments.count >= 3 else {
                reply(RedisError.wrongArity("config|get"))
                return
            }
            let parameters = currentConfiguration()
            var pairs: [RESPPair] = []
            for name in parameters.keys.sorted() {
                let matched = arguments.dropFirst(2).contains { GlobPattern(Array(String(decoding: $0, as: UTF8.self).lowercased().utf8)).matches(Array(name.utf8)) }
                if matched { pairs.append(RESPPair(.bulk(name), .bulk(parameters[name]!))) }
            }
            reply(.map(pairs))
        case "SET":
            guard arguments.count >= 4, arguments.count % 2 == 0 else {
                reply(RedisError.wrongArity("config|set"))
                return
            }
            var updates: [(String, String)] = []
            for index in stride(from: 2, to: arguments.count, by: 2) {
                updates.append((String(decoding: arguments[index], as: UTF8.self).lowercased(), String(decoding: arguments[index + 1], as: UTF8.self)))
            }
            // Validate everything first: CONFIG SET applies all or nothing.
            var flags = state.notificationFlags
            var maximumMemory = state.keyspace.configuration.maximumMemoryBytes
            var encodings = state.encodingSettings
            var seen: Set<String> = []
            for (name, value) in updates {
                guard seen.insert(name).inserted else {
                    reply(.error("ERR CONFIG SET failed (possibly related to argument '\(name)') - duplicate parameter"))
                    return
                }
                if let parameter = EncodingSettings.parameter(named: name) {
                    switch EncodingSettings.parse(value, for: parameter, as: name) {
                    case .success(let number): encodings.set(parameter, to: number)
                    case .failure(let error):
                        reply(.error(error.message))
                        return
                    }
                    continue
                }
                switch name {
                case "notify-keyspace-events":
                    guard let parsed = NotificationFlags(value) else {
                        reply(.error("ERR CONFIG SET failed (possibly related to argument 'notify-keyspace-events') - Invalid event class character. Use 'Ag$lshzxeKEtmdn'."))
                        return
                    }
                    flags = parsed
                case "maxmemory":
                    guard let bytes = Self.parseMemory(value) else {
                        reply(.error("ERR CONFIG SET failed (possibly related to argument 'maxmemory') - argument must be a memory value"))
                        return
                    }
                    maximumMemory = bytes
                case "maxmemory-policy":
                    guard value.lowercased() == "noeviction" else {
                        reply(.error("ERR CONFIG SET failed (possibly related to argument 'maxmemory-policy') - sessionfed never evicts sessions: only noeviction is supported"))
                        return
                    }
                default:
                    reply(.error("ERR Unknown option or number of arguments for CONFIG SET - '\(name)'"))
                    return
                }
            }
            state.notificationFlags = flags
            state.keyspace.configuration.maximumMemoryBytes = maximumMemory
            state.encodingSettings = encodings
            reply(.ok)
        case "RESETSTAT":
            state.statistics.reset()
            reply(.ok)
        default:
            reply(RedisError.unknownSubcommand(arguments[1], of: "config"))
        }
    }

    func currentConfiguration() -> [String: String] {
        state.encodingSettings.entries.merging([
            "notify-keyspace-events": state.notificationFlags.text,
            "maxmemory": String(state.keyspace.configuration.maximumMemoryBytes),
            "maxmemory-policy": "noeviction",
            "maxclients": String(state.configuration.maximumClients),
            "proto-max-bulk-len": String(state.configuration.limits.maximumBulkBytes),
            "client-query-buffer-limit": String(state.configuration.limits.maximumQueryBufferBytes),
            "databases": "1",
            "save": "",
            "appendonly": "no",
            "timeout": "0",
            "port": String(state.configuration.node.client.port),
            "bind": state.configuration.node.client.host,
        ]) { $1 }
    }

    /// Redis memory units: plain bytes, or k/kb/m/mb/g/gb (k = 1000, kb = 1024).
    static func parseMemory(_ text: String) -> Int? {
        let lower = text.lowercased()
        let units: [(String, Int)] = [("gb", 1 << 30), ("mb", 1 << 20), ("kb", 1 << 10), ("g", 1_000_000_000), ("m", 1_000_000), ("k", 1_000), ("b", 1)]
        for (suffix, multiplier) in units where lower.hasSuffix(suffix) {
            guard let number = Int(lower.dropLast(suffix.count)), number >= 0 else { return nil }
            let (product, overflow) = number.multipliedReportingOverflow(by: multiplier)
            return overflow ? nil : product
        }
        guard let number = Int(lower), number >= 0 else { return nil }
        return number
    }
}

extension String {
    /// Two decimals, without Foundation.
    init(format2 value: Double) {
        let hundredths = Int((value * 100).rounded())
        let fraction = hundredths % 100
        self = "\(hundredths / 100).\(fraction < 10 ? "0" : "")\(fraction)"
    }
}
