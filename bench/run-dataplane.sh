#!/usr/bin/env bash
# Data-plane rate of the appliance (`anycast6 run`) against `dpdk-testpmd` io and 5tswap,
# on identical virtual devices, one forwarding/worker lcore each, in the same run:
#
#   port 0: net_pcap0,rx_pcap=K-clients.pcap,infinite_rx=1   (no tx_pcap: TX drops)
#   port 1: net_null0,no-rx=1                                  (the members' side)
#
# The pcap holds one 126-byte Ethernet/IPv6/UDP frame (64-byte payload) per client, K
# distinct client addresses, all to the service 2001:db8:100::1 (client affinity, 8
# members behind port 1), replayed forever by net_pcap. Every frame is tunnelled out of
# port 1 (RFC 2473, +40 octets). Figures are Mpps, the median of the per-second samples
# after the first (start-up, affinity fill): testpmd's port 1 Tx-pps, the appliance's
# `--stats` line (rx Mpps; the script checks forwarded == rx and nothing dropped).
#
#   bench/run-dataplane.sh                               # K = 1e3 1e5 1e6, 10 s, 1 round
#   SECONDS_PER_RUN=5 ROUNDS=2 KS="100000" bench/run-dataplane.sh
#   TWO_WORKERS=0 MEMORY=0 bench/run-dataplane.sh        # skip the extra runs
#   HUGE=1 bench/run-dataplane.sh                        # EAL memory on hugepages
#
# TWO_WORKERS=1 (default) adds, for K = 1e5, the appliance with 2 workers and testpmd
# 5tswap with 2 forwarding lcores: port 0 gets two rx_pcap files (clients split by index
# parity, standing in for RSS), and the EAL gets `--lcores 0@0,1@0,2@1` (lcores 1 and 2 on
# CPUs 0 and 1; the main lcore shares CPU 0) through bench/src/bin/run-lcore-map.rs,
# because dataplane.lcores only takes a plain list and DPDK refuses lcore ids above the
# CPU count. MEMORY=1 (default) reports the appliance's VmRSS at K = 1e6 with the sized
# affinity table and with the smallest one (1024), same mempool: the difference is the
# table's memory.
#
# HUGE=1 runs testpmd and the appliance on hugepages (EAL --in-memory; reserve them first
# with `sudo scripts/hugepages 1024`, which covers K <= 1e5; K = 1e6 needs about 6 GB)
# instead of ordinary memory (--no-huge, the default, like crates/dpdk/bench/fwd-vs-testpmd.sh).
#
# APPLIANCES="before=/some/dir after=/other/dir" compares several builds in the same run:
# each DIR holds an `anycast6` and a `run-lcore-map`; every round runs testpmd io, testpmd
# 5tswap, then each build in turn, so all of them see the same machine load. The default is
# the one build of this tree, labelled "appl".
#
# BUILD=0 skips the cargo build (e.g. to compare saved builds with APPLIANCES while the
# tree does not build); gen-clients-pcap is then taken from $CARGO_TARGET_DIR/release.
#
# Needs dpdk-testpmd (Debian package `dpdk`; scripts/setup installs it).
set -euo pipefail

secs=${SECONDS_PER_RUN:-10}
rounds=${ROUNDS:-1}
ks=${KS:-1000 100000 1000000}
two_workers=${TWO_WORKERS:-1}
memory=${MEMORY:-1}
huge=${HUGE:-0}
root=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
work=$(mktemp -d /tmp/anycast6-dataplane.XXXXXX)
# testpmd leaves its (empty) runtime directory behind; rmdir removes it only when empty.
trap 'rm -rf "$work"; rmdir "/var/run/dpdk/tp-$$" "${XDG_RUNTIME_DIR:-/nonexistent}/dpdk/tp-$$" 2>/dev/null || true' EXIT

command -v dpdk-testpmd >/dev/null || { echo "error: dpdk-testpmd not found; run scripts/setup" >&2; exit 1; }

if [[ ${BUILD:-1} == 1 ]]; then
    (cd "$root" && CARGO_TARGET_DIR=$target cargo build -q --release -p anycast6 -p anycast6-bench --bins)
fi
gen=$target/release/gen-clients-pcap
read -r -a appliances <<<"${APPLIANCES:-appl=$target/release}"
for entry in "${appliances[@]}"; do
    for bin in anycast6 run-lcore-map; do
        [[ -x ${entry#*=}/$bin ]] || { echo "error: ${entry#*=}/$bin not found" >&2; exit 1; }
    done
done
# EAL memory arguments of testpmd and the appliance (after the -m MEM of the config).
if [[ $huge == 1 ]]; then
    testpmd_mem() { echo "--in-memory"; }
    hugepages_desc="yes (--in-memory, $(awk '/^HugePages_Total/ { print $2 }' /proc/meminfo) x 2 MB reserved)"
else
    testpmd_mem() { echo "--no-huge -m $1 --no-shconf"; }
    hugepages_desc="no (--no-huge)"
fi

# Mbufs: the K frames net_pcap keeps for infinite_rx plus 8192 for rings and bursts, as
# 2^n - 1 (the mempool ring's size). testpmd gets the same number (--total-num-mbufs).
mbufs_for() { local n=1; while ((n - 1 < $1 + 8192)); do ((n *= 2)); done; echo $((n - 1)); }
# EAL memory (MB): about twice the pool's ~2.4 KB per mbuf, plus 1 GB. Without hugepages
# the EAL could not place 2^20 - 1 mbufs (2.5 GB) in 3 or 4 GB (ENOMEM); 6 GB works.
mem_for() { echo $(($1 * 5 / 1024 + 1024)); }
# Affinity entries: a power of two >= 4/3 K (the table is 8-way set-associative; at 3/4
# load few flows compete for a bucket), at least the minimum 1024.
capacity_for() { local n=1024; while ((n * 3 < $1 * 4)); do ((n *= 2)); done; echo $n; }

median() { # reads one sample per line; prints the median in Mpps (input in pps or Mpps)
    sort -g | awk -v scale="$1" '
        { v[NR] = $1 }
        END {
            if (NR == 0) { print "n/a"; exit }
            m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
            printf "%.3f\n", m / scale
        }'
}

# Port 1 Tx-pps samples of testpmd, without the leading zeros and the first non-zero one.
testpmd_samples() {
    awk '
        /NIC statistics for port/ { port = $(NF-1) }
        /Tx-pps:/ && port == 1 {
            if (!started && $2 == 0) next
            if (!started) { started = 1; next }
            print $2
        }' "$1"
}

# The appliance's per-second "rx N (X Mpps)" samples, treated like testpmd's: without the
# leading zeros (a line may come before net_pcap has delivered its first frames) and the
# first non-zero one (start-up, affinity fill).
appliance_samples() {
    sed -n 's/^\[ *[0-9.]*s\] rx [0-9]* (\([0-9.]*\) Mpps).*/\1/p' "$1" | awk '
        !started && $1 == 0 { next }
        !started { started = 1; next }
        { print }'
}

run_testpmd() { # log mode mbufs mem lcore-args forwarding-cores port0 [extra...]
    local log=$1 mode=$2 mbufs=$3 mem=$4 lcores=$5 cores=$6 p0=$7
    shift 7
    # shellcheck disable=SC2086
    timeout -s INT "$((secs + 2))" dpdk-testpmd $(testpmd_mem "$mem") --no-pci \
        --no-telemetry --file-prefix "tp-$$" $lcores --log-level warning \
        --vdev "$p0" --vdev "net_null0,no-rx=1" -- \
        --forward-mode="$mode" --nb-cores="$cores" --stats-period 1 --auto-start \
        --no-mlockall --no-flush-rx --total-num-mbufs="$mbufs" "$@" >"$log" 2>&1 || true
    testpmd_samples "$log" | median 1e6
}

write_config() { # file port0-device workers capacity mbufs mem
    cat >"$1" <<EOF
[appliance]
tunnel_address = "2001:db8:ff::1"

[dataplane]
workers = $3
lcores = "0-$3"
affinity_capacity = $4
mempool_size = $5
$(if [[ $huge == 1 ]]; then
    echo '# Hugepages, no runtime files (instead of the virtual-device defaults).'
    echo 'virtual_devices_only = false'
    echo 'eal_args = ["--in-memory", "--no-pci", "--no-telemetry"]'
else
    echo '# After the virtual-device defaults'"'"' "-m 1024": the EAL takes the last -m.'
    echo "eal_args = [\"-m\", \"$6\"]"
fi)

[[ports]]
name = "clients"
device = "$2"
mac = "02:00:00:00:00:01"
next_hop_mac = "02:00:00:00:00:fe"

[[ports]]
name = "null"
device = "net_null0,no-rx=1"
mac = "02:00:00:00:00:02"
next_hop_mac = "02:00:00:00:00:fd"

[[services]]
address = "2001:db8:100::1"
affinity = "client"
port = "null"
maglev_size = 65537
EOF
    for m in 0 1 2 3 4 5 6 7; do
        printf '\n[[services.members]]\ncare_of = "2001:db8:2::%x"\n' $((0x10 + m)) >>"$1"
    done
}

# Runs the appliance (or run-lcore-map when $lcore_map is set). Prints one line: median
# Mpps, forwarded/elapsed Mpps, "ok" (forwarded == rx, nothing dropped, all sent on port 1)
# or "MISMATCH", and VmRSS in kB one second before the run ends.
run_appliance() { # log config build-dir
    local log=$1 config=$2 dir=$3 pid rss
    if [[ -n ${lcore_map:-} ]]; then
        "$dir/run-lcore-map" --config "$config" --duration "$secs" --lcores "$lcore_map" \
            >"$log.json" 2>"$log" &
    else
        "$dir/anycast6" run --config "$config" --duration "$secs" --stats --json \
            >"$log.json" 2>"$log" &
    fi
    pid=$!
    sleep "$((secs > 2 ? secs - 1 : 1))"
    rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || echo n/a)
    if ! wait "$pid"; then
        echo "error: the appliance failed:" >&2
        cat "$log" >&2
        return 1
    fi
    printf '%s %s %s\n' "$(appliance_samples "$log" | median 1)" "$(check_counters "$log.json")" "$rss"
}

# "forwarded/elapsed-Mpps ok|MISMATCH" from the appliance's final JSON counters.
check_counters() {
    python3 - "$1" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
drops = sum(v for k, v in r.items() if k.startswith("drop_")) + r["tx_full"]
ok = (r["forwarded"] == r["rx_packets"] and drops == 0
      and r["port.null"]["opackets"] == r["forwarded"])
print(f'{r["forwarded"] / r["elapsed_seconds"] / 1e6:.3f} {"ok" if ok else "MISMATCH"}')
EOF
}

ratio_of() { awk -v a="$1" -v t="$2" 'BEGIN { if (t > 0) printf "%.3f", a / t; else print "n/a" }'; }

echo "load before: $(uptime | sed 's/.*load average: //')"
echo "Mpps; ratio = build / testpmd 5tswap; check: forwarded == rx, nothing dropped"
printf '%-9s %-5s %9s %9s' K round io 5tswap
for entry in "${appliances[@]}"; do printf ' %9s %9s %7s' "${entry%%=*}" avg ratio; done
printf ' %6s  %s\n' load1 check
for k in $ks; do
    pcap=$work/clients-$k.pcap
    "$gen" "$pcap" "$k"
    mbufs=$(mbufs_for "$k")
    mem=$(mem_for "$mbufs")
    cap=$(capacity_for "$k")
    dev="net_pcap0,rx_pcap=$pcap,infinite_rx=1"
    write_config "$work/k$k.toml" "$dev" 1 "$cap" "$mbufs" "$mem"
    for ((r = 1; r <= rounds; r++)); do
        io=$(run_testpmd "$work/io-$k-$r.log" io "$mbufs" "$mem" "-l 0,1" 1 "$dev")
        swap=$(run_testpmd "$work/5tswap-$k-$r.log" 5tswap "$mbufs" "$mem" "-l 0,1" 1 "$dev")
        printf '%-9s %-5s %9s %9s' "$k" "$r" "$io" "$swap"
        checks=""
        lcore_map=""
        for entry in "${appliances[@]}"; do
            out=$(run_appliance "$work/appl-$k-$r-${entry%%=*}.log" "$work/k$k.toml" "${entry#*=}")
            read -r appl avg status rss <<<"$out"
            printf ' %9s %9s %7s' "$appl" "$avg" "$(ratio_of "$appl" "$swap")"
            checks+="${entry%%=*}:$status rss=${rss}kB "
        done
        printf ' %6s  %s\n' "$(cut -d' ' -f1 /proc/loadavg)" "${checks}mbufs=$mbufs capacity=$cap"
    done
done

if [[ $two_workers == 1 ]]; then
    k=100000
    "$gen" "$work/split-$k.pcap" "$k" 2
    mbufs=$(mbufs_for "$k")
    mem=$(mem_for "$mbufs")
    cap=$(capacity_for $((k / 2)))
    dev="net_pcap0,rx_pcap=$work/split-$k.pcap.0,rx_pcap=$work/split-$k.pcap.1,infinite_rx=1"
    write_config "$work/two-$k.toml" "$dev" 2 "$cap" "$mbufs" "$mem"
    echo
    echo "2 workers / 2 forwarding lcores, K = $k, --lcores 0@0,1@0,2@1 (main lcore shares CPU 0):"
    for ((r = 1; r <= rounds; r++)); do
        swap=$(run_testpmd "$work/5tswap-two-$r.log" 5tswap "$mbufs" "$mem" \
            "--lcores 0@0,1@0,2@1" 2 "$dev" --rxq=2 --txq=2)
        line="round $r: testpmd 5tswap $swap Mpps"
        for entry in "${appliances[@]}"; do
            lcore_map="0@0,1@0,2@1"
            out=$(run_appliance "$work/appl-two-$r-${entry%%=*}.log" "$work/two-$k.toml" "${entry#*=}")
            lcore_map=""
            read -r appl avg status rss <<<"$out"
            line+=", ${entry%%=*} $appl Mpps (avg $avg, $status, ratio $(ratio_of "$appl" "$swap"))"
        done
        echo "$line, load $(cut -d' ' -f1 /proc/loadavg)"
    done
fi

# VmRSS in kB of the appliance once it forwards: net_pcap loads its whole capture (10^6
# frames here, tens of seconds on a busy machine) before the first packet, so a sample
# taken at a fixed time can come too early. Waits up to 120 s for a non-zero rx sample,
# reads VmRSS a second later, then stops the appliance.
rss_when_forwarding() { # log config build-dir
    local log=$1 config=$2 dir=$3 pid rss=n/a t
    "$dir/anycast6" run --config "$config" --duration 150 --stats --json >"$log.json" 2>"$log" &
    pid=$!
    for ((t = 0; t < 240; t++)); do
        if grep -Eq '\] rx [1-9][0-9]* ' "$log"; then
            sleep 1
            rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || echo n/a)
            break
        fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.5
    done
    kill -INT "$pid" 2>/dev/null || true
    wait "$pid" || true
    echo "$rss"
}

if [[ $memory == 1 ]]; then
    k=1000000
    [[ -f $work/clients-$k.pcap ]] || "$gen" "$work/clients-$k.pcap" "$k"
    mbufs=$(mbufs_for "$k")
    mem=$(mem_for "$mbufs")
    cap=$(capacity_for "$k")
    dev="net_pcap0,rx_pcap=$work/clients-$k.pcap,infinite_rx=1"
    write_config "$work/mem-big.toml" "$dev" 1 "$cap" "$mbufs" "$mem"
    write_config "$work/mem-small.toml" "$dev" 1 1024 "$mbufs" "$mem"
    last=${appliances[-1]#*=}
    big=$(rss_when_forwarding "$work/mem-big.log" "$work/mem-big.toml" "$last")
    small=$(rss_when_forwarding "$work/mem-small.log" "$work/mem-small.toml" "$last")
    if [[ $big == n/a || $small == n/a ]]; then
        echo "error: no VmRSS sample while forwarding (logs: $work/mem-*.log)" >&2
        exit 1
    fi
    echo
    awk -v b="$big" -v s="$small" -v cap="$cap" -v k="$k" 'BEGIN {
        d = (b - s) * 1024
        printf "memory, K = %d: VmRSS %d kB with %d affinity entries, %d kB with 1024: %.1f MB for the table = %.1f bytes per entry, %.1f bytes per active flow\n", k, b, cap, s, d / 1e6, d / (cap - 1024), d / k
    }'
fi
echo
echo "load after: $(uptime | sed 's/.*load average: //')"
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), hugepages: $hugepages_desc"
