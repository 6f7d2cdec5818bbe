#!/usr/bin/env bash
# Regenerates Sources/Wire/Generated from Proto/ with protoc and protoc-gen-swift.
# Installs protobuf-compiler from Debian if missing and builds protoc-gen-swift from the
# swift-protobuf version this package depends on (in .build-protoc, ignored by git).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v protoc >/dev/null; then
  apt-get update -qq && apt-get install -y -qq protobuf-compiler
fi

version=$(sed -n 's/.*swift-protobuf", from: "\([0-9.]*\)".*/\1/p' Package.swift)
plugin=".build-protoc/swift-protobuf-$version/release/protoc-gen-swift"
if [ ! -x "$plugin" ]; then
  mkdir -p .build-protoc
  # The checkout `swift build` resolved is the version the generated code runs with; clone
  # only when there is none.
  source=".build/checkouts/swift-protobuf"
  if [ ! -d "$source" ]; then
    source=".build-protoc/swift-protobuf-src-$version"
    rm -rf "$source"
    git clone -q --depth 1 --branch "$version" https://github.com/apple/swift-protobuf "$source"
  fi
  swift build -c release --package-path "$source" --scratch-path ".build-protoc/swift-protobuf-$version" --product protoc-gen-swift
fi

out=Sources/Wire/Generated
rm -rf "$out"
mkdir -p "$out"
protoc --plugin=protoc-gen-swift="$plugin" \
  --swift_out="$out" --swift_opt=Visibility=Public --swift_opt=FileNaming=PathToUnderscores \
  -I Proto Proto/sessionfed/v1/*.proto
echo "generated: $(ls "$out" | tr '\n' ' ')"
