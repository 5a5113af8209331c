#!/usr/bin/env bash
# MTU like a gateway: two esprit gateways (fastpathd + controld) of the
# seed topology (scripts/lib/topo.sh), one manual-key VPN between their
# LANs, in two rounds:
#   round 1: WAN MTU 1500, tunnel.1 mtu 1500 (the WAN path limits: an inner
#            packet of at most 1438 bytes fits it after AES-256-CBC /
#            HMAC-SHA-256-128 ESP: 1500 - 20 - 8 - 16 - 16 = 1440 for the
#            padded payload, less the 2-byte trailer), `set flow tcp-mss`
#            with ScreenOS's default 1380;
#   round 2: WAN MTU 1400 on every WAN link, tunnel.1 mtu 1300 (the tunnel
#            interface limits), `set flow tcp-mss 1260`.
# In each round:
#  - a TCP transfer of 4 MB with the clamp on: the SYN seen on the far LAN
#    announces the clamped MSS, the SYN-ACK seen on the near LAN too (the
#    far gateway clamps the SYN-ACK it encrypts), the bytes arrive intact
#    (SHA-256), and no packet needed an ICMP fragmentation-needed;
#  - the same with the clamp off (`unset flow tcp-mss`): the SYN arrives with
#    the host's 1460, the transfer still arrives intact (path MTU discovery
#    through the gateway's ICMP errors, which it counts as too-big-df);
#  - UDP datagrams without DF larger than the tunnel MTU (1472 bytes, and
#    3000 bytes that the sending host fragments itself first) reach the
#    far host whole: fragmented by the gateway before encryption,
#    reassembled by the host, payload bytes compared;
#  - a DF ping over the limit gets ICMP fragmentation-needed with the
#    limit as next-hop MTU.
# Every destination is an address used once per round, so that no path MTU
# the hosts learnt in an earlier step changes what a later one sees.
#
#   scripts/tests/mtu.sh [XDP_MODE]
# Needs root. Binaries from $ESPRIT_BIN (default $CARGO_TARGET_DIR or
# target, /debug), built if missing. Bounded by $ESPRIT_TIMEOUT seconds
# (default 300).
set -uo pipefail
ESPRIT_SCRIPT=mtu
source "$(dirname "$0")/../lib/common.sh"
source "$ESPRIT_ROOT/scripts/lib/testlib.sh"
source "$ESPRIT_ROOT/scripts/lib/topo.sh"
source "$ESPRIT_ROOT/scripts/lib/gateway.sh"
need_root
apt_install "${ESPRIT_TEST_PACKAGES[@]}"

XDP_MODE=${1:-driver}
LIMIT=${ESPRIT_TIMEOUT:-300}
esprit_bin_dir

lab_begin mtu "$LIMIT"

topo_up "emtu$$"
log "topology $TOPO: xdp=$XDP_MODE, work directory $WORK"

# The transfers: real sockets in the hosts' namespaces.
cat >"$WORK/xfer.py" <<'EOF'
import hashlib, socket, sys
IP_MTU_DISCOVER, IP_PMTUDISC_OMIT = 10, 5
def payload(n):
    return bytes((i * 7 + n) % 256 for i in range(n))
mode = sys.argv[1]
if mode == "tcp-recv":  # PORT READY: one connection, until EOF
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", int(sys.argv[2])))
    s.listen(1)
    s.settimeout(60)
    open(sys.argv[3], "w").close()
    c, _ = s.accept()
    c.settimeout(60)
    h, n = hashlib.sha256(), 0
    while True:
        b = c.recv(65536)
        if not b:
            break
        h.update(b)
        n += len(b)
    print(n, h.hexdigest())
elif mode == "tcp-send":  # HOST PORT FILE
    c = socket.create_connection((sys.argv[2], int(sys.argv[3])), timeout=60)
    with open(sys.argv[4], "rb") as f:
        c.sendall(f.read())
    c.shutdown(socket.SHUT_WR)
    c.recv(1)
elif mode == "udp-recv":  # PORT READY COUNT: each datagram's length and digest
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", int(sys.argv[2])))
    s.settimeout(10)
    open(sys.argv[3], "w").close()
    for _ in range(int(sys.argv[4])):
        b = s.recv(65536)
        print(len(b), hashlib.sha256(b).hexdigest())
elif mode == "udp-send":  # HOST PORT SIZE...: DF clear, whatever the path MTU
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_OMIT)
    for size in sys.argv[4:]:
        s.sendto(payload(int(size)), (sys.argv[2], int(sys.argv[3])))
elif mode == "udp-expect":  # SIZE...: what udp-recv should print
    for size in sys.argv[2:]:
        b = payload(int(size))
        print(len(b), hashlib.sha256(b).hexdigest())
EOF
XFER="python3 $WORK/xfer.py"
head -c 4000000 /dev/urandom >"$WORK/data"
WANT_TCP="4000000 $(sha256sum "$WORK/data" | cut -d' ' -f1)"

# Keys of their own in each round (a manual SA's keys never restart at
# sequence number 1 once they carried traffic, DESIGN.md §7).
key() { printf 'esprit-mtu round %s %s' "$ROUND" "$1" | sha256sum | cut -c1-64; }
ROUND=0
# ping_df DST SIZE: one DF ping of SIZE bytes (IP) from h12 answered.
ping_df() { nsx h12 ping -M do -c 1 -W 2 -s $(($2 - 28)) "$1" >/dev/null 2>&1; }

# write_config G TUNNEL_MTU: gateway G, one manual-key VPN for the LANs.
write_config() {
    local g=$1 o=$((3 - $1)) in out
    if [ "$g" = 1 ]; then in=2011 out=1011; else in=1011 out=2011; fi
    cat >"$WORK/gw$g.conf" <<EOF
set interface ethernet0/1 zone Trust
set interface ethernet0/1 ip 10.$g.1.1/24
set interface ethernet0/3 zone Trust
set interface ethernet0/3 ip 10.$g.2.1/24
set interface ethernet0/3 port lan2
set interface ethernet0/2 zone Untrust
set interface ethernet0/2 ip $(gw_wan "$g")/24
set interface ethernet0/2 port wan0
set interface tunnel.1 zone Untrust
set interface tunnel.1 ip unnumbered interface ethernet0/2
set interface tunnel.1 mtu $2
set route 0.0.0.0/0 interface ethernet0/2 gateway $([ "$g" = 1 ] && echo 198.51.100.254 || echo 203.0.113.254)
set vpn "lans" manual $in $out gateway $(gw_wan "$o") outgoing-interface "ethernet0/2" esp aes256 key $(key encr) auth sha2-256 key $(key auth)
set vpn "lans" proxy-id local-ip 10.$g.0.0/16 remote-ip 10.$o.0.0/16 any
set vpn "lans" id 0x11 bind interface tunnel.1
set route 10.$o.0.0/16 interface tunnel.1
EOF
    chmod 600 "$WORK/gw$g.conf"
}

# counter G NAME: the sum over gateway G's workers of a worker counter or
# (with drop: prefix) a drop reason, read from fastpathd now (controld's
# `get counter` may show counters a moment old).
counter() {
    "$BIN/fpctl" --socket "$WORK/fp$1.sock" request '{"type":"stats"}' | python3 -c '
import json, sys
s, name = json.load(sys.stdin), sys.argv[1]
if name.startswith("drop:"):
    print(sum(n for w in s["workers"] for r, n in w["drops"] if r == name[5:]))
else:
    print(sum(w.get(name, 0) for w in s["workers"]))' "$2"
}

# capture NS FILTER NAME: tcpdump of one packet matching FILTER on NS's
# eth0, into $WORK/NAME.txt; returns once tcpdump listens. $! is its PID.
capture() {
    nsx_bg "$1" timeout 60 tcpdump -n -v -l -c 1 -i eth0 "$2" >"$WORK/$3.txt" 2>"$WORK/$3.err"
    local pid=$! _
    EXTRA+=("$pid")
    for _ in $(seq 100); do grep -q "listening on" "$WORK/$3.err" && break; sleep 0.05; done
    CAPTURE=$pid
}

# mss_of NAME: the MSS option of the captured SYN.
mss_of() { grep -o 'mss [0-9]*' "$WORK/$1.txt" | head -n 1 | cut -d' ' -f2; }

# tcp_transfer SRC_NS DST_NS DST_ADDR NAME: 4 MB from SRC to DST's
# address; captures the SYN at DST and the SYN-ACK at SRC. Sets GOT (bytes
# and digest received), SYN_MSS and SYNACK_MSS.
tcp_transfer() {
    local src=$1 dst=$2 addr=$3 name=$4 recv _
    rm -f "$WORK/$name.ready"
    capture "$dst" "tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn and dst host $addr and dst port 5001" "$name-syn"
    local syn=$CAPTURE
    capture "$src" "tcp[tcpflags] & (tcp-syn|tcp-ack) == (tcp-syn|tcp-ack) and src host $addr and src port 5001" "$name-synack"
    local synack=$CAPTURE
    nsx_bg "$dst" $XFER tcp-recv 5001 "$WORK/$name.ready" >"$WORK/$name.out" 2>"$WORK/$name.recv-err"
    recv=$!
    EXTRA+=("$recv")
    for _ in $(seq 100); do [ -e "$WORK/$name.ready" ] && break; sleep 0.05; done
    nsx "$src" timeout 90 $XFER tcp-send "$addr" 5001 "$WORK/data" 2>"$WORK/$name.send-err" || log "$name: sender failed: $(cat "$WORK/$name.send-err")"
    wait "$recv" || true
    wait "$syn" || true
    wait "$synack" || true
    GOT=$(cat "$WORK/$name.out")
    SYN_MSS=$(mss_of "$name-syn")
    SYNACK_MSS=$(mss_of "$name-synack")
}

# udp_datagrams DST_NS DST_ADDR NAME SIZE...: the datagrams from h11,
# without DF, as DST receives them (lengths and digests, sorted: a datagram
# that waits for reassembly may come after a later one) in GOT.
udp_datagrams() {
    local dst=$1 addr=$2 name=$3 recv _
    shift 3
    rm -f "$WORK/$name.ready"
    nsx_bg "$dst" $XFER udp-recv 7000 "$WORK/$name.ready" "$#" >"$WORK/$name.out" 2>"$WORK/$name.err"
    recv=$!
    EXTRA+=("$recv")
    for _ in $(seq 100); do [ -e "$WORK/$name.ready" ] && break; sleep 0.05; done
    nsx h11 $XFER udp-send "$addr" 7000 "$@"
    wait "$recv" || true
    GOT=$(sort "$WORK/$name.out")
}

# round R WAN_MTU TUNNEL_MTU LIMIT MSS_WORDS MSS
round() {
    local r=$1 wan=$2 tmtu=$3 limit=$4 mss_words=$5 mss=$6 ifc before after want
    ROUND=$r
    rm -rf "$WORK"/fp?.sock "$WORK"/cd?.sock "$WORK"/state?
    log "round $r: WAN MTU $wan, tunnel.1 mtu $tmtu (inner packets up to $limit bytes), $mss_words"
    nsx gw1 ip link set dev wan0 mtu "$wan"
    nsx inet ip link set dev i1 mtu "$wan"
    nsx inet ip link set dev i2 mtu "$wan"
    nsx gw2 ip link set dev wan0 mtu "$wan"
    for g in 1 2; do write_config "$g" "$tmtu"; done
    gw_start 1
    gw_start 2
    topo_arp_warm
    # One address per step on the far hosts (see the header).
    local a_clamp=10.2.1.$((20 + r)) a_pmtu=10.2.2.$((20 + r)) a_udp=10.2.2.$((30 + r)) a_df=10.2.1.$((30 + r))
    nsx h21 ip addr add "$a_clamp/24" dev eth0
    nsx h21 ip addr add "$a_df/24" dev eth0
    nsx h22 ip addr add "$a_pmtu/24" dev eth0
    nsx h22 ip addr add "$a_udp/24" dev eth0
    for a in "$a_clamp" "$a_pmtu" "$a_udp" "$a_df"; do
        check "round $r: $a answers through the tunnel" ping_ok h11 "$a" 3 0.05
    done

    # Clamp on.
    check "round $r: esprit set flow $mss_words (gw1)" gw_cli 1 set flow $mss_words
    check "round $r: esprit set flow $mss_words (gw2)" gw_cli 2 set flow $mss_words
    before=$(counter 1 drop:too-big-df)
    tcp_transfer h11 h21 "$a_clamp" "r$r-clamp"
    after=$(counter 1 drop:too-big-df)
    check "round $r, clamp on: 4 MB arrived intact ($GOT)" test "$GOT" = "$WANT_TCP"
    check "round $r, clamp on: SYN on the far LAN announces MSS $mss (saw ${SYN_MSS:-none})" test "${SYN_MSS:-0}" = "$mss"
    check "round $r, clamp on: SYN-ACK on the near LAN announces MSS $mss (saw ${SYNACK_MSS:-none})" test "${SYNACK_MSS:-0}" = "$mss"
    check "round $r, clamp on: no packet needed fragmentation-needed (too-big-df $before -> $after)" test "$before" = "$after"
    check "round $r, clamp on: gw1 counted the SYN it clamped (mss_clamped $(counter 1 mss_clamped))" test "$(counter 1 mss_clamped)" -ge 1
    check "round $r, clamp on: gw2 counted the SYN-ACK it clamped (mss_clamped $(counter 2 mss_clamped))" test "$(counter 2 mss_clamped)" -ge 1

    # Clamp off.
    check "round $r: esprit unset flow tcp-mss (gw1)" gw_cli 1 unset flow tcp-mss
    check "round $r: esprit unset flow tcp-mss (gw2)" gw_cli 2 unset flow tcp-mss
    before=$(counter 1 drop:too-big-df)
    tcp_transfer h11 h22 "$a_pmtu" "r$r-noclamp"
    after=$(counter 1 drop:too-big-df)
    check "round $r, clamp off: 4 MB arrived intact ($GOT)" test "$GOT" = "$WANT_TCP"
    check "round $r, clamp off: SYN on the far LAN announces the host's MSS 1460 (saw ${SYN_MSS:-none})" test "${SYN_MSS:-0}" = 1460
    check "round $r, clamp off: path MTU discovery through the gateway (too-big-df $before -> $after)" test "$after" -gt "$before"

    # Non-DF UDP over the tunnel MTU.
    before=$(counter 1 fragmented)
    udp_datagrams h22 "$a_udp" "r$r-udp" 1472 3000 200
    want=$($XFER udp-expect 1472 3000 200 | sort)
    after=$(counter 1 fragmented)
    check "round $r: non-DF UDP of 1472 and 3000 bytes delivered whole" test "$GOT" = "$want"
    # 1472: one datagram; 3000: the host's three fragments (1500, 1500 and
    # 68 bytes), two over the limit.
    check "round $r: gw1 fragmented 3 datagrams before encryption ($before -> $after)" test "$((after - before))" = 3

    # DF over the limit.
    local out
    out=$(nsx h12 ping -M do -c 1 -W 2 -s $((limit + 1 - 28)) "$a_df" 2>&1)
    check "round $r: DF ping of $((limit + 1)) bytes gets fragmentation-needed, mtu $limit" \
        grep -q "Frag needed and DF set (mtu = $limit)" <<<"$out"
    check "round $r: DF ping of $limit bytes crosses" ping_df "$a_df" "$limit"
    if [ "$fail" != 0 ]; then gw_diag; fi
    gw_stop
}


round 1 1500 1500 1438 "tcp-mss" 1380
round 2 1400 1300 1300 "tcp-mss 1260" 1260
summary
