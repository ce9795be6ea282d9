#!/usr/bin/env bash
# Build cost of each candidate: a from-scratch `cargo build --release` of this benchmark with
# only that candidate's feature (the `ownlog` line is the baseline: the bench itself plus
# crc32fast), and the number of distinct crates in its normal dependency tree.
# Sources must already be downloaded (`cargo fetch`); each build gets a fresh target dir.
# CPU seconds (user + sys of cargo and the compilers) are reported besides the wall-clock time:
# they hardly change when something else runs on the machine, the wall-clock time does.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
manifest="$here/Cargo.toml"
out="${1:-/tmp/store-candidates-build}"
jobs="${JOBS:-$(nproc)}"
rm -rf "$out"; mkdir -p "$out"
echo "| features | build wall s (from scratch, -j$jobs) | build CPU s (user+sys) | crates in tree (incl. this bench) |"
echo "|---|---:|---:|---:|"
for f in ownlog redb3 redb5 fjall sled; do
  if [ "$f" = ownlog ]; then feat=(--no-default-features); else feat=(--no-default-features --features "$f"); fi
  crates=$(cargo tree --manifest-path "$manifest" -e normal --prefix none "${feat[@]}" \
    | sed 's/ (\*)$//; s/ (proc-macro)$//' | sort -u | wc -l)
  TIMEFORMAT='%R %U %S'
  t=$( { time CARGO_TARGET_DIR="$out/$f" cargo build --release -j "$jobs" --manifest-path "$manifest" "${feat[@]}" >/dev/null 2>"$out/$f.log"; } 2>&1 )
  read -r wall user sys <<<"$t"
  printf '| %s | %.1f | %.1f | %s |\n' "$f" "$wall" "$(echo "$user + $sys" | bc)" "$crates"
done
