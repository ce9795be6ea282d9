#!/usr/bin/env bash
# Syscalls per group commit in workload A (fan-out 1), counted with strace: the program is run
# with two message counts and the difference in syscalls is divided by the difference in
# commits, so that opening, closing and the program's own checks cancel out.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
bin="$here/target/release/store-candidates"
candidates="${1:-ownlog,redb3,redb5,fjall,sled}"
tmp="$(mktemp -d)"
count() { # candidate messages -> "fsync fdatasync writes"
  strace -f -qq -c -o "$tmp/trace" -e trace=fsync,fdatasync,sync_file_range,msync,write,pwrite64,writev,pwritev,pwritev2 \
    "$bin" --runs 1 --workloads a --candidates "$1" --messages "$2" --dir "$tmp/data" >/dev/null 2>&1
  awk '$NF=="fsync"{f=$4} $NF=="fdatasync"{d=$4} $NF=="sync_file_range"{s=$4} $NF=="msync"{m=$4}
       $NF~/^(write|pwrite64|writev|pwritev|pwritev2)$/{w+=$4}
       END{printf "%d %d %d %d %d\n", f, d, s, m, w}' "$tmp/trace"
}
echo "| candidate | fsync / commit | fdatasync / commit | sync_file_range / commit | msync / commit | write-like syscalls / commit |"
echo "|---|---:|---:|---:|---:|---:|"
# 6,400 and 38,400 messages at 64 per commit: 100 + 2 and 600 + 2 commits.
for c in ${candidates//,/ }; do
  read -r f1 d1 s1 m1 w1 < <(count "$c" 6400)
  read -r f2 d2 s2 m2 w2 < <(count "$c" 38400)
  awk -v c="$c" -v f="$((f2-f1))" -v d="$((d2-d1))" -v s="$((s2-s1))" -v m="$((m2-m1))" -v w="$((w2-w1))" \
    'BEGIN{printf "| %s | %.2f | %.2f | %.2f | %.2f | %.2f |\n", c, f/500, d/500, s/500, m/500, w/500}'
done
rm -rf "$tmp"
