#!/usr/bin/env bash
# The seed's scenario (KB16008 §III) end to end in network namespaces: two
# gateways, two subnets behind each, one tunnel interface (tunnel.1) with
# four proxy-IDs and proxy-id check. Each subnet pair's traffic crosses the
# WAN on its own SA; traffic routed into the tunnel that matches no
# proxy-ID is dropped and counted; the fourth pair's SA is added when its
# first packet asks for it (acquire), and that packet is delivered.
#
# Today the SAs are keyed by hand through fastpathd's control API; with
# controld and IKE they are negotiated (see README.md, Status).
set -euo pipefail
ESPRIT_SCRIPT=demo
source "$(dirname "$0")/lib/common.sh"
source "$ESPRIT_ROOT/scripts/lib/topo.sh"
need_root
need_cargo
apt_install "${ESPRIT_BUILD_PACKAGES[@]}" "${ESPRIT_TEST_PACKAGES[@]}"
cd "$ESPRIT_ROOT"
log "building"
cargo build -q --release -p esprit-fastpathd
BIN=$ESPRIT_ROOT/target/release
CONF="python3 $ESPRIT_ROOT/scripts/lib/fpconf.py"

WORK=$(mktemp -d /tmp/esprit-demo.XXXXXX)
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    topo_down
    rm -rf "$WORK"
}
trap cleanup EXIT
fpctl() { local g=$1; shift; "$BIN/fpctl" --socket "$WORK/gw$g.sock" "$@"; }

topo_up "demo$$"
for g in 1 2; do
    nsx_bg "gw$g" "$BIN/fastpathd" --port lan1 --port lan2 --port wan0 --socket "$WORK/gw$g.sock" \
        >"$WORK/gw$g.log" 2>&1
    PIDS+=($!)
done
for g in 1 2; do
    for _ in $(seq 100); do [ -S "$WORK/gw$g.sock" ] && break; sleep 0.1; done
    [ -S "$WORK/gw$g.sock" ] || { cat "$WORK/gw$g.log"; die "fastpathd on gw$g did not start"; }
    $CONF base "$g" | fpctl "$g" batch >/dev/null
done
topo_arp_warm
$CONF sas 1 11 12 21 | fpctl 1 batch >/dev/null
$CONF sas 2 11 12 21 | fpctl 2 batch >/dev/null
echo
echo "gw1 tunnel.1 proxy-IDs (proxy-id check on):"
fpctl 1 request '{"type":"dump"}' | python3 -c '
import json, sys
d = json.load(sys.stdin)
for vpn, check, pids in d["vpns"]:
    for p in pids:
        print("  set vpn test proxy-id", p)'

nsx_bg inet tcpdump -n -i i1 -w "$WORK/wan.pcap" -U 'esp or udp port 4500' >/dev/null 2>&1
PIDS+=($!)
for _ in $(seq 50); do [ -s "$WORK/wan.pcap" ] && break; sleep 0.1; done

echo
echo "traffic between every subnet pair (5 pings each):"
for pair in "h11 10.2.1.10" "h11 10.2.2.10" "h12 10.2.1.10"; do
    set -- $pair
    r=$(nsx "$1" ping -q -c 5 -i 0.1 -w 5 "$2" | grep -o '[0-9]* received')
    printf '  %s -> %-10s %s\n' "$1" "$2" "$r"
done
echo "  h12 -> 10.2.2.10  (no SA yet: first packet held, acquire sent to the control plane)"
"$BIN/fpctl" --socket "$WORK/gw1.sock" wait-event acquire --timeout 10 >"$WORK/acq" 2>"$WORK/acq.err" &
W=$!
for _ in $(seq 100); do grep -q subscribed "$WORK/acq.err" 2>/dev/null && break; sleep 0.05; done
nsx h12 ping -c 1 -W 8 10.2.2.10 >"$WORK/first.out" 2>&1 &
P=$!
wait "$W"
echo "    acquire: $(cat "$WORK/acq")"
$CONF sas 2 22 | fpctl 2 batch >/dev/null
$CONF sas 1 22 | fpctl 1 batch >/dev/null
wait "$P" && echo "    SA added; the held packet was delivered: $(grep -o 'time=.*' "$WORK/first.out")"
echo "  h11 -> 10.2.3.10  (routed into tunnel.1, matches no proxy-ID)"
nsx h11 ping -q -c 3 -i 0.1 -W 1 10.2.3.10 >/dev/null 2>&1 || true

kill "${PIDS[2]}" 2>/dev/null; wait "${PIDS[2]}" 2>/dev/null || true
echo
echo "ESP packets on the WAN, per SPI (each pair on its own SA, each direction its own SPI):"
tcpdump -n -r "$WORK/wan.pcap" 2>/dev/null | grep -o 'spi=0x[0-9a-f]*' | sort | uniq -c | sed 's/^/  /'
echo
echo "gw1 counters:"
fpctl 1 request '{"type":"stats"}' | python3 -c '
import json, sys
s = json.load(sys.stdin)
for w in s["workers"]:
    print("  worker %(worker)d: rx %(rx_packets)d, encrypted %(encrypted)d, decrypted %(decrypted)d, held %(held)d, acquires %(acquires)d" % w)
    for r, n in w["drops"]:
        print("    dropped %d x %s" % (n, r))
print("  SAs:")
for sa in s["sas"]:
    print("    id %(id)6d %(direction)-8s spi 0x%(spi)08x packets %(packets)4d bytes %(bytes)6d" % sa)'
echo
log "done; tearing down"
