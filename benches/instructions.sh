#!/usr/bin/env bash
# Instructions per sequential call, per cast and per spawn (plus one call and
# the drop), on a current-thread runtime,
# counted by callgrind: the difference between 11 000 and 1 000 operations,
# divided by 10 000 (so start-up and warm-up cancel out).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench --bench instructions --no-run --quiet 2> /dev/null
binary=$(ls -t target/release/deps/instructions-* | grep -v '\.d$' | head -n 1)
count() {
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$binary" "$1" "$2" "$3" 2>&1 |
        sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
printf '%-14s %10s %10s %10s %10s %10s\n' implementation seq async cast flood spawn
for implementation in patchboard tokio_mpsc async_channel; do
    line=$(printf '%-14s' "$implementation")
    for workload in seq async cast flood spawn; do
        small=$(count "$implementation" "$workload" 1000)
        large=$(count "$implementation" "$workload" 11000)
        line+=$(printf ' %10d' $(((large - small) / 10000)))
    done
    echo "$line"
done
