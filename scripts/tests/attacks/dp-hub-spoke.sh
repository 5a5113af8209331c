#!/usr/bin/env bash
# Hub and spoke across workers: gw1 of the seed topology is a hub
# whose fastpathd runs 2 workers on ports of 2 queues, with tunnel.1 to
# spoke A (198.51.100.11, 10.3.0.0/16 behind it) and tunnel.2 to spoke B
# (198.51.100.12, 10.4.0.0/16), programmed over the control API with
# manual-key AES-GCM SAs. The VPN of tunnel.2 is numbered so that its SAs
# belong to the other worker than tunnel.1's (an SA's owner is a hash of
# its VPN and proxy-ID): a packet from A to B is decrypted on one worker
# and sealed on the other.
#
# scapy on "inet" plays both spokes: it seals N packets 10.3.1.10 ->
# 10.4.1.10 as spoke A, captures what the hub sends spoke B and opens it
# with spoke B's keys: N packets, the inner packets as A sent them (TTL
# one less), on tunnel.2's SPI, and the hub counts N decrypted, N
# encrypted and N inner packets handed off. Then N more, larger, as
# ESP-in-UDP (RFC 3948) cut into IP fragments: the XDP program sends the
# later fragments after their first one (they carry no UDP header), the
# hub reassembles them (N datagrams) and spoke B gets them too; and a
# fragmented IKE datagram (UDP 500) still reaches the hub's kernel socket.
#
# Ends with "N passed, M failed". Needs root. Bounded by $ESPRIT_TIMEOUT
# seconds (default 120).
set -uo pipefail
ESPRIT_SCRIPT=dp-hub-spoke
source "$(dirname "$0")/../../lib/common.sh"
source "$ESPRIT_ROOT/scripts/lib/testlib.sh"
source "$ESPRIT_ROOT/scripts/lib/topo.sh"
need_root
apt_install "${ESPRIT_TEST_PACKAGES[@]}"

LIMIT=${ESPRIT_TIMEOUT:-120}
N=${ESPRIT_ATTACK_N:-20}
PY=/usr/bin/python3 # Debian's, with scapy (FACTS.md)
esprit_bin_dir

WORK=$(mktemp -d /tmp/esprit-dp-hub.XXXXXX)
EXTRA=()
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}" "${EXTRA[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    topo_down
    if [ -n "${ESPRIT_KEEP:-}" ]; then log "logs kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
watchdog "$LIMIT"

HUB=198.51.100.1
SPOKE_A=198.51.100.11
SPOKE_B=198.51.100.12
SPI_A=0x3a01 # spoke A -> hub
SPI_B=0x3b01 # hub -> spoke B
# Lab keys (AES-128-GCM key and salt), known to both ends, used nowhere else.
KEY_A=000102030405060708090a0b0c0d0e0f10111213
KEY_B=a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3
PID_A="local-ip 10.4.0.0/16 remote-ip 10.3.0.0/16 ANY"
PID_B="local-ip 10.3.0.0/16 remote-ip 10.4.0.0/16 ANY"

fpctl() { "$BIN/fpctl" --socket "$WORK/hub.sock" "$@"; }
hubstat() { # stat NAME: a worker counter summed over the hub's workers
    fpctl request '{"type":"stats"}' | python3 -c '
import json, sys
print(sum(w[sys.argv[1]] for w in json.load(sys.stdin)["workers"]))' "$1"
}
owner() { # owner SA_ID: the worker that holds it
    fpctl request '{"type":"stats"}' | python3 -c '
import json, sys
print([s["worker"] for s in json.load(sys.stdin)["sas"] if s["id"] == int(sys.argv[1], 0)][0])' "$1"
}
sa() { # sa ID DIRECTION SPI KEY PEER VPN TUNNEL PROXY_ID
    python3 -c '
import json, sys
i, d, spi, key, peer, vpn, tunnel, pid = sys.argv[1:]
r = {"type": "add-sa", "id": int(i, 0), "direction": d, "spi": int(spi, 0), "suite": "aes128gcm16",
     "encr_key": key, "integ_key": "", "local": "198.51.100.1", "peer": peer, "vpn": int(vpn),
     "tunnel": int(tunnel), "proxy_id": pid, "replay_window": 128}
if d == "outbound":
    r["iv_key"] = "00" * 16
print(json.dumps(r))' "$@"
}

topo_up "dph$$" 2
nsx inet ip addr add "$SPOKE_A/24" dev i1
nsx inet ip addr add "$SPOKE_B/24" dev i1
nsx_bg gw1 "$BIN/fastpathd" --port wan0 --workers 2 --xdp-mode driver --socket "$WORK/hub.sock" \
    >"$WORK/hub.log" 2>&1
PIDS+=($!)
for _ in $(seq 100); do [ -S "$WORK/hub.sock" ] && break; sleep 0.1; done
[ -S "$WORK/hub.sock" ] || { cat "$WORK/hub.log" >&2; die "fastpathd did not start"; }
{
    echo '{"type":"set-routes","routes":[
        {"prefix":"198.51.100.0/24","next_hop":{"kind":"port","port":"wan0","gateway":null}},
        {"prefix":"10.3.0.0/16","next_hop":{"kind":"tunnel","tunnel":1}},
        {"prefix":"10.4.0.0/16","next_hop":{"kind":"tunnel","tunnel":2}}]}' | tr -d '\n'
    echo
    echo '{"type":"set-tunnel","tunnel":1,"mtu":1400,"vpn":1}'
    echo "{\"type\":\"set-vpn\",\"vpn\":1,\"check\":true,\"proxy_ids\":[\"$PID_A\"]}"
    sa 1 inbound "$SPI_A" "$KEY_A" "$SPOKE_A" 1 1 "$PID_A"
} | fpctl batch >/dev/null
# tunnel.2's VPN: the first number whose SAs land on the other worker.
vpn_b=
for v in $(seq 2 17); do
    {
        echo "{\"type\":\"set-tunnel\",\"tunnel\":2,\"mtu\":1400,\"vpn\":$v}"
        echo "{\"type\":\"set-vpn\",\"vpn\":$v,\"check\":true,\"proxy_ids\":[\"$PID_B\"]}"
        sa 2 outbound "$SPI_B" "$KEY_B" "$SPOKE_B" "$v" 2 "$PID_B"
    } | fpctl batch >/dev/null
    if [ "$(owner 1)" != "$(owner 2)" ]; then
        vpn_b=$v
        break
    fi
    printf '{"type":"remove-sa","id":2}\n{"type":"remove-vpn","vpn":%s}\n' "$v" | fpctl batch >/dev/null
done
check "tunnel.2's SA belongs to another worker than tunnel.1's (vpn ${vpn_b:-none})" test -n "$vpn_b"
log "    inbound SA from A on worker $(owner 1), outbound SA to B on worker $(owner 2)"
# The hub's kernel learns the spokes' MAC addresses (fastpathd mirrors them).
nsx gw1 ping -c 1 -W 2 "$SPOKE_A" >/dev/null 2>&1 || true
nsx gw1 ping -c 1 -W 2 "$SPOKE_B" >/dev/null 2>&1 || true
sleep_until_neighbors() { # the mirror is polled every 100 ms: bounded wait
    local _
    for _ in $(seq 50); do
        fpctl request '{"type":"dump"}' | grep -q "$SPOKE_B" && return 0
        sleep 0.1
    done
    return 0
}
sleep_until_neighbors

nsx_bg inet tcpdump -n -i i1 -U -w "$WORK/b.pcap" "src host $HUB and dst host $SPOKE_B and ip proto 50" \
    2>"$WORK/tcpdump.err" >/dev/null
EXTRA+=($!)
TCPDUMP=$!
for _ in $(seq 100); do grep -q "listening on" "$WORK/tcpdump.err" 2>/dev/null && break; sleep 0.05; done
HUB_MAC=$(nsx gw1 cat /sys/class/net/wan0/address)
before_handed=$(hubstat handed_off)

cat >"$WORK/spokes.py" <<'PY'
import sys
from scapy.all import Ether, IP, UDP, Raw, sendp, rdpcap, conf, fragment
from scapy.layers.ipsec import SecurityAssociation, ESP

conf.verb = 0
cmd = sys.argv[1]
spi_a, key_a, spi_b, key_b = int(sys.argv[2], 0), bytes.fromhex(sys.argv[3]), int(sys.argv[4], 0), bytes.fromhex(sys.argv[5])
hub, a, b, n = sys.argv[6], sys.argv[7], sys.argv[8], int(sys.argv[9])


def inner(i):
    # The first N small, the next N of 1,000 bytes more (sent in fragments).
    data = b"hub-spoke %04d" % i + (b"x" * 1000 if i >= n else b"")
    return IP(src="10.3.1.10", dst="10.4.1.10", ttl=64, id=i) / UDP(sport=40000, dport=5001) / Raw(data)


def send(pkts):
    sendp([Ether(dst=sys.argv[10], type=0x0800) / Raw(bytes(p)) for p in pkts], iface="i1")


if cmd == "send":
    sa = SecurityAssociation(ESP, spi=spi_a, crypt_algo="AES-GCM", crypt_key=key_a,
                             tunnel_header=IP(src=a, dst=hub), seq_num=1)
    send([sa.encrypt(inner(i)) for i in range(n)])
elif cmd == "send-fragmented":
    sa = SecurityAssociation(ESP, spi=spi_a, crypt_algo="AES-GCM", crypt_key=key_a,
                             tunnel_header=IP(src=a, dst=hub), seq_num=n + 1,
                             nat_t_header=UDP(sport=4500, dport=4500))
    frags = []
    for i in range(n, 2 * n):
        p = sa.encrypt(inner(i))
        p[UDP].len = None  # scapy leaves it at 8 (FACTS.md)
        frags.extend(fragment(IP(bytes(p)), fragsize=512))
    send(frags)
    print(len(frags))
elif cmd == "ike-fragmented":
    ike = IP(src=a, dst=hub, id=0x1ce) / UDP(sport=500, dport=500) / Raw(b"\x00" * 8 + b"I" * 2992)
    send(fragment(ike, fragsize=1024))
else:
    sa = SecurityAssociation(ESP, spi=spi_b, crypt_algo="AES-GCM", crypt_key=key_b,
                             tunnel_header=IP(src=hub, dst=b))
    # open: the first N packets; open-more: the next N.
    first = 0 if cmd == "open" else n
    got = 0
    for p in rdpcap(sys.argv[10]):
        if got == int(sys.argv[11]):
            break
        ip = IP(bytes(p[IP]))
        assert ip[ESP].spi == spi_b, hex(ip[ESP].spi)
        dec = sa.decrypt(ip)
        want = inner(first + got)
        want.ttl -= 1
        assert bytes(dec) == bytes(IP(bytes(want))), (dec.summary(), got)
        got += 1
    print(got)
PY
spokes() { nsx inet "$PY" "$WORK/spokes.py" "$1" "$SPI_A" "$KEY_A" "$SPI_B" "$KEY_B" "$HUB" "$SPOKE_A" "$SPOKE_B" "$N" "${@:2}"; }
spokes send "$HUB_MAC"
count_b() { tcpdump -n -r "$WORK/b.pcap" 2>/dev/null | wc -l; }
wait_b() {
    local _
    for _ in $(seq 200); do [ "$(count_b)" -ge "$N" ] && return 0; sleep 0.05; done
    log "    spoke B got $(count_b) of $N"
    return 1
}
check "hub: the $N packets from spoke A leave for spoke B" wait_b
kill "$TCPDUMP" 2>/dev/null
wait "$TCPDUMP" 2>/dev/null
check "spoke B opens all $N with its keys: A's packets, TTL one less, in order" \
    test "$(spokes open "$WORK/b.pcap" "$N" 2>"$WORK/open.err")" = "$N"
[ -s "$WORK/open.err" ] && sed 's/^/    /' "$WORK/open.err" >&2
check "hub: $N decrypted" test "$(hubstat decrypted)" = "$N"
check "hub: $N encrypted" test "$(hubstat encrypted)" = "$N"
handed=$(($(hubstat handed_off) - before_handed))
log "    hand-offs: $handed"
# At least the N inner packets went from the decrypting worker to the
# sealing one (ESP that arrived on the sealing worker's queue went to the
# decrypting worker first, as received).
check "hub: the $N inner packets were handed to the other worker" test "$handed" -ge "$N"

# --- ESP-in-UDP in fragments, and IKE in fragments ------------------------
nsx_bg inet tcpdump -n -i i1 -U -w "$WORK/b2.pcap" "src host $HUB and dst host $SPOKE_B and ip proto 50" \
    2>"$WORK/tcpdump2.err" >/dev/null
EXTRA+=($!)
TCPDUMP=$!
for _ in $(seq 100); do grep -q "listening on" "$WORK/tcpdump2.err" 2>/dev/null && break; sleep 0.05; done
# The hub's kernel listens on UDP 500 as controld would.
nsx_bg gw1 "$PY" -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 500))
s.settimeout(20)
print(len(s.recvfrom(65535)[0]), flush=True)' >"$WORK/ike.out" 2>&1
EXTRA+=($!)
IKE=$!
for _ in $(seq 100); do nsx gw1 ss -uln | grep -q ":500 " && break; sleep 0.05; done
frags=$(spokes send-fragmented "$HUB_MAC")
log "    $N ESP-in-UDP packets of ~1,100 bytes sent as $frags fragments"
spokes ike-fragmented "$HUB_MAC"
count_b() { tcpdump -n -r "$WORK/b2.pcap" 2>/dev/null | wc -l; }
check "hub: the $N reassembled packets leave for spoke B" wait_b
kill "$TCPDUMP" 2>/dev/null
wait "$TCPDUMP" 2>/dev/null
wait "$IKE" 2>/dev/null
check "spoke B opens them all: A's larger packets, TTL one less, in order" \
    test "$(spokes open-more "$WORK/b2.pcap" "$N" 2>"$WORK/open2.err")" = "$N"
[ -s "$WORK/open2.err" ] && sed 's/^/    /' "$WORK/open2.err" >&2
check "hub: $N datagrams reassembled from $frags fragments" \
    test "$(hubstat reassembled) $(hubstat fragments)" = "$N $frags"
check "hub: $((2 * N)) decrypted, $((2 * N)) encrypted" \
    test "$(hubstat decrypted) $(hubstat encrypted)" = "$((2 * N)) $((2 * N))"
check "hub's kernel: the fragmented IKE datagram (3,000 bytes) reached UDP 500" \
    test "$(cat "$WORK/ike.out")" = 3000
[ "$fail" = 0 ] || { fpctl request '{"type":"stats"}' >&2; tail -n 20 "$WORK/hub.log" >&2; }

summary
