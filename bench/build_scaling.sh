#!/usr/bin/env bash
# One row of README.md's "Every GPT-2 size" table: builds `gpt2` with a model and measures
# the build by phase, the binary, start-up + first token and decode.
#
#   bench/build_scaling.sh NAME ONNX FORMAT [REFS_DIR]
#   e.g. bench/build_scaling.sh xl /work/models/gpt2-xl/model.onnx q8 /work/models/gpt2-xl
#
# Environment: OUT (results, default /tmp/gpt2c-scaling), TARGET (the cargo target directory,
# default $OUT/target-FORMAT; build the dependencies there once first, with the same
# variables, so the timed build is the model-dependent part), PYTHON (default python3; numpy
# only for the REFS_DIR check). Writes $OUT/NAME-FORMAT.{build,times,compiler,first,bench,refs}:
# - build: `cargo build --release -p gpt2` under `bench/rss_peak.py --tree` (time, peak of
#   the process tree and per program: own (anonymous) and file pages);
# - times: wall time and peak RSS of each rustc and of the link (a RUSTC_WRAPPER and a
#   linker wrapper, written to $OUT);
# - compiler: the build script run again alone under rss_peak.py (the compiler's figures);
# - first: `gpt2 logits --ids 464` from process start, twice;
# - bench: `gpt2 bench --prompt-len 8 --gen 32 --runs 0 --threads 2`;
# - refs: `bench/check_refs.py` against stored onnxruntime logits, if REFS_DIR is given
#   (its tolerance is f32's: give it for f32 builds).
# Benchmarks should run on an otherwise idle machine; nothing else is started here.
set -uo pipefail
NAME=$1; ONNX=$2; FMT=$3; REFS=${4:-}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-/tmp/gpt2c-scaling}
TARGET=${TARGET:-$OUT/target-$FMT}
PYTHON=${PYTHON:-python3}
mkdir -p "$OUT"
L=$OUT/$NAME-$FMT
rm -f "$L".*
cat > "$OUT/rustc-wrap.sh" <<'EOF'
#!/bin/bash
name=$(echo "$@" | grep -o -- '--crate-name [a-z0-9_]*' | cut -d' ' -f2)
kind=$(echo "$@" | grep -o -- '--crate-type [a-z]*' | cut -d' ' -f2)
/usr/bin/time -f "RSS %M KB wall %e s: rustc $name $kind" -a -o "${TIMES_LOG:-/dev/null}" "$@"
EOF
cat > "$OUT/cc-wrap" <<'EOF'
#!/bin/bash
/usr/bin/time -f "RSS %M KB wall %e s: LINK" -a -o "${TIMES_LOG:-/dev/null}" cc "$@"
EOF
chmod +x "$OUT/rustc-wrap.sh" "$OUT/cc-wrap"
cd "$ROOT"
TIMES_LOG=$L.times GPT2_ONNX=$ONNX GPT2_WEIGHTS=$FMT CARGO_TARGET_DIR=$TARGET \
  RUSTC_WRAPPER=$OUT/rustc-wrap.sh RUSTFLAGS="-C linker=$OUT/cc-wrap" \
  "$PYTHON" bench/rss_peak.py --tree cargo build --release -p gpt2 > "$L.build" 2>&1
BIN=$TARGET/release/gpt2
ls -l "$BIN" >> "$L.build"
BS=$(ls -t "$TARGET"/release/build/gpt2-*/build-script-build | head -1)
SCRATCH=$(mktemp -d)
OUT_DIR=$SCRATCH CARGO_MANIFEST_DIR=$ROOT/generated GPT2_ONNX=$ONNX GPT2_WEIGHTS=$FMT \
  CARGO_CFG_TARGET_ARCH=$(uname -m) "$PYTHON" bench/rss_peak.py "$BS" > "$L.compiler" 2>&1
rm -rf "$SCRATCH"
for _ in 1 2; do
  /usr/bin/time -f "first-token wall %e s maxrss %M KB" "$BIN" logits --ids 464 --out /dev/null \
    --threads 2 >> "$L.first" 2>&1
done
"$BIN" bench --prompt-len 8 --gen 32 --runs 0 --threads 2 > "$L.bench" 2>&1
if [ -n "$REFS" ]; then
  "$PYTHON" bench/check_refs.py --bin "$BIN" --refs "$REFS" > "$L.refs" 2>&1
fi
tail -n 3 "$L.build"
