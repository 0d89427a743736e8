#!/usr/bin/env bash
# Instructions per packet of the data-plane pipeline (`Worker::process_burst` on in-memory
# frames), counted by cachegrind: exact and repeatable where timings drift by 10-20 % on a
# shared machine, so it can tell a change of a few percent. Runs bench/src/bin/pipeline-loop
# with 0 and with BURSTS bursts of 32 frames and divides the difference by the packets
# (set-up cancels out; the frame restore between bursts, about 85 instructions per packet,
# stays in).
#
#   bench/count-instructions.sh                 # FLOWS="1000 100000" BURSTS=20000
#   FLOWS=1000 BURSTS=5000 bench/count-instructions.sh
#   BUILD=0 BIN=/path/to/pipeline-loop bench/count-instructions.sh   # a saved build
#
# Per source line: `valgrind --tool=cachegrind target/release/pipeline-loop 1000 20000`,
# then `cg_annotate cachegrind.out.PID`. Needs valgrind (installed here when missing).
set -euo pipefail
cd "$(dirname "$0")/.."

flows=${FLOWS:-"1000 100000"}
bursts=${BURSTS:-20000}
bin=${BIN:-target/release/pipeline-loop}

if ! command -v valgrind >/dev/null; then
    echo "valgrind not found: installing it (apt-get)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null
fi
if [[ ${BUILD:-1} == 1 ]]; then
    cargo build --release -q -p anycast6-bench --bin pipeline-loop
fi

# Instructions executed by one run ("I refs" of cachegrind's summary).
irefs() {
    valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null "$bin" "$@" 2>&1 \
        | sed -n 's/.*I *refs: *//p' | tr -d ,
}

printf '%-8s %s\n' flows "instructions per packet"
for k in $flows; do
    base=$(irefs "$k" 0)
    total=$(irefs "$k" "$bursts")
    awk -v k="$k" -v a="$base" -v b="$total" -v n="$((bursts * 32))" \
        'BEGIN { printf "%-8s %.1f\n", k, (b - a) / n }'
done
