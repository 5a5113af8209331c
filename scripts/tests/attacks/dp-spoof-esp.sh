#!/usr/bin/env bash
# Attacks on the data plane from the WAN, between two esprit gateways
# of the seed topology (scripts/lib/topo.sh, scripts/lib/gateway.sh) whose
# SAs IKE negotiated (AutoKey, anti-replay on). scapy on "inet", the router
# between the gateways, is the attacker: it holds no key.
#
#  1. Spoofed sources: clear UDP to h11 (10.1.1.10) from sources inside
#     gw1's remote proxy-ID prefixes (10.2.1.10, from the WAN; 10.2.2.10,
#     from the LAN) and from 10.2.3.5 (routed into tunnel.1, no proxy-ID):
#     none reaches h11 (tcpdump on h11), every one is counted as
#     spoofed-source by gw1's fastpathd; the same packets from 192.0.2.77
#     (no tunnel's) do reach h11, so the capture sees what arrives.
#  2. ESP: gw2's ESP for h21 -> h11 is captured on inet while a blackhole
#     route keeps it from gw1; then scapy sends gw1: N captured packets
#     (delivered), the same N again (replay-duplicate), N others with a
#     flipped ICV bit and N with a flipped ciphertext bit (icv-mismatch,
#     2N: packets not accepted before, so the replay check does not see
#     them first), N truncated (esp-truncated), N with an unknown SPI
#     (esp-unknown-spi). Exact figures, by reason.
#  3. Outer fragments: N larger captured ESP packets cut into IP fragments
#     by scapy: all delivered, N datagrams reassembled.
#
# Ends with "N passed, M failed". Needs root. Bounded by $ESPRIT_TIMEOUT
# seconds (default 240). Binaries from $ESPRIT_BIN (default
# $CARGO_TARGET_DIR or target, /debug), built if missing.
set -uo pipefail
ESPRIT_SCRIPT=dp-spoof-esp
source "$(dirname "$0")/../../lib/common.sh"
source "$ESPRIT_ROOT/scripts/lib/testlib.sh"
source "$ESPRIT_ROOT/scripts/lib/topo.sh"
source "$ESPRIT_ROOT/scripts/lib/gateway.sh"
need_root
apt_install "${ESPRIT_TEST_PACKAGES[@]}"

LIMIT=${ESPRIT_TIMEOUT:-240}
N=${ESPRIT_ATTACK_N:-20}
PY=/usr/bin/python3 # Debian's, with scapy (FACTS.md)
esprit_bin_dir

WORK=$(mktemp -d /tmp/esprit-dp-spoof.XXXXXX)
EXTRA=()
declare -A CAP=()
cleanup() {
    local p
    for p in "${CAP[@]}"; do kill "$p" 2>/dev/null || true; done
    gw_stop
    for p in "${EXTRA[@]}"; do kill "$p" 2>/dev/null || true; done
    topo_down
    if [ -n "${ESPRIT_KEEP:-}" ]; then log "logs kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
watchdog "$LIMIT"

fpctl() { local g=$1; shift; "$BIN/fpctl" --socket "$WORK/fp$g.sock" "$@"; }
# counter GW NAME: a drop reason's total over gw's workers, or (with a
# worker counter's name: reassembled, fragments, decrypted) that counter's.
counter() {
    fpctl "$1" request '{"type":"stats"}' | python3 -c '
import json, sys
s, name = json.load(sys.stdin), sys.argv[1]
if name in s["workers"][0]:
    print(sum(w[name] for w in s["workers"]))
else:
    print(sum(n for w in s["workers"] for r, n in w["drops"] if r == name))' "$2"
}
# snapshot GW FILE: the counters this script judges, one "name value" a line.
REASONS="spoofed-source replay-duplicate icv-mismatch esp-truncated esp-unknown-spi reassembled fragments decrypted"
snapshot() {
    local r
    for r in $REASONS; do echo "$r $(counter "$1" "$r")"; done >"$2"
}
# delta FILE_BEFORE FILE_AFTER NAME: how much NAME grew.
delta() { echo $(($(awk -v n="$3" '$1 == n { print $2 }' "$2") - $(awk -v n="$3" '$1 == n { print $2 }' "$1"))); }
expect_delta() { # expect_delta BEFORE AFTER NAME WANT
    local got
    got=$(delta "$1" "$2" "$3")
    log "    $3: +$got (want +$4)"
    [ "$got" = "$4" ]
}

# capture NAME NS IF FILTER: tcpdump in the background, ready when it
# says it listens (bounded).
capture() {
    local name=$1 ns=$2 ifc=$3 filter=$4 _
    nsx_bg "$ns" tcpdump -n -i "$ifc" -U -w "$WORK/$name.pcap" "$filter" 2>"$WORK/$name.err" >/dev/null
    CAP[$name]=$!
    for _ in $(seq 100); do grep -q "listening on" "$WORK/$name.err" 2>/dev/null && return 0; sleep 0.05; done
    die "tcpdump $name did not start"
}
# stop_capture NAME: stops it; the pcap is complete afterwards.
stop_capture() {
    kill "${CAP[$1]}" 2>/dev/null || true
    wait "${CAP[$1]}" 2>/dev/null || true
    unset "CAP[$1]"
}
# count NAME FILTER: packets in the capture that match FILTER.
count() { tcpdump -n -r "$WORK/$1.pcap" "$2" 2>/dev/null | wc -l; }
# wait_count NAME FILTER WANT: polls (bounded, 10 s) until the running
# capture holds WANT packets matching FILTER.
wait_count() {
    local _
    for _ in $(seq 200); do [ "$(count "$1" "$2")" -ge "$3" ] && return 0; sleep 0.05; done
    log "    $1: $(count "$1" "$2") of $3 packets"
    return 1
}

cat >"$WORK/attack.py" <<'PY'
# scapy as the attacker: no keys, only what it captured.
import sys
from scapy.all import Ether, IP, UDP, Raw, rdpcap, sendp, fragment, conf

conf.verb = 0
cmd, iface, dst_mac = sys.argv[1], sys.argv[2], sys.argv[3]
args = sys.argv[4:]


def send(pkts):
    frames = [Ether(dst=dst_mac, type=0x0800) / Raw(load=bytes(p)) for p in pkts]
    sendp(frames, iface=iface)


if cmd == "clear":
    # clear SRC DST DPORT N
    src, dst, dport, n = args[0], args[1], int(args[2]), int(args[3])
    send([IP(src=src, dst=dst, ttl=64) / UDP(sport=40000, dport=dport) / Raw(load=b"spoof%04d" % i) for i in range(n)])
    sys.exit(0)

# ESP variants of captured packets: esp VARIANT PCAP FIRST N
variant, pcap, first, n = args[0], args[1], int(args[2]), int(args[3])
raw = [bytes(p[IP]) for p in rdpcap(pcap)][first:first + n]
assert len(raw) == n, f"{len(raw)} captured packets from {first}, want {n}"


def esp_offset(b):
    ihl = (b[0] & 0x0F) * 4
    return ihl + 8 if b[9] == 17 else ihl


out = []
for b in raw:
    b = bytearray(b)
    e = esp_offset(b)
    if variant in ("valid", "replay"):
        pass
    elif variant == "icv":
        b[-1] ^= 0x01  # the last byte of the ICV
    elif variant == "payload":
        b[e + 8 + 8 + 4] ^= 0x01  # inside the ciphertext, past SPI, sequence number and IV
    elif variant == "unknown-spi":
        b[e:e + 4] = (0x7EADBEEF).to_bytes(4, "big")
    elif variant == "truncated":
        p = IP(bytes(b[:e + 12]))  # SPI, sequence number and 4 bytes
        p.len = None
        p.chksum = None
        if UDP in p:
            p[UDP].len = None
            p[UDP].chksum = 0
        b = bytearray(bytes(p))
    elif variant == "fragments":
        out.extend(fragment(IP(bytes(b)), fragsize=512))
        continue
    else:
        sys.exit(f"unknown variant {variant}")
    out.append(IP(bytes(b)))
send(out)
print(len(out))
PY

# The seed's configuration, with anti-replay on (the seed says no-replay)
# and without the VPN monitor (its pings would share the captured SA).
topo_up "dps$$"
for g in 1 2; do
    gw_config "$g" | sed -e 's/ no-replay / replay /' -e '/monitor rekey/d' >"$WORK/gw$g.conf"
done
gw_start 1
gw_start 2
topo_arp_warm
GW1_WAN_MAC=$(nsx gw1 cat /sys/class/net/wan0/address)
GW1_LAN2_MAC=$(nsx gw1 cat /sys/class/net/lan2/address)
attack() { nsx "$1" "$PY" "$WORK/attack.py" "${@:2}"; }
# sa_active GW N: gateway GW shows at least N SAs active (within 10 s).
sa_active() {
    local _
    for _ in $(seq 100); do
        [ "$(gw_cli "$1" get sa 2>/dev/null | grep -c ' A/U ')" -ge "$2" ] && return 0
        sleep 0.1
    done
    gw_cli "$1" get sa >&2 || true
    return 1
}

# --- 1. Spoofed sources --------------------------------------------------
capture h11 h11 eth0 "udp dst port 7777"
snapshot 1 "$WORK/s0"
attack inet clear i1 "$GW1_WAN_MAC" 10.2.1.10 10.1.1.10 7777 "$N"
attack inet clear i1 "$GW1_WAN_MAC" 10.2.3.5 10.1.1.10 7777 "$N"
attack h12 clear eth0 "$GW1_LAN2_MAC" 10.2.2.10 10.1.1.10 7777 "$N"
# The control: a source behind no tunnel, after the spoofs (in order on
# the same path: once it has arrived, so would have the others).
attack inet clear i1 "$GW1_WAN_MAC" 192.0.2.77 10.1.1.10 7777 "$N"
check "spoof: the $N packets from 192.0.2.77 reach h11" wait_count h11 "src host 192.0.2.77" "$N"
stop_capture h11
snapshot 1 "$WORK/s1"
check "spoof: none of 3 x $N from 10.2.1.10 (WAN), 10.2.3.5 (WAN), 10.2.2.10 (LAN) reaches h11" \
    test "$(count h11 "src net 10.2.0.0/16")" = 0
check "spoof: gw1 counts 3 x $N spoofed-source" expect_delta "$WORK/s0" "$WORK/s1" spoofed-source $((3 * N))

# --- 2. ESP from an AutoKey SA, replayed and tampered ---------------------
check "pair 11 up on demand (IKE)" bash -c "ip netns exec '$TOPO-h21' ping -c 1 -W 8 10.1.1.10 >/dev/null"
check "gw1 shows the pair's SAs active" sa_active 1 2
# gw2's ESP to gw1 stops at inet from now on, and is captured there.
nsx inet ip route add blackhole 198.51.100.1/32
capture esp inet i2 "src host 203.0.113.2 and dst host 198.51.100.1 and (ip proto 50 or udp port 4500)"
# 5N small datagrams (one ESP packet each), then N of 1,000 bytes.
nsx h21 bash -c "for i in \$(seq $((5 * N))); do echo small\$i >/dev/udp/10.1.1.10/9999; done"
nsx h21 bash -c "big=\$(printf '%01000d' 0); for i in \$(seq $N); do echo -n \"\$big\" >/dev/udp/10.1.1.10/9998; done"
check "esp: $((6 * N)) ESP packets captured on the way to gw1" wait_count esp ip $((6 * N))
stop_capture esp
nsx inet ip route del blackhole 198.51.100.1/32
check "esp: one SPI in the capture" test "$(tcpdump -n -r "$WORK/esp.pcap" 2>/dev/null | grep -o 'spi=0x[0-9a-f]*' | sort -u | wc -l)" = 1

capture h11 h11 eth0 "udp dst port 9999 or udp dst port 9998 or (ip[6:2] & 0x3fff != 0)"
snapshot 1 "$WORK/e0"
attack inet esp i1 "$GW1_WAN_MAC" valid "$WORK/esp.pcap" 0 "$N" >/dev/null
check "esp: $N valid packets delivered to h11" wait_count h11 "udp dst port 9999" "$N"
attack inet esp i1 "$GW1_WAN_MAC" replay "$WORK/esp.pcap" 0 "$N" >/dev/null
attack inet esp i1 "$GW1_WAN_MAC" icv "$WORK/esp.pcap" "$N" "$N" >/dev/null
attack inet esp i1 "$GW1_WAN_MAC" payload "$WORK/esp.pcap" $((2 * N)) "$N" >/dev/null
attack inet esp i1 "$GW1_WAN_MAC" truncated "$WORK/esp.pcap" $((3 * N)) "$N" >/dev/null
attack inet esp i1 "$GW1_WAN_MAC" unknown-spi "$WORK/esp.pcap" $((4 * N)) "$N" >/dev/null
# --- 3. Outer fragments ---------------------------------------------------
frags=$(attack inet esp i1 "$GW1_WAN_MAC" fragments "$WORK/esp.pcap" $((5 * N)) "$N")
log "    $N ESP packets of ~1,060 bytes sent as $frags fragments"
check "fragments: the $N reassembled packets delivered to h11" wait_count h11 "udp dst port 9998" "$N"
stop_capture h11
snapshot 1 "$WORK/e1"
check "esp: exactly $N delivered (none of the replays or forgeries)" test "$(count h11 "udp dst port 9999")" = "$N"
check "esp: $N replay-duplicate" expect_delta "$WORK/e0" "$WORK/e1" replay-duplicate "$N"
check "esp: $((2 * N)) icv-mismatch (ICV bit, ciphertext bit)" expect_delta "$WORK/e0" "$WORK/e1" icv-mismatch $((2 * N))
check "esp: $N esp-truncated" expect_delta "$WORK/e0" "$WORK/e1" esp-truncated "$N"
check "esp: $N esp-unknown-spi" expect_delta "$WORK/e0" "$WORK/e1" esp-unknown-spi "$N"
check "esp: $((2 * N)) decrypted (the valid and the reassembled)" expect_delta "$WORK/e0" "$WORK/e1" decrypted $((2 * N))
check "fragments: $N datagrams reassembled" expect_delta "$WORK/e0" "$WORK/e1" reassembled "$N"
check "fragments: all $frags fragments taken in" expect_delta "$WORK/e0" "$WORK/e1" fragments "$frags"
check "fragments: h11 got whole packets (no fragment left the gateway)" \
    test "$(count h11 "ip[6:2] & 0x3fff != 0")" = 0
[ "$fail" = 0 ] || gw_diag

summary
