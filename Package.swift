// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "SessionFederation",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "SessionModel", targets: ["SessionModel"]),
        .library(name: "Wire", targets: ["Wire"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
    ],
    targets: [
        // Pure: values, version vectors, dots, HLC, deltas and the merge rules (DESIGN.md §2).
        .target(name: "SessionModel"),
        // Generated protobuf code plus model <-> wire conversions and framing (DESIGN.md §6).
        .target(
            name: "Wire",
            dependencies: [
                "SessionModel",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]
        ),
        .testTarget(name: "SessionModelTests", dependencies: ["SessionModel", "Wire"]),
        .testTarget(name: "WireTests", dependencies: ["SessionModel", "Wire"]),
    ],
    swiftLanguageModes: [.v6]
)
