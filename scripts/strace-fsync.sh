#!/usr/bin/env bash
# Proves that every acknowledged append of the embedded event log reached
# the disk: runs N sequential single-event appends under `strace -f -c` and
# prints the sync system calls per acknowledged append. Expect at least one
# fdatasync per append (the write-ahead log's); sled's own flush issues only
# sync_file_range, which is not power-safe (sled#1452).
#
# Usage: scripts/strace-fsync.sh [APPENDS]   (default 2000; needs strace)
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-2000}"
command -v strace >/dev/null || { echo "strace is missing: apt-get install -y strace" >&2; exit 2; }
cargo build --release -q -p callvault-store --example durability_probe
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
out="$dir/strace.txt"
strace -f -c -e trace=fsync,fdatasync,sync_file_range,msync -o "$out" \
  target/release/examples/durability_probe "$dir/log" "$n"
awk -v n="$n" '
  $NF ~ /^(fsync|fdatasync|sync_file_range|msync)$/ { calls[$NF] = $4 }
  END {
    printf "%-16s %10s %14s\n", "syscall", "calls", "per append";
    for (s in calls) printf "%-16s %10d %14.3f\n", s, calls[s], calls[s] / n;
    if (calls["fdatasync"] + calls["fsync"] < n) { print "FAIL: fewer syncs than acknowledged appends"; exit 1 }
    print "OK: every acknowledged append was followed by an fdatasync/fsync";
  }' "$out"
