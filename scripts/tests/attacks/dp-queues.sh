#!/usr/bin/env bash
# The XDP program fails closed and fastpathd binds every rx
# queue. One gateway between a LAN host and an "internet" host, its ports
# veth with 2 rx queues, one worker, kernel IPv4 forwarding ON in the
# gateway on purpose (a kernel that forwards is the fail-open to rule out):
#  - fastpathd warns that the kernel forwards IPv4 on its ports;
#  - UDP flows hashed over both rx queues are all forwarded by the fast path
#    (both queues' AF_XDP rx counters grow), the kernel forwards none
#    (/proc/net/snmp ForwDatagrams unchanged);
#  - the port's queues then grow to 4 under fastpathd: frames on queues 2
#    and 3, which have no socket, are dropped and counted per queue by the
#    XDP program (fpctl stats: ports[].no_socket_drops, and xdp-no-socket in
#    the workers' drops as `get counter` shows them), still 0 forwarded by
#    the kernel;
#  - fastpathd refuses to start where a queue would be left without a
#    socket, naming the `ethtool -L` command that fixes it.
#
#   flock /tmp/esprit-netns.lock bash scripts/tests/attacks/dp-queues.sh
# Needs root; builds the binaries (debug) if missing. Ends with
# "N passed, M failed" and exits non-zero on a failure.
set -uo pipefail
ESPRIT_SCRIPT=dp-queues
source "$(dirname "$0")/../../lib/common.sh"
source "$ESPRIT_ROOT/scripts/lib/testlib.sh"
source "$ESPRIT_ROOT/scripts/lib/topo.sh"
need_root
esprit_bin_dir
PY=/usr/bin/python3

TOPO="dpq$$"
WORK=$(mktemp -d /tmp/esprit-dpq.XXXXXX)
PIDS=()
EXTRA=()
cleanup() {
    local p
    for p in "${PIDS[@]}" "${EXTRA[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    for ns in h1 gw h2; do ip netns del "$TOPO-$ns" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
watchdog 240

for ns in h1 gw h2; do
    ip netns add "$TOPO-$ns"
    nsx "$ns" ip link set lo up
done
# Up to 4 queues each side, 2 in use: the test grows them later.
veth_pair h1 eth0 gw lan0 4
veth_pair gw wan0 h2 eth0 4
for pair in "h1 eth0" "gw lan0" "gw wan0" "h2 eth0"; do
    set -- $pair
    nsx "$1" ethtool -L "$2" rx 2 tx 2
done
nsx h1 ip addr add 10.1.1.10/24 dev eth0
nsx h1 ip route add default via 10.1.1.1
nsx gw ip addr add 10.1.1.1/24 dev lan0
nsx gw ip addr add 198.51.100.1/24 dev wan0
nsx h2 ip addr add 198.51.100.2/24 dev eth0
nsx h2 ip route add default via 198.51.100.1
for h in h1 h2; do nsx "$h" ethtool -K eth0 tx off >/dev/null 2>&1 || true; done
# On purpose: a kernel that would forward whatever reaches it.
nsx gw sysctl -qw net.ipv4.ip_forward=1
nsx gw sysctl -qw net.ipv4.conf.all.forwarding=1

fpctl() { "$BIN/fpctl" --socket "$WORK/fp.sock" "$@"; }
start_fastpathd() { # start_fastpathd LOG ARGS...: runs until killed
    local logf=$1
    shift
    nsx_bg gw "$BIN/fastpathd" --port lan0 --port wan0 --xdp-mode driver --socket "$WORK/fp.sock" "$@" >"$logf" 2>&1
}

# 1. Refusals first (nothing attached stays behind: each exits at once).
refusal() { # refusal EXPECTED ARGS...: fastpathd exits with status 2 printing EXPECTED
    local want=$1 rc=0
    shift
    timeout 20 ip netns exec "$TOPO-gw" "$BIN/fastpathd" --port lan0 --port wan0 --xdp-mode driver \
        --socket "$WORK/refused.sock" "$@" >"$WORK/refused.log" 2>&1 || rc=$?
    # Status 2: a refusal, which the systemd unit does not retry.
    [ "$rc" -eq 2 ] && grep -qF -- "$want" "$WORK/refused.log" \
        || { sed 's/^/    /' "$WORK/refused.log" >&2; return 1; }
}
check "3 workers on 2-queue ports: refused, naming ethtool -L lan0 combined 3" refusal \
    "fastpathd: port lan0 has 2 rx queue(s), fewer than --workers 3 (every worker needs a queue on every port): run \`ethtool -L lan0 combined 3\` (or \`ethtool -L lan0 rx 3 tx 3\`), or use --workers 2" \
    --workers 3
check "--queues 1 on a 2-queue port: refused (queue 1 would have no socket)" refusal \
    "fastpathd: port lan0 has 2 rx queue(s) but --queues 1 was given: fastpathd binds every queue; run \`ethtool -L lan0 combined 1\` (or \`ethtool -L lan0 rx 1 tx 1\`), or drop --queues" \
    --queues 1
check "no XDP program left on the ports after the refusals" bash -c "! ip netns exec $TOPO-gw ip link show | grep -q xdp"

# 2. One worker, both queues of each port bound.
start_fastpathd "$WORK/fp.log" --workers 1
PIDS+=($!)
FP=$!
for _ in $(seq 100); do [ -S "$WORK/fp.sock" ] && break; sleep 0.1; done
[ -S "$WORK/fp.sock" ] || { cat "$WORK/fp.log" >&2; die "fastpathd did not start"; }
check "started with every queue bound (rx queues bound per port [2, 2])" grep -qF "rx queues bound per port [2, 2]" "$WORK/fp.log"
check "one warning line: the kernel forwards IPv4 on lan0, wan0" \
    test "$(grep -c 'warning: the kernel forwards IPv4 on lan0, wan0 (net.ipv4.conf.all.forwarding = 1)' "$WORK/fp.log")" -eq 1
fpctl batch >/dev/null <<'JSON'
{"type":"set-routes","routes":[{"prefix":"10.1.1.0/24","next_hop":{"kind":"port","port":"lan0","gateway":null}},{"prefix":"198.51.100.0/24","next_hop":{"kind":"port","port":"wan0","gateway":null}}]}
JSON
# The gateway's kernel learns both hosts (the fast path mirrors its ARP table).
nsx gw ping -c 1 -W 2 10.1.1.10 >/dev/null 2>&1 || true
nsx gw ping -c 1 -W 2 198.51.100.2 >/dev/null 2>&1 || true
for _ in $(seq 50); do
    nsx gw ip neigh show | grep -q "198.51.100.2 .*lladdr" && nsx gw ip neigh show | grep -q "10.1.1.10 .*lladdr" && break
    sleep 0.1
done

fwd_datagrams() { nsx gw awk '/^Ip: [0-9]/ { print $7 }' /proc/net/snmp; }
stats() { fpctl request '{"type":"stats"}'; }
queue_rx() { # queue_rx STATS_FILE PORT QUEUE -> rx-packets of that socket
    $PY - "$@" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
print(sum(n for w in s["workers"] for k in w["sockets"] if k["port"] == sys.argv[2] and k["queue"] == int(sys.argv[3])
          for c, n in k["counters"] if c == "rx-packets"))
PY
}
# A UDP sink on h2 counting datagrams to port 9000 for a while.
cat >"$WORK/sink.py" <<'PY'
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 9000))
s.settimeout(0.2)
n, end = 0, time.time() + float(sys.argv[1])
while time.time() < end:
    try:
        s.recv(2048)
        n += 1
    except socket.timeout:
        pass
open(sys.argv[2], "w").write(f"{n}\n")
PY
sink() { # sink SECONDS OUTFILE
    nsx_bg h2 $PY "$WORK/sink.py" "$@"
}
# FLOWS UDP flows (distinct source ports) of PER datagrams each, from h1:
# the sender's tx queue, hence the gateway's rx queue, is picked per flow.
send_flows() { # send_flows FLOWS PER
    nsx h1 $PY - "$@" <<'PY'
import socket, sys, time
flows, per = int(sys.argv[1]), int(sys.argv[2])
socks = []
for i in range(flows):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("10.1.1.10", 20000 + i))
    socks.append(s)
for k in range(per):
    for s in socks:
        s.sendto(b"esprit dp-queues %d" % k, ("198.51.100.2", 9000))
    time.sleep(0.002)
PY
}
wait_file() { for _ in $(seq 150); do [ -s "$1" ] && return 0; sleep 0.1; done; return 1; }

FLOWS=32
PER=20
stats >"$WORK/s0.json"
fwd0=$(fwd_datagrams)
sink 8 "$WORK/sink1"
EXTRA+=($!)
sleep 0.5 # the sink binds its socket (a datagram before that is refused)
send_flows $FLOWS $PER
wait_file "$WORK/sink1" || die "the sink did not report"
stats >"$WORK/s1.json"
fwd1=$(fwd_datagrams)
got=$(cat "$WORK/sink1")
q0=$(($(queue_rx "$WORK/s1.json" lan0 0) - $(queue_rx "$WORK/s0.json" lan0 0)))
q1=$(($(queue_rx "$WORK/s1.json" lan0 1) - $(queue_rx "$WORK/s0.json" lan0 1)))
log "2 queues: $got of $((FLOWS * PER)) datagrams delivered; lan0 queue 0: $q0, queue 1: $q1; kernel ForwDatagrams +$((fwd1 - fwd0))"
check "all $((FLOWS * PER)) datagrams delivered through the fast path ($got)" test "$got" -eq $((FLOWS * PER))
check "lan0 queue 0 received part of them ($q0)" test "$q0" -gt 0
check "lan0 queue 1 received part of them ($q1)" test "$q1" -gt 0
check "both queues of the one worker together: $((q0 + q1)) >= $((FLOWS * PER))" test $((q0 + q1)) -ge $((FLOWS * PER))
check "the kernel forwarded nothing (ForwDatagrams $fwd0 -> $fwd1)" test "$fwd1" -eq "$fwd0"

# 3. The queues grow under fastpathd: 2 and 3 have no socket.
nsx gw ethtool -L lan0 rx 4 tx 4
nsx h1 ethtool -L eth0 rx 4 tx 4
fwd0=$(fwd_datagrams)
rm -f "$WORK/sink2"
sink 8 "$WORK/sink2"
EXTRA+=($!)
sleep 0.5
send_flows $FLOWS $PER
wait_file "$WORK/sink2" || die "the sink did not report"
stats >"$WORK/s2.json"
fwd1=$(fwd_datagrams)
got=$(cat "$WORK/sink2")
read -r unbound q2 q3 xdp_total <<<"$($PY - "$WORK/s2.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
port = {p["port"]: dict(p["no_socket_drops"]) for p in s["ports"]}.get("lan0", {})
drops = sum(n for w in s["workers"] for r, n in w["drops"] if r == "xdp-no-socket")
print(sum(port.values()), port.get(2, 0), port.get(3, 0), drops)
PY
)"
q0=$(($(queue_rx "$WORK/s2.json" lan0 0) - $(queue_rx "$WORK/s1.json" lan0 0)))
q1=$(($(queue_rx "$WORK/s2.json" lan0 1) - $(queue_rx "$WORK/s1.json" lan0 1)))
log "4 queues, 2 bound: $got delivered (queues 0/1: $q0/$q1), dropped without a socket: queue 2 $q2, queue 3 $q3 (xdp-no-socket $xdp_total); kernel ForwDatagrams +$((fwd1 - fwd0))"
check "frames on queues without a socket dropped and counted per queue (queue 2: $q2, queue 3: $q3)" \
    test "$q2" -gt 0 -a "$q3" -gt 0
check "every datagram either forwarded on a bound queue or counted: $got + $unbound = $((FLOWS * PER))" \
    test $((got + unbound)) -eq $((FLOWS * PER))
check "delivered = received on the bound queues ($got = $q0 + $q1)" test "$got" -eq $((q0 + q1))
check "the workers' drops show them as xdp-no-socket ($xdp_total = $unbound)" test "$xdp_total" -eq "$unbound"
check "the kernel still forwarded nothing (ForwDatagrams $fwd0 -> $fwd1)" test "$fwd1" -eq "$fwd0"

kill -TERM "$FP" 2>/dev/null || true
wait "$FP" 2>/dev/null || true
check "XDP detached after a clean exit" bash -c "! ip netns exec $TOPO-gw ip link show | grep -q xdp"
echo -n "dp-queues: "
summary
