#!/usr/bin/env bash
# Forwarding rate of crates/dpdk's minimal loop (examples/fwd.rs) against
# `dpdk-testpmd --forward-mode=io`, on the same virtual devices, one forwarding lcore each,
# in the same run. Prints a table of Mpps (port 1 TX rate from port statistics, median of
# the per-second samples after the first full second).
#
#   crates/dpdk/bench/fwd-vs-testpmd.sh            # 10 s per run, 2 rounds
#   SECONDS_PER_RUN=5 ROUNDS=1 HUGE=1 crates/dpdk/bench/fwd-vs-testpmd.sh
#
# HUGE=1 runs both tools on hugepages (--in-memory; see scripts/hugepages) instead of
# --no-huge. Needs dpdk-testpmd (Debian package `dpdk`; scripts/setup installs it).
set -euo pipefail

secs=${SECONDS_PER_RUN:-10}
rounds=${ROUNDS:-2}
huge=${HUGE:-0}
root=$(cd "$(dirname "$0")/../../.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
work=$(mktemp -d /tmp/anycast6-fwd-bench.XXXXXX)
# testpmd leaves its (empty) runtime directory behind; rmdir removes it only when empty.
trap 'rm -rf "$work"; rmdir "/var/run/dpdk/tp-$$" "${XDG_RUNTIME_DIR:-/nonexistent}/dpdk/tp-$$" 2>/dev/null || true' EXIT

command -v dpdk-testpmd >/dev/null || { echo "error: dpdk-testpmd not found; run scripts/setup" >&2; exit 1; }

(cd "$root" && CARGO_TARGET_DIR=$target cargo build -q --release -p anycast6-dpdk --example fwd --example gen_pcap)
fwd=$target/release/examples/fwd
# 64-byte UDP payload IPv6 frames (126-byte frames), replayed forever by net_pcap.
"$target/release/examples/gen_pcap" "$work/ipv6-udp-64.pcap" 1024 64

if [[ $huge == 1 ]]; then
    eal_mem=(--in-memory)
    fwd_mem=(--huge)
else
    eal_mem=(--no-huge -m 1024 --no-shconf)
    fwd_mem=()
fi

# Median of port 1's Tx-pps samples: skip the leading zeros and the first non-zero
# (partial) sample. The median rather than the mean because the machine may be shared: a
# second in which another process took the forwarding CPU should not decide the figure.
# Reads testpmd's "NIC statistics for port N" blocks and fwd's "port 1 Tx-pps: N".
median_port1_txpps() {
    awk '
        /NIC statistics for port/ { port = $(NF-1) }
        /^port 1 Tx-pps:/ { sample($4) }
        /Tx-pps:/ && !/^port/ && port == 1 { sample($2) }
        function sample(v) {
            if (!started && v == 0) return
            if (!started) { started = 1; return }
            print v
        }
    ' "$1" | sort -n | awk '
        { v[NR] = $1 }
        END {
            if (NR == 0) { print "n/a"; exit }
            m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
            printf "%.3f\n", m / 1e6
        }'
}

run_testpmd() { # name port0 port1 extra-testpmd-args...
    local log=$work/testpmd-$1.log p0=$2 p1=$3
    shift 3
    timeout -s INT "$((secs + 1))" dpdk-testpmd "${eal_mem[@]}" --no-pci --no-telemetry \
        --file-prefix "tp-$$" -l 0,1 --log-level warning --vdev "$p0" --vdev "$p1" -- \
        --forward-mode=io --nb-cores=1 --stats-period 1 --auto-start --no-mlockall "$@" \
        >"$log" 2>&1 || true
    median_port1_txpps "$log"
}

run_fwd() { # name port0 port1
    local log=$work/fwd-$1.log
    "$fwd" "${fwd_mem[@]}" --seconds "$secs" --port0 "$2" --port1 "$3" >"$log" 2>&1
    median_port1_txpps "$log"
}

declare -A scen_p0 scen_p1 scen_extra
scenarios=(null-null pcap-null)
scen_p0[null-null]="net_null0"
scen_p1[null-null]="net_null1,no-rx=1"
scen_extra[null-null]=""
scen_p0[pcap-null]="net_pcap0,rx_pcap=$work/ipv6-udp-64.pcap,infinite_rx=1"
scen_p1[pcap-null]="net_null1,no-rx=1"
scen_extra[pcap-null]="--no-flush-rx"

printf '%-10s %-6s %14s %14s %8s\n' scenario round "testpmd Mpps" "fwd Mpps" ratio
for scen in "${scenarios[@]}"; do
    for ((r = 1; r <= rounds; r++)); do
        # shellcheck disable=SC2086
        t=$(run_testpmd "$scen-$r" "${scen_p0[$scen]}" "${scen_p1[$scen]}" ${scen_extra[$scen]})
        f=$(run_fwd "$scen-$r" "${scen_p0[$scen]}" "${scen_p1[$scen]}")
        ratio=$(awk -v t="$t" -v f="$f" 'BEGIN { if (t > 0) printf "%.3f", f / t; else print "n/a" }')
        printf '%-10s %-6s %14s %14s %8s\n' "$scen" "$r" "$t" "$f" "$ratio"
    done
done
echo
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), hugepages: $([[ $huge == 1 ]] && echo "yes (--in-memory)" || echo "no (--no-huge)")"
