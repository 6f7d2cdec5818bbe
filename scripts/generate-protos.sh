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
plugin=".build-protoc/swift-protobuf-$version/.build/release/protoc-gen-swift"
if [ ! -x "$plugin" ]; then
  mkdir -p .build-protoc
  rm -rf ".build-protoc/swift-protobuf-$version"
  git clone -q --depth 1 --branch "$version" https://github.com/apple/swift-protobuf ".build-protoc/swift-protobuf-$version"
  (cd ".build-protoc/swift-protobuf-$version" && swift build -c release --product protoc-gen-swift)
fi

out=Sources/Wire/Generated
rm -rf "$out"
mkdir -p "$out"
protoc --plugin=protoc-gen-swift="$plugin" \
  --swift_out="$out" --swift_opt=Visibility=Public --swift_opt=FileNaming=PathToUnderscores \
  -I Proto Proto/sessionfed/v1/*.proto
echo "generated: $(ls "$out" | tr '\n' ' ')"
