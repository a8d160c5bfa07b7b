#!/usr/bin/env bash
# Runs a command in a memory cgroup limited to LIMIT bytes and reports what the cgroup was
# charged: the way to show a build fits in a given amount of memory.
#
#   bench/memory_limit.sh LIMIT CMD [ARGS...]
#   e.g. (the model-dependent build of gpt2-xl in q8, limited to its blob size):
#   cargo clean -p gpt2 --release
#   GPT2_ONNX=/work/models/gpt2-xl/model.onnx GPT2_WEIGHTS=q8 \
#     bench/memory_limit.sh 1579395840 cargo build --release -p gpt2
#
# A memory cgroup charges everything its processes use, the page cache of the files they
# read and write included, and reclaims clean cache when the limit is reached; it kills the
# build (OOM) only when what it cannot reclaim, its processes' own memory and dirty pages
# not yet written, does not fit. So a build that succeeds under LIMIT needs at most LIMIT
# bytes, whatever `ps` or `/usr/bin/time` counted as resident (mapped file pages count
# there although the kernel can drop them). Needs root, or a delegated cgroup; cgroup v2
# (memory.max, memory.peak) or v1 (memory.limit_in_bytes, memory.max_usage_in_bytes).
# Prints the command's exit status, the peak charge and how often the limit was reached.
set -uo pipefail
if [ $# -lt 2 ]; then
  echo "usage: memory_limit.sh LIMIT_BYTES CMD [ARGS...]" >&2
  exit 2
fi
LIMIT=$1
shift
self=$(awk -F: '$2 == "memory" || $1 == "0" { print $3; exit }' /proc/self/cgroup)
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
  V=2
  CG=/sys/fs/cgroup$self/gpt2c-limit-$$
  # A v2 cgroup with processes cannot have children: use the parent's.
  if [ -s "/sys/fs/cgroup$self/cgroup.procs" ]; then
    CG=$(dirname "/sys/fs/cgroup$self")/gpt2c-limit-$$
  fi
else
  V=1
  self=$(awk -F: '$2 == "memory" { print $3; exit }' /proc/self/cgroup)
  CG=/sys/fs/cgroup/memory$self/gpt2c-limit-$$
fi
mkdir "$CG" || { echo "memory_limit.sh: cannot create a cgroup at $CG" >&2; exit 2; }
trap 'rmdir "$CG" 2>/dev/null' EXIT
if [ $V = 2 ]; then
  echo "$LIMIT" > "$CG/memory.max"
  echo 0 > "$CG/memory.swap.max" 2>/dev/null
else
  echo "$LIMIT" > "$CG/memory.limit_in_bytes"
fi
start=$(date +%s.%N)
( echo $BASHPID > "$CG/cgroup.procs" && exec "$@" )
status=$?
end=$(date +%s.%N)
if [ $V = 2 ]; then
  peak=$(cat "$CG/memory.peak" 2>/dev/null || echo "?")
  hits=$(awk '$1 == "max" { print $2 }' "$CG/memory.events")
  ooms=$(awk '$1 == "oom_kill" { print $2 }' "$CG/memory.events")
else
  peak=$(cat "$CG/memory.max_usage_in_bytes")
  hits=$(cat "$CG/memory.failcnt")
  ooms=$(awk '$1 == "oom_kill" { print $2 }' "$CG/memory.oom_control")
fi
printf 'memory_limit.sh: exit %s, %.1f s; limit %s bytes, peak charge %s bytes (page cache included), limit reached %s times, OOM kills %s\n' \
  "$status" "$(awk -v a="$start" -v b="$end" 'BEGIN { print b - a }')" "$LIMIT" "$peak" "$hits" "${ooms:-?}" >&2
# Empty the cgroup's charge before removing it (v1 keeps cache charged to a dead group).
[ $V = 1 ] && echo 0 > "$CG/memory.force_empty" 2>/dev/null
exit $status
