#!/usr/bin/env bash
# Builds a fully static `gpt2` and proves it stands alone: no dynamic section entries, no
# interpreter, and it runs when copied by itself into an empty directory.
set -euo pipefail
cd "$(dirname "$0")/.."
target=x86_64-unknown-linux-gnu
RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --locked --target "$target" -p gpt2
bin="$(realpath "${CARGO_TARGET_DIR:-target}")/$target/release/gpt2"
if readelf -d "$bin" | grep -q NEEDED; then
    echo "static-check: $bin needs shared libraries:"; readelf -d "$bin" | grep NEEDED; exit 1
fi
if readelf -l "$bin" | grep -q "program interpreter"; then
    echo "static-check: $bin asks for a dynamic loader"; exit 1
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cp "$bin" "$dir/"
cd "$dir"
env -i ./gpt2 info > info.txt
env -i ./gpt2 "Hello world" -n 8 --seed 1 > out.txt
grep -q "^config" info.txt
grep -q "^Hello world" out.txt
echo "static-check: $(du -h gpt2 | cut -f1) static binary ran alone in an empty directory: 1 passed, 0 failed"
