#!/usr/bin/env bash
# Builds the protobuf-c round-trip program against Debian's libprotobuf-c-dev; prints its path.
# Needs: protobuf-c-compiler libprotobuf-c-dev gcc (installed by .ci/run).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="$here/out"
for tool in protoc-c gcc; do
  command -v "$tool" >/dev/null || { echo "build.sh: $tool is missing (apt-get install -y protobuf-c-compiler libprotobuf-c-dev gcc)" >&2; exit 1; }
done
rm -rf "$out" && mkdir -p "$out/gen"
protoc-c --c_out="$out/gen" -I "$root/Proto" "$root"/Proto/sessionfed/v1/*.proto
gcc -std=c11 -Wall -Werror -Wno-missing-braces -O1 -I "$out/gen" -o "$out/roundtrip" \
  "$here/roundtrip.c" "$out"/gen/sessionfed/v1/*.pb-c.c -lprotobuf-c
echo "$out/roundtrip"
