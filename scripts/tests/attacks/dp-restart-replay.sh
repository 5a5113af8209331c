#!/usr/bin/env bash
# ESP accepted before a fastpathd restart is never
# accepted again, from outside. Two esprit gateways in the seed topology
# (scripts/lib/topo.sh), real traffic h11 -> h21 through gw1 -> gw2:
#
#  1. AutoKey (IKE-negotiated, AES-GCM) and 2. manual key (AES-CBC +
#     HMAC-SHA1), each:
#     - N pings cross the tunnel; the ESP gw1 sends is captured on the
#       router's port towards gw2;
#     - gw2's fastpathd is killed with -9 and started again; controld
#       re-programs it (AutoKey: and rekeys the pair at once);
#     - the capture is replayed to gw2 with scapy: gw2's replay drop
#       counters rise by exactly the number of packets replayed, its
#       decrypted counter does not move, h21 receives none of them;
#     - traffic still flows afterwards (AutoKey: on the new SAs; manual:
#       once gw1's sequence numbers pass the resumed window).
#
#   flock /tmp/esprit-netns.lock bash scripts/tests/attacks/dp-restart-replay.sh
# Needs root. Ends with "N passed, M failed" (exit 1 if any failed).
# Bounded by $ESPRIT_TIMEOUT seconds (default 240). Binaries from
# $ESPRIT_BIN (default $CARGO_TARGET_DIR or target, /debug), built if missing.
set -uo pipefail
ESPRIT_SCRIPT=dp-restart-replay
source "$(dirname "$0")/../../lib/common.sh"
source "$ESPRIT_ROOT/scripts/lib/testlib.sh"
source "$ESPRIT_ROOT/scripts/lib/topo.sh"
source "$ESPRIT_ROOT/scripts/lib/gateway.sh"
need_root
apt_install "${ESPRIT_TEST_PACKAGES[@]}"
esprit_bin_dir
PY=/usr/bin/python3 # Debian's, with scapy (FACTS.md)

N=${ESPRIT_REPLAY_PACKETS:-20}
WORK=$(mktemp -d /tmp/esprit-dp-replay.XXXXXX)
EXTRA=()
declare -A PID=()
cleanup() {
    local p
    for p in "${PID[@]}" "${EXTRA[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PID[@]}" "${EXTRA[@]}"; do wait "$p" 2>/dev/null || true; done
    topo_down
    if [ -n "${ESPRIT_KEEP:-}" ]; then log "logs kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
watchdog "${ESPRIT_TIMEOUT:-240}"

# start_fastpathd G: fastpathd of gw G, started again while the kernel
# still releases the AF_XDP sockets of a killed one (bind: EBUSY), for at
# most 10 s.
start_fastpathd() {
    local _ try
    rm -f "$RUN/fp$1.sock"
    for try in $(seq 50); do
        nsx_bg "gw$1" "$BIN/fastpathd" --port lan1 --port lan2 --port wan0 --xdp-mode "${XDP_MODE:-driver}" \
            --socket "$RUN/fp$1.sock" >>"$RUN/fp$1.log" 2>&1
        PID[fp$1]=$!
        for _ in $(seq 100); do
            [ -S "$RUN/fp$1.sock" ] && return 0
            kill -0 "${PID[fp$1]}" 2>/dev/null || break
            sleep 0.1
        done
        wait "${PID[fp$1]}" 2>/dev/null
        grep -q "Device or resource busy" "$RUN/fp$1.log" || break
        log "    fastpathd on gw$1: AF_XDP sockets still busy (try $try)"
        sleep 0.2
    done
    tail -n 5 "$RUN/fp$1.log" >&2
    die "fastpathd on gw$1 did not start"
}
start_controld() { # start_controld G
    nsx_bg "gw$1" "$BIN/controld" --config "$RUN/gw$1.conf" --fastpath "$RUN/fp$1.sock" \
        --socket "$RUN/cd$1.sock" --state-dir "$RUN/state$1" --port-map ethernet0/1=lan1 --no-syslog \
        >>"$RUN/cd$1.log" 2>&1
    PID[cd$1]=$!
    wait_socket "$RUN/cd$1.sock" "$RUN/cd$1.log" "controld on gw$1"
}
stop_all() {
    local p
    for p in "${PID[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PID[@]}"; do wait "$p" 2>/dev/null || true; done
    PID=()
}
cli() { local g=$1; shift; "$BIN/esprit" --socket "$RUN/cd$g.sock" "$@"; }

# counter_of FILE KEY: the total of a worker counter (decrypted,
# rx_packets) or of a drop reason (replay-too-old) in get counter --json.
counter_of() {
    $PY -c '
import json, sys
c = json.load(open(sys.argv[1]))
k = sys.argv[2]
print(sum(w.get(k, 0) for w in c["workers"]) if k in ("decrypted", "encrypted", "rx_packets") else c["drops"].get(k, 0))' "$1" "$2"
}
# counter G KEY: the same, read from gw G now.
counter() { cli "$1" get counter --json >"$RUN/counter-now.json" && counter_of "$RUN/counter-now.json" "$2"; }

# bg_capture NS IF FILTER FILE: tcpdump in the background, ready when it
# returns; its PID in CAP.
bg_capture() {
    local _
    nsx_bg "$1" tcpdump -i "$2" --immediate-mode -U -n -w "$4" "$3" 2>"$4.err"
    CAP=$!
    for _ in $(seq 50); do grep -q "listening on" "$4.err" 2>/dev/null && return 0; sleep 0.1; done
    return 1
}
end_capture() { kill -INT "$CAP" 2>/dev/null; wait "$CAP" 2>/dev/null || true; }
pcap_count() { $PY -c 'import sys; from scapy.all import rdpcap; print(len(rdpcap(sys.argv[1])))' "$1" 2>/dev/null || echo 0; }
# The SPIs of the ESP packets in a capture.
pcap_spis() {
    $PY -c '
import sys
from scapy.all import rdpcap, ESP, UDP, IP
s = set()
for p in rdpcap(sys.argv[1]):
    if ESP in p: s.add("%08x" % p[ESP].spi)
print(" ".join(sorted(s)))' "$1" 2>/dev/null
}

# The highest ESP sequence number in a capture.
pcap_max_seq() {
    $PY -c '
import sys
from scapy.all import rdpcap, ESP
print(max([p[ESP].seq for p in rdpcap(sys.argv[1]) if ESP in p] or [0]))' "$1" 2>/dev/null
}
# inbound_seq SPI: the highest sequence number gw2's controld last read
# for its inbound SA SPI (get sa stat --json).
inbound_seq() {
    cli 2 get sa stat --json 2>/dev/null | $PY -c '
import json, sys
for s in json.load(sys.stdin)["sas"]:
    i = s.get("inbound") or {}
    if i.get("spi") == sys.argv[1]:
        print(i.get("seq", 0)); break
else:
    print(0)' "$1"
}

# scenario NAME: the run of the configuration in $RUN/gw{1,2}.conf; sets
# spi (the SPI of gw2's inbound SA the capture carries).
scenario() {
    local name=$1 k before_dec after_dec delivered got max_seq syncs _
    log "=== $name"
    start_fastpathd 1
    start_fastpathd 2
    start_controld 1
    start_controld 2
    topo_arp_warm
    check "$name: the tunnel carries h11 -> h21" nsx h11 ping -c 1 -W 8 10.2.1.10
    # Sequence numbers and counters reach controld once a second.
    bg_capture inet i2 "dst host 203.0.113.2 and (ip proto 50 or udp port 4500)" "$RUN/wan.pcap" \
        || { check "$name: capture on the WAN" false; return; }
    check "$name: $N pings through the tunnel" nsx h11 ping -q -c "$N" -i 0.05 -W 2 10.2.1.10
    for _ in $(seq 30); do [ "$(pcap_count "$RUN/wan.pcap")" -ge "$N" ] && break; sleep 0.1; done
    end_capture
    k=$(pcap_count "$RUN/wan.pcap")
    spi=$(pcap_spis "$RUN/wan.pcap")
    log "    captured $k ESP packet(s) to gw2, SPI $spi"
    check "$name: captured at least the $N requests, one SPI" bash -c "[ '$k' -ge '$N' ] && [ -n '$spi' ] && [ '${spi// /}' = '$spi' ]"
    # controld reads fastpathd's counters every second: wait until it has
    # seen gw2's inbound SA accept the last captured sequence number.
    max_seq=$(pcap_max_seq "$RUN/wan.pcap")
    got=0
    for _ in $(seq 50); do
        [ "$(inbound_seq "$spi")" -ge "$max_seq" ] 2>/dev/null && { got=1; break; }
        sleep 0.1
    done
    check "$name: controld saw gw2 accept up to sequence number $max_seq" test "$got" = 1

    syncs=$(grep -c "fastpathd synchronised" "$RUN/cd2.log")
    kill -9 "${PID[fp2]}"
    wait "${PID[fp2]}" 2>/dev/null
    log "    gw2 fastpathd killed -9; starting it again"
    start_fastpathd 2
    # controld notices, reconnects and re-programs the new fastpathd.
    got=0
    for _ in $(seq 100); do
        if [ "$(grep -c "fastpathd synchronised" "$RUN/cd2.log")" -gt "$syncs" ] \
            && cli 2 get sa 2>/dev/null | grep -q "< .* $spi .* A/"; then
            got=1
            break
        fi
        sleep 0.1
    done
    check "$name: controld re-installed inbound SA $spi into the new fastpathd" test "$got" = 1
    grep -E "re-installed after a fastpathd restart|synchronised" "$RUN/cd2.log" | tail -n 3 | sed 's/^/    /' >&2

    # The new fastpathd's counters start at 0: nothing decrypted, no
    # replay, until the replay (no traffic crosses meanwhile).
    local before_rep=0
    before_dec=0
    bg_capture h21 eth0 "icmp and src host 10.1.1.10" "$RUN/h21.pcap" || true
    nsx inet $PY -c '
import sys
from scapy.all import rdpcap, sendp
sendp(rdpcap(sys.argv[1]), iface="i2", verbose=False)' "$RUN/wan.pcap"
    # Until controld's reading of the new fastpathd's counters accounts for
    # every replayed packet (dropped as a replay or for its SPI, or
    # decrypted), at most 5 s.
    for _ in $(seq 50); do
        cli 2 get counter --json >"$RUN/counter.json"
        [ $(($(counter_of "$RUN/counter.json" replay-too-old) + $(counter_of "$RUN/counter.json" replay-duplicate) \
            + $(counter_of "$RUN/counter.json" esp-unknown-spi) + $(counter_of "$RUN/counter.json" decrypted))) -ge "$k" ] && break
        sleep 0.1
    done
    after_dec=$(counter_of "$RUN/counter.json" decrypted)
    got=$(($(counter_of "$RUN/counter.json" replay-too-old) + $(counter_of "$RUN/counter.json" replay-duplicate) - before_rep))
    end_capture
    delivered=$(pcap_count "$RUN/h21.pcap")
    log "    replayed $k: replay drops +$got (too-old $(counter_of "$RUN/counter.json" replay-too-old), duplicate $(counter_of "$RUN/counter.json" replay-duplicate)), decrypted $before_dec -> $after_dec, h21 received $delivered"
    check "$name: every replayed packet dropped as a replay (+$got of $k)" test "$got" = "$k"
    check "$name: none decrypted" test "$before_dec" = "$after_dec"
    check "$name: none delivered to h21" test "$delivered" = 0
    cli 2 get counter | sed 's/^/    /' >&2
}

# 1. AutoKey, between two esprit gateways configured from the seed, with
# anti-replay on (the seed's VPN says no-replay: an operator who turns it
# off accepts replays, restart or not) and no VPN monitor (its probes would
# cross the tunnel during the replay).
RUN=$WORK/autokey
mkdir -p "$RUN"
topo_up "rr$$"
for g in 1 2; do
    gw_config "$g" "second 3600" 28800 | sed -e '/ monitor /d' -e '/^set vpn "test" gateway/s/ no-replay / replay /' >"$RUN/gw$g.conf"
done
scenario autokey
flows_autokey() {
    local _
    for _ in $(seq 15); do nsx h11 ping -c 1 -W 1 10.2.1.10 >/dev/null 2>&1 && break; done
    nsx h11 ping -q -c 10 -i 0.05 -W 2 10.2.1.10 >/dev/null
}
check "autokey: traffic flows afterwards" flows_autokey
check "autokey: gw2 rekeyed the re-installed pair at once" grep -q "re-installed after a fastpathd restart: rekeying child SA" "$RUN/cd2.log"
check "autokey: the traffic after the restart is on new SPIs" bash -c "
    cli() { '$BIN/esprit' --socket '$RUN/cd2.sock' \"\$@\"; }
    cli get sa | grep -E ' A/U ' | grep -v ' $spi ' | grep -q '<'"
stop_all
topo_down

# 2. Manual key, AES-CBC + HMAC-SHA1, pair 11 only.
RUN=$WORK/manual
mkdir -p "$RUN"
topo_up "rm$$"
key=$(printf 'esprit dp-restart-replay encr' | sha256sum | cut -c1-32)
auth=$(printf 'esprit dp-restart-replay auth' | sha256sum | cut -c1-40)
manual_conf() { # manual_conf G
    local g=$1 peer=$((3 - $1)) in out
    if [ "$g" = 1 ]; then in=2011 out=1011; else in=1011 out=2011; fi
    cat <<CONF
set interface ethernet0/1 zone Trust
set interface ethernet0/1 ip 10.$g.1.1/24
set interface ethernet0/1 port lan1
set interface ethernet0/3 zone Trust
set interface ethernet0/3 ip 10.$g.2.1/24
set interface ethernet0/3 port lan2
set interface ethernet0/2 zone Untrust
set interface ethernet0/2 ip $(gw_wan "$g")/24
set interface ethernet0/2 port wan0
set interface tunnel.1 zone Untrust
set interface tunnel.1 ip unnumbered interface ethernet0/2
set route 0.0.0.0/0 interface ethernet0/2 gateway $([ "$g" = 1 ] && echo 198.51.100.254 || echo 203.0.113.254)
set vpn "p11" manual $in $out gateway $(gw_wan "$peer") outgoing-interface "ethernet0/2" esp aes128 key $key auth sha-1 key $auth
set vpn "p11" proxy-id local-ip 10.$g.1.0/24 remote-ip 10.$peer.1.0/24 any
set vpn "p11" id 0x11 bind interface tunnel.1
set route 10.$peer.1.0/24 interface tunnel.1
CONF
}
for g in 1 2; do manual_conf "$g" >"$RUN/gw$g.conf"; chmod 600 "$RUN/gw$g.conf"; done
scenario manual
# gw2's window resumed above what it had accepted plus a margin (at least
# 256): gw1's next packets are below it until its numbers pass it.
flows_manual() {
    nsx h11 ping -q -c 400 -i 0.01 -W 1 10.2.1.10 >"$RUN/flow.out" 2>&1
    log "    $(grep -o '[0-9]* packets transmitted.*loss' "$RUN/flow.out")"
    nsx h11 ping -q -c 10 -i 0.05 -W 2 10.2.1.10 >/dev/null
}
check "manual: traffic flows again once gw1's numbers pass the resumed window" flows_manual
check "manual: no key in the logs" bash -c "! grep -qE '$key|$auth' '$RUN'/cd*.log '$RUN'/fp*.log"
stop_all
topo_down

summary
