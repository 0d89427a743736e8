#!/usr/bin/env bash
# The containerised topology (docker/compose.yml) as plain processes on this machine:
# anycast6-pktgen serves a vhost-user socket (net_vhost) and plays the router, 1000 clients
# and three members that register by authenticated Binding Update; the appliance attaches
# to it with virtio-user. Halfway through, member 1 dies (stops answering probes and
# traffic); the appliance's health checks take it out and its flows move to the others.
#
#   docker/topology.sh [SECONDS]        # seconds of client traffic, default 12
#
# Uses target/release/{anycast6,anycast6-pktgen} (or ANYCAST6_BIN / ANYCAST6_PKTGEN_BIN);
# scripts/demo builds them and calls this. It checks its own results and exits non-zero
# when they are wrong. No NIC, no hugepages.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-12}
kill_at=$(( seconds / 2 ))
target=${CARGO_TARGET_DIR:-target}
appliance=${ANYCAST6_BIN:-$target/release/anycast6}
pktgen=${ANYCAST6_PKTGEN_BIN:-$target/release/anycast6-pktgen}
for b in "$appliance" "$pktgen"; do
  [ -x "$b" ] || { echo "topology: $b is missing; cargo build --release -p anycast6 -p anycast6-pktgen" >&2; exit 1; }
done

work=$(mktemp -d /tmp/anycast6-topology.XXXXXX)
sock=$work/uplink.sock
app_pid= gen_pid=
cleanup() {
  [ -n "$gen_pid" ] && kill "$gen_pid" 2>/dev/null || true
  [ -n "$app_pid" ] && kill -INT "$app_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# One MN-HA key shared by the appliance and the members (mode 0600, as both require).
key=$(od -An -tx1 -N20 /dev/urandom | tr -d ' \n')
printf '[[keys]]\nspi = 300\nkey = "%s"\n' "$key" > "$work/keys.toml"
chmod 600 "$work/keys.toml"
sed -e "s#@SOCK@#$sock#" -e "s#@KEYS@#$work/keys.toml#" -e "s#@ADMIN@#$work/admin.sock#" \
  docker/appliance.toml > "$work/appliance.toml"
"$appliance" check-config "$work/appliance.toml" >/dev/null

echo "== pktgen: 1000 clients, 3 members (member 1 dies at ${kill_at}s of traffic), ${seconds}s"
# pktgen's loop runs on a plain thread of its main lcore, CPU 0 (--lcores 0), beside the
# appliance's mostly idle control thread; the appliance's worker busy-polls CPU 1. Two
# busy loops on one CPU would take turns in scheduler slices (tens of milliseconds).
"$pktgen" --config docker/pktgen.toml --key-file "$work/keys.toml" --lcores 0 \
  --device "net_vhost0,iface=$sock" --duration "$seconds" --kill-member "1@$kill_at" \
  --warmup 20 --out "$work/pktgen.json" --live > "$work/pktgen.live" 2> "$work/pktgen.log" &
gen_pid=$!
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done
[ -S "$sock" ] || { cat "$work/pktgen.log" >&2; echo "topology: pktgen did not create $sock" >&2; exit 1; }

"$appliance" run --config "$work/appliance.toml" --json > "$work/appliance.json" 2> "$work/appliance.log" &
app_pid=$!

# The live view: pktgen's line (per-member packets in the last second) as it comes.
tail -n +1 -f "$work/pktgen.live" --pid "$gen_pid" &
tail_pid=$!
wait "$gen_pid" || { cat "$work/pktgen.log" >&2; echo "topology: pktgen failed" >&2; exit 1; }
gen_pid=
kill "$tail_pid" 2>/dev/null || true
echo "-- members as the appliance sees them:"
"$appliance" ctl --socket "$work/admin.sock" members || true
kill -INT "$app_pid"; wait "$app_pid" || true; app_pid=

python3 - "$work/pktgen.json" "$work/appliance.log" <<'PY'
import json, re, sys
r = json.load(open(sys.argv[1]))
log = open(sys.argv[2]).read()
members = r["members"]
print("== summary")
for m in members:
    c = m
    state = "alive" if m["alive"] else f"killed at {m['killed_at_s']:.1f}s"
    failover = f", failover {m['failover_s'] * 1000:.0f} ms" if m.get("failover_s") is not None else ""
    print(f"   member {m['index']} {m['care_of']:<15} {state:<17} received {c['rx_packets']:>7} packets,"
          f" {c['rx_after_death']} after death{failover}")
loss = r["loss"]
lat = r["latency"]
print(f"   clients: sent {loss['sent']}, answers {loss['received']}, lost {loss['lost']} ({loss['ratio']:.2%});"
      f" round trip p50 {(lat.get('p50_ns') or 0) / 1e3:.0f} us, p99 {(lat.get('p99_ns') or 0) / 1e3:.0f} us")
dead = [m for m in members if not m["alive"]]
live = [m for m in members if m["alive"]]
down = dead and re.search(r"t=([0-9.]+) event=member_down \S+ care_of=" + re.escape(dead[0]["care_of"]) + r" .*reason=(\S+)", log)
if down:
    print(f"   appliance: member {dead[0]['care_of']} taken out ({down.group(2)})")
# The topology checks itself.
assert all(m["ba_accepted"] > 0 for m in members), "a member was not registered"
assert down, "the appliance did not take the dead member out"
assert dead and live and all(m["rx_packets"] > 0 for m in members), "a member got no traffic"
print("topology: ok")
PY
