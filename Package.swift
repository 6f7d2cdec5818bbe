// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "SessionFederation",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "SessionModel", targets: ["SessionModel"]),
        .library(name: "Wire", targets: ["Wire"]),
        .executable(name: "sessionfed", targets: ["sessionfed"]),
        .executable(name: "wan-proxy", targets: ["wan-proxy"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-certificates", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
    ],
    targets: [
        // Pure: values, version vectors, dots, HLC, deltas and the merge rules (DESIGN.md §2).
        .target(name: "SessionModel"),
        // The codec: generated protobuf code, conversions of the protocol modules' messages to and
        // from it, and framing (DESIGN.md §6).
        .target(
            name: "Wire",
            dependencies: [
                "SessionModel", "ControlPlane", "Replication", "Federation",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]
        ),
        // RESP2/RESP3 parsing and encoding, command table, glob patterns (pure; ByteBuffer only).
        .target(name: "RESP", dependencies: [.product(name: "NIOCore", package: "swift-nio")]),
        // Pure: a node's keyspace, Redis command semantics over SessionModel, expiry, memory.
        .target(name: "Keyspace", dependencies: ["SessionModel", "RESP"]),
        // Pure: outboxes, batching, acknowledgements, hub forwarding, anti-entropy (DESIGN.md §4).
        .target(name: "Federation", dependencies: ["SessionModel", "Keyspace"]),
        // Pure: Raft among a site's voters and the replicated cluster map (DESIGN.md §3).
        .target(name: "ControlPlane", dependencies: ["SessionModel"]),
        // Pure: a partition's primary and backup state machines (DESIGN.md §3).
        .target(name: "Replication", dependencies: ["SessionModel", "ControlPlane"]),
        // Deterministic simulation of a site's control plane with seeded faults and checkers.
        .target(name: "Simulator", dependencies: ["ControlPlane", "SessionModel", "Wire", "Replication", "Keyspace", "RESP"]),
        // Topology file model, YAML parsing and validation (DESIGN.md §9).
        .target(name: "Topology", dependencies: ["SessionModel", .product(name: "Yams", package: "Yams")]),
        // The C allocator's controls Swift's Glibc module leaves out (malloc_trim, mallinfo2).
        .target(name: "CAllocator"),
        // Drives the pure modules: NIO servers, clocks, admin HTTP, metrics, services.
        .target(
            name: "NodeRuntime",
            dependencies: [
                "SessionModel", "Wire", "RESP", "Keyspace", "Topology", "Federation", "ControlPlane", "Replication", "CAllocator",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            // The node's state and handlers are classes confined to one event loop, so every
            // access to one of their properties carried a run-time exclusivity check: a tenth of
            // a pipelined GET (Benchmarks/README.md, "The command path"). Release builds skip
            // that check, as the standard library's own build does; debug builds, which run the
            // tests, keep it, and the compile-time checks stay in both.
            swiftSettings: [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]
        ),
        // A test tool: the wide-area link between sites in tests and rehearsals (delay, cut, blackhole).
        .executableTarget(
            name: "wan-proxy",
            dependencies: [
                "Topology",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .executableTarget(
            name: "sessionfed",
            dependencies: [
                "NodeRuntime", "Topology", "Simulator", "SessionModel",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // Fuzzing (README "Fuzzing"): the properties each libFuzzer target checks, shared with the
        // tests that replay the committed corpus in every `swift test`.
        .target(
            name: "FuzzChecks",
            dependencies: ["RESP", "Wire", "Topology", "SessionModel", "CLibFuzzer", .product(name: "NIOCore", package: "swift-nio")],
            path: "Fuzz/FuzzChecks"
        ),
        // libFuzzer's driver, declared for the fuzz targets' `main` (`FuzzTarget.main`; libFuzzer
        // links only with -sanitize=fuzzer).
        .target(name: "CLibFuzzer", path: "Fuzz/CLibFuzzer"),
        // libFuzzer targets when built with `-sanitize=fuzzer -DFUZZING` (scripts/fuzz/run.sh);
        // otherwise a `main` that replays the files it is given, so `swift build` stays plain.
        .executableTarget(name: "FuzzRESPParser", dependencies: ["FuzzChecks"], path: "Fuzz/FuzzRESPParser"),
        .executableTarget(name: "FuzzFrameDecoder", dependencies: ["FuzzChecks"], path: "Fuzz/FuzzFrameDecoder"),
        .executableTarget(name: "FuzzTopologyParser", dependencies: ["FuzzChecks"], path: "Fuzz/FuzzTopologyParser"),
        .testTarget(name: "SessionModelTests", dependencies: ["SessionModel", "Wire"]),
        .testTarget(name: "WireTests", dependencies: ["SessionModel", "Wire", "Federation", "Replication", "ControlPlane", "FuzzChecks"]),
        .testTarget(name: "RESPTests", dependencies: ["RESP", "FuzzChecks", .product(name: "NIOCore", package: "swift-nio")]),
        .testTarget(name: "KeyspaceTests", dependencies: ["Keyspace", "RESP", "SessionModel"]),
        .testTarget(name: "FederationTests", dependencies: ["Federation", "Keyspace", "SessionModel", "Wire", "RESP", "ControlPlane"]),
        .testTarget(name: "SimulatorTests", dependencies: ["Simulator", "ControlPlane", "SessionModel", "Wire", "Replication"]),
        .testTarget(name: "ReplicationTests", dependencies: ["Replication", "SessionModel", "ControlPlane"]),
        .testTarget(name: "TopologyTests", dependencies: ["Topology", "SessionModel", "FuzzChecks"], exclude: ["plans"]),
        .testTarget(
            name: "NodeRuntimeTests",
            dependencies: [
                "NodeRuntime", "Topology", "TestSupport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // Real `sessionfed` processes on loopback; depends on the executable so it is built.
        .testTarget(name: "IntegrationTests", dependencies: ["sessionfed", "TestSupport"]),
        // Helpers the test targets share: loopback sockets and RESP clients, free ports, polling.
        .target(name: "TestSupport", path: "Tests/TestSupport"),
    ],
    swiftLanguageModes: [.v6]
)
