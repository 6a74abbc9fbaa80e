#!/usr/bin/env bash
# Instructions per sequential call, per cast and per spawn (plus one call and
# the drop), on a current-thread runtime,
# counted by callgrind: the difference between 11 000 and 1 000 operations,
# divided by 10 000 (so start-up and warm-up cancel out). IMPLEMENTATIONS
# narrows the rows (default: all three).
set -euo pipefail
cd "$(dirname "$0")/.."
# FEATURES=inventory (or metrics, observer, ...) counts a build with them.
# The binary is the one cargo names (it honours CARGO_TARGET_DIR).
binary=$(cargo bench --bench instructions --no-run ${FEATURES:+--features "$FEATURES"} 2>&1 |
    sed -n 's/.*Executable .*(\(.*\)).*/\1/p' | tail -n 1)
test -x "$binary"
count() {
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$binary" "$1" "$2" "$3" 2>&1 |
        sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
printf '%-14s %10s %10s %10s %10s %10s %10s %10s\n' implementation seq async cast flood spawn contended c_async
for implementation in ${IMPLEMENTATIONS:-patchboard tokio_mpsc async_channel}; do
    line=$(printf '%-14s' "$implementation")
    for workload in ${WORKLOADS:-seq async cast flood spawn contended contended_async}; do
        small=$(count "$implementation" "$workload" 1000)
        large=$(count "$implementation" "$workload" 11000)
        line+=$(printf ' %10d' $(((large - small) / 10000)))
    done
    echo "$line"
done
