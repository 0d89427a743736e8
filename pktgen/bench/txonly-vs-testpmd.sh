#!/usr/bin/env bash
# TX rate of anycast6-pktgen against `dpdk-testpmd --forward-mode=txonly`, both sending
# 64-byte frames into net_null from one TX lcore, alternating runs in the same session.
# Prints one row per round and the medians; the figure is the median of the per-second
# Tx-pps samples of a run (the first, partial second skipped), so that a second in which
# another process took the CPU does not decide it.
#
#   pktgen/bench/txonly-vs-testpmd.sh                  # 10 s per run, 3 rounds
#   SECONDS_PER_RUN=5 ROUNDS=5 pktgen/bench/txonly-vs-testpmd.sh
#   SAMPLE=100 pktgen/bench/txonly-vs-testpmd.sh       # pktgen stamps 1 packet in 100
#
# HUGE=1 runs both on hugepages (--in-memory; scripts/hugepages). Needs dpdk-testpmd.
set -euo pipefail

secs=${SECONDS_PER_RUN:-10}
rounds=${ROUNDS:-3}
huge=${HUGE:-0}
sample=${SAMPLE:-0}
size=${SIZE:-64}
root=$(cd "$(dirname "$0")/../.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
work=$(mktemp -d /tmp/anycast6-txonly-bench.XXXXXX)
trap 'rm -rf "$work"; rmdir "/var/run/dpdk/tp-$$" "${XDG_RUNTIME_DIR:-/nonexistent}/dpdk/tp-$$" 2>/dev/null || true' EXIT

command -v dpdk-testpmd >/dev/null || { echo "error: dpdk-testpmd not found; run scripts/setup" >&2; exit 1; }
(cd "$root" && CARGO_TARGET_DIR=$target cargo build -q --release -p anycast6-pktgen)
pktgen=$target/release/anycast6-pktgen

if [[ $huge == 1 ]]; then
    tp_mem=(--in-memory)
    pg_mem=(--huge)
else
    tp_mem=(--no-huge -m 1024 --no-shconf)
    pg_mem=()
fi

# Median of a column of numbers (already in Mpps), skipping the first non-zero sample.
median() {
    awk '{ if (!started && $1 == 0) next; if (!started) { started = 1; next } print }' | sort -g | awk '
        { v[NR] = $1 }
        END {
            if (NR == 0) { print "n/a"; exit }
            m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
            printf "%.3f\n", m
        }'
}

run_testpmd() {
    local log=$work/testpmd-$1.log
    # One forwarding lcore (1); lcore 0 is testpmd's main (stats) lcore.
    timeout -s INT "$((secs + 1))" dpdk-testpmd "${tp_mem[@]}" --no-pci --no-telemetry \
        --file-prefix "tp-$$" -l 0,1 --log-level warning --vdev net_null0,no-rx=1 -- \
        --forward-mode=txonly --txpkts="$size" --nb-cores=1 --stats-period 1 --auto-start \
        --no-mlockall >"$log" 2>&1 || true
    awk '/Tx-pps:/ { printf "%.6f\n", $2 / 1e6 }' "$log" | median
}

run_pktgen() {
    local log=$work/pktgen-$1.log
    # Lcore 0 is the main (live line) lcore, lcore 1 runs the generator (single-loop mode:
    # there is nothing to receive on net_null with no-rx=1).
    "$pktgen" "${pg_mem[@]}" --device net_null0,no-rx=1 --lcores 0-1 --live \
        --appliance-mac 02:00:00:00:00:01 --rate max --size "$size" --duration "$secs" \
        --latency-sample "$sample" --drain 0 --out "$work/pktgen-$1.json" >"$log" 2>&1
    awk '/^t=/ { for (i = 1; i <= NF; i++) if ($i == "tx") { print $(i + 1); break } }' "$log" | median
}

printf '%-6s %14s %14s %8s\n' round "testpmd Mpps" "pktgen Mpps" ratio
tps=() pgs=()
for ((r = 1; r <= rounds; r++)); do
    t=$(run_testpmd "$r")
    p=$(run_pktgen "$r")
    tps+=("$t") pgs+=("$p")
    ratio=$(awk -v t="$t" -v p="$p" 'BEGIN { if (t > 0) printf "%.3f", p / t; else print "n/a" }')
    printf '%-6s %14s %14s %8s\n' "$r" "$t" "$p" "$ratio"
done
mt=$(printf '%s\n' "${tps[@]}" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
mp=$(printf '%s\n' "${pgs[@]}" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
printf '%-6s %14s %14s %8s\n' median "$mt" "$mp" "$(awk -v t="$mt" -v p="$mp" 'BEGIN { printf "%.3f", p / t }')"
echo
echo "frames: $size bytes, latency stamps: $([[ $sample == 0 ]] && echo none || echo "1 in $sample"), machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), hugepages: $([[ $huge == 1 ]] && echo "yes (--in-memory)" || echo "no (--no-huge)")"
