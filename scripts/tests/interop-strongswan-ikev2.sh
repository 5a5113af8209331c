#!/usr/bin/env bash
# Interoperability of esprit (fastpathd + controld running IKEv2, RFC 7296)
# with an independent implementation, in the seed topology
# (scripts/lib/topo.sh).
#
#   scripts/tests/interop-strongswan-ikev2.sh     (or scripts/interop.sh strongswan ikev2)
#
# gw1 = fastpathd + controld, configured in ScreenOS syntax with one AutoKey
# VPN (gateway `ikev2 "swan"`, PSK) bound to tunnel.1 with the seed's four
# proxy-IDs, a fifth one with a service (10.1.1.0/24 <-> 10.2.3.0/24
# "HTTP", TCP port 80 on 10.2.3.10, an address of h21) and `proxy-id
# check`; gw2 = strongSwan charon (swanctl, `version = 2`) with
# kernel-libipsec (scripts/lib/strongswan.sh), one child per proxy-ID.
#
#  1. esprit initiates on demand: the first ping h11 -> h21 makes fastpathd
#     acquire, controld runs IKE_SA_INIT + IKE_AUTH (the first child), the
#     held packet is delivered (the first ping is answered); the other
#     pairs by CREATE_CHILD_SA the same way, the HTTP one by a TCP connect
#     (strongSwan's selectors then carry tcp/80); each pair crosses the WAN
#     on its own SPI pair (tcpdump on inet's i1, packets counted per SPI),
#     exactly the SPIs `esprit get sa` shows;
#  2. strongSwan initiates (`swanctl --initiate --child`), esprit responds;
#     every pair carries traffic; a child whose selectors are a superset of
#     exactly one proxy-ID (10.1.2.0/24 <-> 10.2.2.0/23) is narrowed to it
#     (strongSwan lists the narrowed selectors, esprit installs the
#     configured proxy-ID); one with unrelated selectors is refused with
#     TS_UNACCEPTABLE, and esprit's log says so in words;
#  3. rekeys under pings every 20 ms on two pairs, none lost: esprit's
#     children (lifetime 24 s) and its IKE SA (40 s), then strongSwan's
#     children (rekey_time 15 s); new SPIs on both sides, no
#     esp-unknown-spi or replay drop in `esprit get counter`;
#  4. DPD (`dpd-liveness interval 2 retry 3`): strongSwan killed, esprit
#     declares the peer dead (3 unanswered checks 2 s apart) and removes
#     the SAs; strongSwan back, the next
#     packet negotiates again;
#  5. certificates (RFC 7427 signatures), RSA then ECDSA P-256: a CA and
#     both gateways' certificates made by strongSwan's pki (SAN dNSName
#     west.example for esprit, east.example for strongSwan), esprit's
#     key in PKCS#8; esprit initiates, then strongSwan, each checking the
#     other's certificate chain and signature; traffic both times;
#  6. IKE fragmentation (RFC 7383) over a path that drops every IPv4
#     fragment (an nftables rule on inet, `ip frag-off & 0x3fff != 0
#     drop`): a chain (RSA 4096 end entities under an intermediate, both
#     sent) too big for one datagram; esprit initiates, then strongSwan;
#     the capture shows Encrypted Fragments (SKF) from both, no IP
#     fragment, strongSwan reassembled esprit's, and the children carry
#     traffic;
#  7. every WAN capture dissected by `tshark -V`: IKEv2 (ISAKMP version
#     2.0) and ESP present, nothing "Malformed".
#
# strongSwan's kernel-libipsec always wants ESP in UDP (it fakes NAT
# detection): the IKE SA moves to port 4500 after IKE_SA_INIT and ESP
# is in UDP 4500 on both sides (RFC 7296 §2.23, RFC 3948).
#
# Ends with "N passed, M failed". Needs root. Bounded by $ESPRIT_TIMEOUT
# seconds (default 480). SCENARIOS="esprit strongswan rekey dpd cert frag"
# (the default) selects the scenarios. Cleans up (processes by PID, namespaces)
# on any exit. Binaries from $ESPRIT_BIN (default $CARGO_TARGET_DIR or
# target, /debug), built if missing. ESPRIT_KEEP=1 keeps the logs.
set -uo pipefail
ESPRIT_SCRIPT=interop-v2
source "$(dirname "$0")/../lib/common.sh"
source "$ESPRIT_ROOT/scripts/lib/testlib.sh"
source "$ESPRIT_ROOT/scripts/lib/topo.sh"
source "$ESPRIT_ROOT/scripts/lib/strongswan.sh"
source "$ESPRIT_ROOT/scripts/lib/interop.sh"
need_root

[ $# -eq 0 ] || die "usage: scripts/tests/interop-strongswan-ikev2.sh (no arguments; see the header)"
LIMIT=${ESPRIT_TIMEOUT:-480}
SCENARIOS=${SCENARIOS:-"esprit strongswan rekey dpd cert frag"}
PSK="esprit-interop-v2-psk-0123456789"
START=$(date +%s)

swan_packages
apt_install "${ESPRIT_TEST_PACKAGES[@]}" openssl nftables
esprit_bin_dir

lab_begin interop-v2 "$LIMIT"
# Cut short (the watchdog after $LIMIT s, or a signal): what ran is
# counted, the cut counts as a failure.
interop_cut() {
    [ -z "${DONE:-}" ] || return 0
    log "interrupted after $(($(date +%s) - START)) s"
    fail=$((fail + 1))
    summary || true
}
lab_on_exit interop_cut

# The seed's four pairs "XY": 10.1.X.0/24 (behind esprit) <-> 10.2.Y.0/24.
PAIRS="11 12 21 22"
WEB=10.2.3.10

# write_gw1_config [P2_LIFE_SECS P1_LIFE_SECS]: ESP AES-128-GCM, no PFS.
write_gw1_config() {
    local p p2=nopfs-esp-aes128gcm p1=pre-g14-aes128-sha
    {
        if [ -n "${1:-}" ]; then
            p1=short-p1
            p2=short-p2
            echo "set ike p1-proposal \"short-p1\" preshare group14 esp aes128 sha-1 second $2"
            echo "set ike p2-proposal \"short-p2\" no-pfs esp aes128gcm second $1"
        fi
        echo "set interface ethernet0/1 zone Trust"
        echo "set interface ethernet0/1 ip 10.1.1.1/24"
        echo "set interface ethernet0/1 port lan1"
        echo "set interface ethernet0/3 zone Trust"
        echo "set interface ethernet0/3 ip 10.1.2.1/24"
        echo "set interface ethernet0/3 port lan2"
        echo "set interface ethernet0/2 zone Untrust"
        echo "set interface ethernet0/2 ip 198.51.100.1/24"
        echo "set interface ethernet0/2 port wan0"
        echo "set interface tunnel.1 zone Untrust"
        echo "set interface tunnel.1 ip unnumbered interface ethernet0/2"
        echo "set route 0.0.0.0/0 interface ethernet0/2 gateway 198.51.100.254"
        if [ -n "${CERT:-}" ]; then
            # Signatures (RFC 7427) with certificates made by strongSwan's pki.
            echo "set ike p1-proposal \"p1-$CERT\" $CERT-sig group14 esp aes128 sha-1 second 28800"
            echo "set pki local-cert \"west\" certificate \"$PKI/west-cert.pem\" key \"$PKI/west-key8.pem\""
            echo "set pki ca-cert \"lab-ca\" file \"$PKI/ca.pem\""
            echo "set ike gateway ikev2 \"swan\" address 203.0.113.2 outgoing-interface \"ethernet0/2\" proposal \"p1-$CERT\""
            echo "set ike gateway ikev2 \"swan\" cert my-cert \"west\""
            echo "set ike gateway ikev2 \"swan\" cert peer-ca \"lab-ca\""
            echo "set ike gateway ikev2 \"swan\" local-id \"west.example\""
            echo "set ike gateway ikev2 \"swan\" peer-id \"east.example\""
        else
            echo "set ike gateway ikev2 \"swan\" address 203.0.113.2 outgoing-interface \"ethernet0/2\" preshare \"$PSK\" proposal \"$p1\""
        fi
        echo "set vpn \"vpn1\" gateway \"swan\" replay tunnel idletime 0 proposal \"$p2\""
        echo "set vpn \"vpn1\" id 0x1 bind interface tunnel.1"
        echo "set vpn \"vpn1\" proxy-id check"
        for p in $PAIRS; do
            echo "set vpn \"vpn1\" proxy-id local-ip 10.1.${p:0:1}.0/24 remote-ip 10.2.${p:1:1}.0/24 any"
        done
        echo "set vpn \"vpn1\" proxy-id local-ip 10.1.1.0/24 remote-ip 10.2.3.0/24 HTTP"
        echo "set route 10.2.1.0/24 interface tunnel.1"
        echo "set route 10.2.2.0/24 interface tunnel.1"
        echo "set route 10.2.3.0/24 interface tunnel.1"
    } >"$WORK/gw1.conf"
    chmod 600 "$WORK/gw1.conf"
}

# write_swanctl [CHILD_TIMES]: one child per proxy-ID (pXY, pweb), and
# two that are none of esprit's: pwide (a superset of pair 22 alone) and
# pbad (unrelated).
write_swanctl() {
    local p times=${1:-"life_time = 66m"}
    child() { # child NAME LOCAL_TS REMOTE_TS
        cat <<EOC
      $1 { local_ts = $2
            remote_ts = $3
            mode = tunnel
            esp_proposals = aes128gcm16
            $times
            start_action = none }
EOC
    }
    {
        cat <<EOC
connections {
  esprit {
    version = 2
    local_addrs = 203.0.113.2
    remote_addrs = 198.51.100.1
    proposals = aes128-sha1-modp2048
    keyingtries = 1
    ${SWAN_CONN_EXTRA:-}
EOC
        if [ -n "${CERT:-}" ]; then
            cat <<EOC
    local  { auth = pubkey
             certs = $PKI/east-cert.pem
             id = east.example }
    remote { auth = pubkey
             cacerts = $PKI/ca.pem
             id = west.example }
EOC
        else
            cat <<EOC
    local  { auth = psk
             id = 203.0.113.2 }
    remote { auth = psk
             id = 198.51.100.1 }
EOC
        fi
        cat <<EOC
    children {
EOC
        for p in $PAIRS; do child "p$p" "10.2.${p:1:1}.0/24" "10.1.${p:0:1}.0/24"; done
        child pweb "10.2.3.0/24[tcp/80]" "10.1.1.0/24[tcp]"
        child pwide 10.2.2.0/23 10.1.2.0/24
        child pbad 10.2.9.0/24 10.1.1.0/24
        cat <<EOC
    }
  }
}
secrets { ike-esprit { id-a = 198.51.100.1
                       id-b = 203.0.113.2
                       secret = "$PSK" } }
EOC
    } >"$SWAN_DIR/swanctl.conf"
    # swanctl loads private keys from private/ beside its configuration.
    if [ -n "${CERT:-}" ]; then
        mkdir -p "$SWAN_DIR/private"
        cp "$PKI/east-key.pem" "$SWAN_DIR/private/"
        # An intermediate CA: strongSwan sends it after its certificate.
        if [ -e "$PKI/im.pem" ]; then
            mkdir -p "$SWAN_DIR/x509ca"
            cp "$PKI/im.pem" "$SWAN_DIR/x509ca/"
        fi
    fi
}

# http_get FROM: a TCP connection from FROM to $WEB port 80 and an HTTP
# GET over it, answered with 200 within 8 s (the SYN may be the packet
# that was held while IKE ran).
http_get() {
    nsx "$1" python3 - "$WEB" >"$RUN/http-$1.out" 2>&1 <<'EOP'
import socket, sys, time
t = time.monotonic()
s = socket.create_connection((sys.argv[1], 80), timeout=8)
c = time.monotonic() - t
s.sendall(b"GET / HTTP/1.0\r\n\r\n")
data = b""
while True:
    b = s.recv(4096)
    if not b:
        break
    data += b
print("connected in %.0f ms, reply %r" % (c * 1000, data.split(b"\r\n")[0]))
sys.exit(0 if data.startswith(b"HTTP/1.0 200") else 1)
EOP
    local rc=$?
    log "    $(cat "$RUN/http-$1.out" | tail -1)"
    return $rc
}
swan_initiate() { # swan_initiate CHILD
    swan_ctl --initiate --child "$1" --timeout 15 >"$RUN/initiate-$1.log" 2>&1 ||
        { log "    swanctl --initiate --child $1 failed"; tail -5 "$RUN/initiate-$1.log" >&2; return 1; }
}
stop_capture() {
    kill "${PID[tcpdump]}" 2>/dev/null
    wait "${PID[tcpdump]}" 2>/dev/null
    unset 'PID[tcpdump]'
    cp "$RUN/wan.pcap" "$WORK/pcaps/$(basename "$RUN").pcap"
}

# bring_up RUN_NAME [P2_LIFE P1_LIFE [SWAN_CHILD_TIMES]]: the topology,
# strongSwan on gw2, fastpathd + controld on gw1, a capture on the WAN.
bring_up() {
    RUN=$WORK/$1
    mkdir -p "$RUN" "$WORK/pcaps"
    topo_up "e2$$"
    # gw2 is a plain Linux router with strongSwan: its kernel forwards.
    nsx gw2 sysctl -qw net.ipv4.ip_forward=1
    nsx gw2 sysctl -qw net.ipv4.conf.all.rp_filter=0
    # The HTTP proxy-ID's far end: 10.2.3.0/24 on h21's LAN.
    nsx gw2 ip addr add 10.2.3.1/24 dev lan1
    nsx h21 ip addr add "$WEB/24" dev eth0
    # (Not `python3 -m http.server`: its bind looks the host's name up,
    # 10 s of DNS timeouts in a namespace without a resolver.)
    nsx_bg h21 python3 -u -c '
import http.server, socketserver, sys
class Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"esprit interop\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
socketserver.TCPServer.allow_reuse_address = True
socketserver.TCPServer((sys.argv[1], 80), Hello).serve_forever()
' "$WEB" >"$RUN/httpd.log" 2>&1
    PID[httpd]=$!
    local _
    for _ in $(seq 100); do nsx h21 ss -Hltn "src $WEB:80" | grep -q LISTEN && break; sleep 0.1; done
    nsx h21 ss -Hltn "src $WEB:80" | grep -q LISTEN || { cat "$RUN/httpd.log" >&2; die "the HTTP server on $WEB did not start"; }
    swan_start "$TOPO-gw2" "$RUN/swan" || die "charon did not start"
    write_swanctl "${4:-}"
    swan_ctl --load-all --clear --noprompt --file "$SWAN_DIR/swanctl.conf" >"$RUN/swan-load.log" 2>&1 ||
        { cat "$RUN/swan-load.log" >&2; die "swanctl --load-all failed"; }

    write_gw1_config "${2:-}" "${3:-}"
    check "$1: controld --check accepts the IKEv2 configuration" "$BIN/controld" --check "$WORK/gw1.conf"
    nsx_bg gw1 "$BIN/fastpathd" --port lan1 --port lan2 --port wan0 --xdp-mode "${XDP_MODE:-driver}" \
        --socket "$RUN/fp.sock" >"$RUN/fp.log" 2>&1
    PID[fp]=$!
    wait_socket "$RUN/fp.sock" "$RUN/fp.log" "fastpathd"
    nsx_bg gw1 "$BIN/controld" --config "$WORK/gw1.conf" --fastpath "$RUN/fp.sock" \
        --socket "$RUN/cd.sock" --state-dir "$RUN/state" >"$RUN/cd.log" 2>&1
    PID[cd]=$!
    wait_socket "$RUN/cd.sock" "$RUN/cd.log" "controld"
    log "    controld started (its log's time 0)"
    # The first packets must find fastpathd programmed (else: no-route).
    for _ in $(seq 100); do grep -q "fastpathd: set-routes" "$RUN/cd.log" && break; sleep 0.1; done
    grep -q "fastpathd: set-routes" "$RUN/cd.log" || { cat "$RUN/cd.log" >&2; die "controld did not program fastpathd"; }
    topo_arp_warm
    nsx gw2 ping -c 1 -W 2 198.51.100.1 >/dev/null 2>&1 || true
    nsx h21 ping -c 1 -W 2 10.2.1.1 -I "$WEB" >/dev/null 2>&1 || true
    nsx_bg inet tcpdump -n -i i1 -w "$RUN/wan.pcap" -U 'udp port 500 or udp port 4500 or esp or (ip[6:2] & 0x3fff != 0)' >/dev/null 2>&1
    PID[tcpdump]=$!
    for _ in $(seq 50); do [ -s "$RUN/wan.pcap" ] && break; sleep 0.1; done
}

tear_down() {
    lab_stop_pids
    swan_stop
    topo_down
}

esprit_initiates() {
    local p
    log "=== esprit initiates on demand"
    bring_up ondemand
    check "ondemand: pair 11: the first ping h11 -> 10.2.1.10 is answered (IKE_SA_INIT + IKE_AUTH)" \
        first_ping h11 10.2.1.10
    check "ondemand: ... the IKE SA and the child are logged up" \
        bash -c "grep -q 'gateway swan: IKE SA up' '$RUN/cd.log' && grep -q 'child SA up (we initiated' '$RUN/cd.log'"
    check "ondemand: ... strongSwan's faked NAT detection moved the IKE SA to 4500, ESP in UDP 4500" \
        bash -c "grep -q 'IKE SA up (we initiated, .*198.51.100.1:4500 <-> 203.0.113.2:4500)' '$RUN/cd.log' &&
                 grep -q 'child SA up (we initiated, .*ESP in UDP 4500/4500' '$RUN/cd.log'"
    for p in 12 21 22; do
        check "ondemand: pair $p: the first ping h1${p:0:1} -> 10.2.${p:1:1}.10 is answered (CREATE_CHILD_SA)" \
            first_ping "h1${p:0:1}" "10.2.${p:1:1}.10"
    done
    check "ondemand: the HTTP proxy-ID on demand: a TCP connection h11 -> $WEB:80 is answered" http_get h11
    check "ondemand: esprit get sa shows 10 SAs A/U" active 10
    check "ondemand: strongSwan has 5 CHILD_SAs INSTALLED" swan_installed 5
    check "ondemand: strongSwan's HTTP child carries tcp/80 (10.2.3.0/24[tcp/http] === 10.1.1.0/24[tcp])" \
        bash -c "STRONGSWAN_CONF='$SWAN_DIR/strongswan.conf' swanctl --list-sas | grep -q '10.2.3.0/24\[tcp/http\]'"
    for p in $PAIRS; do
        check "ondemand: pair $p: 10 pings h1${p:0:1} -> 10.2.${p:1:1}.10" ping_ok "h1${p:0:1}" "10.2.${p:1:1}.10" 10
    done
    check "ondemand: HTTP again (1/2)" http_get h11
    check "ondemand: HTTP again (2/2)" http_get h11
    wait_capture 90 || log "    the capture holds fewer than 90 ESP packets after 10 s"
    stop_capture
    check "ondemand: each pair on its own SPI pair on the WAN (10 SPIs, as get sa)" spis_each_pair 10
    esprit get sa | sed 's/^/    /' >&2
    grep -E "IKE SA|child SA|not configured|failed|error" "$RUN/cd.log" | sed 's/^/    /' >&2 || true
    tear_down
}

# swan_child_ts CHILD: strongSwan's selectors of its installed CHILD,
# "LOCAL REMOTE".
swan_child_ts() {
    swan_ctl --list-sas 2>/dev/null | awk -v c="  $1:" '
        index($0, c) == 1 { on = 1; next }
        on && $1 == "local" { l = $2 }
        on && $1 == "remote" { print l, $2; exit }'
}
# peer_child_up PROXY_ID: controld logged the child of PROXY_ID (its words)
# up as the responder.
peer_child_up() { grep -q "proxy-id $1: child SA up (the peer initiated" "$RUN/cd.log"; }

swan_initiates() {
    local p
    log "=== strongSwan initiates, esprit responds"
    bring_up responder
    for p in 11 12 21; do
        swan_initiate "p$p"
        check "responder: strongSwan's child p$p is taken (esprit logs it up, the peer initiated)" \
            peer_child_up "local-ip 10.1.${p:0:1}.0/24 remote-ip 10.2.${p:1:1}.0/24 ANY"
    done
    swan_initiate pweb
    check "responder: strongSwan's HTTP child (tcp/80) is taken as proxy-id ... HTTP" \
        peer_child_up "local-ip 10.1.1.0/24 remote-ip 10.2.3.0/24 HTTP"
    # 10.2.2.0/23 <-> 10.1.2.0/24 holds one proxy-ID, pair 22: narrowed to it.
    swan_initiate pwide
    check "responder: a superset of one proxy-ID (10.2.2.0/23 <-> 10.1.2.0/24) is narrowed: esprit installs pair 22" \
        peer_child_up "local-ip 10.1.2.0/24 remote-ip 10.2.2.0/24 ANY"
    local ts
    ts=$(swan_child_ts pwide)
    log "    strongSwan's pwide: local $ts (remote)"
    check "responder: ... and strongSwan lists the narrowed selectors (10.2.2.0/24 === 10.1.2.0/24)" \
        test "$ts" = "10.2.2.0/24 10.1.2.0/24"
    swan_ctl --initiate --child pbad --timeout 10 >"$RUN/initiate-pbad.log" 2>&1
    check "responder: a child with unrelated selectors is refused: strongSwan is told TS_UNACCEPTABLE" \
        grep -q "received TS_UNACCEPTABLE notify" "$RUN/swan/charon.log"
    check "responder: ... and esprit's log says so in words" \
        grep -Eq "IKEv2 exchange [0-9a-f]{8}: the peer asked for proxy-id TSi \[10\.2\.9\.0-10\.2\.9\.255 proto 0 ports 0-65535\] TSr \[10\.1\.1\.0-10\.1\.1\.255 .*covers none of the configured proxy-IDs: .*, which is not configured: refused with TS_UNACCEPTABLE" "$RUN/cd.log"
    check "responder: esprit get sa shows 10 SAs A/U" active 10
    check "responder: strongSwan has 5 CHILD_SAs INSTALLED" swan_installed 5
    for p in $PAIRS; do
        check "responder: pair $p: 10 pings h1${p:0:1} -> 10.2.${p:1:1}.10" ping_ok "h1${p:0:1}" "10.2.${p:1:1}.10" 10
    done
    check "responder: HTTP h11 -> $WEB:80 (1/3)" http_get h11
    check "responder: HTTP h11 -> $WEB:80 (2/3)" http_get h11
    check "responder: HTTP h11 -> $WEB:80 (3/3)" http_get h11
    check "responder: no acquire: every pair was strongSwan's" bash -c "! grep -q 'acquire:' '$RUN/cd.log'"
    wait_capture 90 || log "    the capture holds fewer than 90 ESP packets after 10 s"
    stop_capture
    check "responder: each pair on its own SPI pair on the WAN (10 SPIs, as get sa)" spis_each_pair 10
    grep -E "IKE SA|child SA|not configured|failed|error" "$RUN/cd.log" | sed 's/^/    /' >&2 || true
    tear_down
}

# swan_spis: the SPIs of strongSwan's INSTALLED children, sorted, on one
# line.
swan_spis() {
    swan_ctl --list-sas 2>/dev/null | awk '
        /^  [^ ].*: #[0-9]+, / { on = /INSTALLED/; next }
        on && ($1 == "in" || $1 == "out") { sub(",", "", $2); print $2 }' | sort | tr '\n' ' '
}
# steady_pings SECONDS: pings every 20 ms h11 -> 10.2.1.10 and
# h12 -> 10.2.2.10 for SECONDS, in the background; steady_done checks
# that every one was answered.
steady_pings() {
    local n=$(($1 * 50))
    # -D -O: each reply, and each request unanswered 1 s on, with its
    # time, so that a loss can be set against the logs.
    nsx_bg h11 ping -D -O -i 0.02 -c "$n" -w $(($1 + 15)) 10.2.1.10 >"$RUN/steady-11.out" 2>&1
    PID[steady11]=$!
    nsx_bg h12 ping -D -O -i 0.02 -c "$n" -w $(($1 + 15)) 10.2.2.10 >"$RUN/steady-22.out" 2>&1
    PID[steady22]=$!
}
steady_done() {
    local p ok=0
    for p in steady11 steady22; do
        wait "${PID[$p]}" || true
        unset "PID[$p]"
    done
    for p in 11 22; do
        log "    pair $p: $(grep -o '[0-9]* packets transmitted.*loss' "$RUN/steady-$p.out")"
        grep -q " 0% packet loss" "$RUN/steady-$p.out" && continue
        ok=1
        grep "no answer yet" "$RUN/steady-$p.out" | head -5 | while read -r t rest; do
            log "      at $(date -u -d "@${t//[][]/}" +%H:%M:%S.%N | cut -c1-12): $rest"
        done
    done
    return $ok
}
count_lines() { grep -c "$1" "$RUN/cd.log" || true; }
no_esp_drops() {
    local drops
    drops=$(esprit get counter | grep -E 'esp-unknown-spi|replay-')
    [ -z "$drops" ] && return 0
    log "    $drops"
    return 1
}
# all_new BEFORE AFTER: AFTER is not empty and holds none of BEFORE.
all_new() {
    local s
    [ -n "$2" ] || return 1
    for s in $1; do case " $2 " in *" $s "*) return 1 ;; esac; done
}

rekeys() { # rekeys esprit|strongswan
    local who=$1 before swan_before after swan_after n
    if [ "$who" = esprit ]; then
        log "=== rekeys under traffic: esprit rekeys (children 24 s, IKE SA 40 s)"
        bring_up rekey-esprit 24 40 "life_time = 10m
            rekey_time = 9m"
        check "rekey/esprit: pair 11 up on demand" first_ping h11 10.2.1.10
        check "rekey/esprit: pair 22 up on demand" first_ping h12 10.2.2.10
    else
        log "=== rekeys under traffic: strongSwan rekeys (children rekey_time 15 s, life_time 40 s)"
        bring_up rekey-swan "" "" "life_time = 40s
            rekey_time = 15s
            rand_time = 0s"
        swan_initiate p11
        swan_initiate p22
    fi
    check "rekey/$who: 4 SAs A/U" active 4
    before=$(active_spis)
    swan_before=$(swan_spis)
    steady_pings 42
    check "rekey/$who: 2 x 2100 pings every 20 ms across the rekeys, none lost" steady_done
    check "rekey/$who: fastpathd dropped no ESP for an unknown SPI, nor as a replay" no_esp_drops
    after=$(active_spis)
    swan_after=$(swan_spis)
    log "    esprit's SPIs before: $before"
    log "    esprit's SPIs after:  $after"
    log "    strongSwan's SPIs before: $swan_before"
    log "    strongSwan's SPIs after:  $swan_after"
    check "rekey/$who: every SPI esprit shows is new" all_new "$before" "$after"
    check "rekey/$who: every SPI strongSwan shows INSTALLED is new" all_new "$swan_before" "$swan_after"
    check "rekey/$who: both sides show the same SPIs" test "$after" = "$swan_after"
    n=$(count_lines "child SA down (.*): replaced by a rekey")
    log "    $n children replaced by a rekey"
    if [ "$who" = esprit ]; then
        check "rekey/esprit: both children rekeyed by esprit (make-before-break, the old pair replaced)" \
            bash -c "[ $n -ge 2 ] && [ \$(grep -c 'child SA up (we initiated' '$RUN/cd.log') -ge 4 ]"
        check "rekey/esprit: strongSwan saw esprit's rekeys (CREATE_CHILD_SA with REKEY_SA)" \
            grep -q "parsed CREATE_CHILD_SA request .*N(REKEY_SA)" "$RUN/swan/charon.log"
        check "rekey/esprit: the IKE SA was rekeyed before its 40 s, the previous one deleted" \
            grep -q "IKE SA rekeyed: the previous one is deleted" "$RUN/cd.log"
        check "rekey/esprit: ... and strongSwan took the new IKE SA" grep -q "IKE_SA esprit\[[0-9]*\] rekeyed" "$RUN/swan/charon.log"
    else
        check "rekey/strongswan: strongSwan rekeyed both children at least twice, esprit replaced each old pair" \
            test "$n" -ge 4
        check "rekey/strongswan: esprit logged the new children as the peer's" \
            bash -c "[ \$(grep -c 'child SA up (the peer initiated' '$RUN/cd.log') -ge 6 ]"
    fi
    check "rekey/$who: strongSwan still has the 2 children INSTALLED" swan_installed 2
    grep -E "rekey|IKE SA|child SA (up|down)|failed|error" "$RUN/cd.log" | cut -c1-220 | sed 's/^/    /' >&2 || true
    stop_capture
    tear_down
}

dpd_scenario() {
    log "=== dead peer detection"
    bring_up dpd
    echo 'set ike gateway ikev2 "swan" dpd-liveness interval 2 retry 3' >>"$WORK/gw1.conf"
    esprit exec reload >/dev/null || { cat "$RUN/cd.log" >&2; die "exec reload with dpd-liveness failed"; }
    check "dpd: pair 11 up on demand" first_ping h11 10.2.1.10
    local _ ok=1 t0
    for _ in $(seq 100); do
        grep -q "parsed INFORMATIONAL request [0-9]* \[ \]" "$RUN/swan/charon.log" &&
            grep -q "generating INFORMATIONAL response [0-9]* \[ \]" "$RUN/swan/charon.log" && ok=0 && break
        sleep 0.1
    done
    check "dpd: strongSwan answers esprit's liveness checks (empty INFORMATIONAL)" test "$ok" = 0
    # Gone without a word (kill -9: no Delete), as a crashed or cut-off peer.
    t0=$SECONDS
    kill -9 "$SWAN_PID" 2>/dev/null
    SWAN_PID=""
    ok=1
    for _ in $(seq 400); do
        grep -q "dead peer detection: no answer, peer declared dead" "$RUN/cd.log" && ok=0 && break
        sleep 0.1
    done
    t0=$((SECONDS - t0))
    log "    peer declared dead $t0 s after strongSwan stopped"
    check "dpd: strongSwan gone: esprit declares the peer dead (3 checks 2 s apart: within 12 s)" \
        test "$ok" = 0 -a "$t0" -le 12
    check "dpd: ... and removes the gateway's SAs" active 0
    swan_start "$TOPO-gw2" "$RUN/swan2" || die "charon did not start again"
    cp "$RUN/swan/swanctl.conf" "$SWAN_DIR/swanctl.conf"
    swan_ctl --load-all --clear --noprompt --file "$SWAN_DIR/swanctl.conf" >"$RUN/swan-load2.log" 2>&1 ||
        { cat "$RUN/swan-load2.log" >&2; die "swanctl --load-all failed"; }
    check "dpd: strongSwan back: the next packet negotiates again (first ping answered)" first_ping h11 10.2.1.10
    check "dpd: ... a second IKE SA up" test "$(count_lines 'gateway swan: IKE SA up')" = 2
    grep -E "IKE SA|child SA|dead peer|failed|error" "$RUN/cd.log" | cut -c1-220 | sed 's/^/    /' >&2 || true
    stop_capture
    tear_down
}

# make_pki rsa|ecdsa: with strongSwan's pki, a CA and two end-entity
# certificates of that key type, SAN dNSName west.example (esprit) and
# east.example (strongSwan), in $PKI; esprit's key as PKCS#8.
make_pki() {
    local t=$1 size=2048 n
    [ "$t" = ecdsa ] && size=256
    PKI=$WORK/pki-$t
    mkdir -p "$PKI"
    {
        pki --gen --type "$t" --size "$size" --outform pem >"$PKI/ca-key.pem" &&
            pki --self --ca --lifetime 30 --in "$PKI/ca-key.pem" --type "$t" \
                --dn "C=XX, O=esprit interop, CN=lab CA $t" --outform pem >"$PKI/ca.pem" &&
            for n in west east; do
                pki --gen --type "$t" --size "$size" --outform pem >"$PKI/$n-key.pem" &&
                    pki --pub --in "$PKI/$n-key.pem" --type "$t" |
                    pki --issue --lifetime 30 --cacert "$PKI/ca.pem" --cakey "$PKI/ca-key.pem" \
                        --dn "C=XX, O=esprit interop, CN=$n.example" --san "$n.example" --outform pem \
                        >"$PKI/$n-cert.pem" || return 1
            done &&
            openssl pkcs8 -topk8 -nocrypt -in "$PKI/west-key.pem" -out "$PKI/west-key8.pem"
    } 2>"$PKI/pki.log"
}

cert_scenario() { # cert_scenario rsa|ecdsa
    local t=$1 alg
    log "=== certificates: $t signatures (RFC 7427), pki-made CA and certificates"
    check "cert/$t: pki makes the CA and both certificates" make_pki "$t"
    CERT=$t bring_up "cert-$t"
    check "cert/$t: esprit initiates: the first ping h11 -> 10.2.1.10 is answered (IKE_AUTH with certificates)" \
        first_ping h11 10.2.1.10
    case $t in rsa) alg="RSA_EMSA_PKCS1_SHA2_256" ;; ecdsa) alg="ECDSA_WITH_SHA256_DER" ;; esac
    check "cert/$t: strongSwan verified esprit's signature as west.example ($alg) through the lab CA" \
        bash -c "grep -q \"authentication of 'west.example' with $alg successful\" '$RUN/swan/charon.log' &&
                 grep -q 'reached self-signed root ca with a path length of 0' '$RUN/swan/charon.log'"
    check "cert/$t: esprit took east.example's certificate and signature (IKE SA up)" \
        grep -q "gateway swan: IKE SA up (we initiated" "$RUN/cd.log"
    check "cert/$t: pair 11: 10 pings" ping_ok h11 10.2.1.10 10
    # Then strongSwan's turn: a new IKE SA of its own, by certificate too.
    swan_ctl --terminate --ike esprit --timeout 10 >"$RUN/terminate.log" 2>&1
    check "cert/$t: strongSwan closed the IKE SA: esprit has no SA left" active 0
    swan_initiate p22
    check "cert/$t: strongSwan initiates with its certificate: esprit takes it (IKE SA up, the peer initiated)" \
        grep -q "gateway swan: IKE SA up (the peer initiated" "$RUN/cd.log"
    check "cert/$t: pair 22: 10 pings" ping_ok h12 10.2.2.10 10
    # A peer-id its certificate does not hold: refused, and said why.
    esprit set ike gateway ikev2 swan peer-id other.example >"$RUN/set-peer-id.log" 2>&1 ||
        cat "$RUN/set-peer-id.log" >&2
    swan_ctl --initiate --child p12 --timeout 10 >"$RUN/initiate-wrong-id.log" 2>&1
    check "cert/$t: with peer-id other.example, strongSwan's east.example is refused (AUTHENTICATION_FAILED)" \
        grep -q "received AUTHENTICATION_FAILED notify error" "$RUN/swan/charon.log"
    check "cert/$t: ... and esprit's log says why" \
        grep -q "gateway swan: IKE_AUTH: authentication failed: .*identity is not the one configured" "$RUN/cd.log"
    grep -E "IKE SA|child SA|certificate|AUTH|failed|error" "$RUN/cd.log" | cut -c1-220 | sed 's/^/    /' >&2 || true
    stop_capture
    tear_down
}

# make_pki_chain: a CA (RSA 2048), an intermediate under it (RSA 2048),
# and under that the two end entities with RSA 4096 keys, in $PKI;
# esprit's certificate file holds its certificate then the intermediate
# (sent in that order), esprit's key as PKCS#8.
make_pki_chain() {
    local n
    PKI=$WORK/pki-chain
    mkdir -p "$PKI"
    {
        pki --gen --type rsa --size 2048 --outform pem >"$PKI/ca-key.pem" &&
            pki --self --ca --lifetime 30 --in "$PKI/ca-key.pem" --type rsa \
                --dn "C=XX, O=esprit interop, CN=lab root CA" --outform pem >"$PKI/ca.pem" &&
            pki --gen --type rsa --size 2048 --outform pem >"$PKI/im-key.pem" &&
            pki --pub --in "$PKI/im-key.pem" --type rsa |
            pki --issue --lifetime 30 --ca --cacert "$PKI/ca.pem" --cakey "$PKI/ca-key.pem" \
                --dn "C=XX, O=esprit interop, CN=lab intermediate CA" --outform pem >"$PKI/im.pem" &&
            for n in west east; do
                pki --gen --type rsa --size 4096 --outform pem >"$PKI/$n-key.pem" &&
                    pki --pub --in "$PKI/$n-key.pem" --type rsa |
                    pki --issue --lifetime 30 --cacert "$PKI/im.pem" --cakey "$PKI/im-key.pem" \
                        --dn "C=XX, O=esprit interop, CN=$n.example" --san "$n.example" --outform pem \
                        >"$PKI/$n-leaf.pem" || return 1
            done &&
            cat "$PKI/west-leaf.pem" "$PKI/im.pem" >"$PKI/west-cert.pem" &&
            cp "$PKI/east-leaf.pem" "$PKI/east-cert.pem" &&
            openssl pkcs8 -topk8 -nocrypt -in "$PKI/west-key.pem" -out "$PKI/west-key8.pem"
    } 2>"$PKI/pki.log"
}

# no_ip_fragments: inet's rule dropped no IPv4 fragment, and the capture
# holds none.
no_ip_fragments() {
    local dropped frags
    dropped=$(nsx inet nft list chain ip esprit_frag pre | awk '/drop/ { for (i = 1; i < NF; i++) if ($i == "packets") print $(i + 1) }')
    frags=$(tshark -r "$RUN/wan.pcap" -Y 'ip.flags.mf == 1 || ip.frag_offset > 0' 2>/dev/null | wc -l)
    log "    IPv4 fragments: $dropped dropped by inet, $frags in the capture"
    [ "$dropped" = 0 ] && [ "$frags" = 0 ]
}

# no_fragment_drops: `esprit get counter` shows no ikev2-fragment-*
# discard (the text lists the reasons counted).
no_fragment_drops() {
    local out
    out=$(esprit get counter) || return 1
    grep -q "IKE discards by reason" <<<"$out" || return 1
    ! grep -E "ikev2-fragment-[a-z-]+ +[1-9]" <<<"$out"
}

# skf_from SRC: the capture holds IKEv2 Encrypted Fragments (payload 53)
# sent by SRC, every fragment datagram within 1280 bytes of IP.
skf_from() {
    local n big
    n=$(tshark -r "$RUN/wan.pcap" -Y "ip.src == $1 && isakmp.nextpayload == 53" 2>/dev/null | wc -l)
    big=$(tshark -r "$RUN/wan.pcap" -Y "ip.src == $1 && isakmp.nextpayload == 53 && ip.len > 1280" 2>/dev/null | wc -l)
    log "    $1: $n datagrams with Encrypted Fragments, $big over 1280 bytes"
    [ "$n" -ge 2 ] && [ "$big" = 0 ]
}

frag_scenario() {
    log "=== IKE fragmentation (RFC 7383): a certificate chain over a path without IP fragments"
    check "frag: pki makes a CA, an intermediate and two RSA 4096 end entities" make_pki_chain
    CERT=rsa bring_up frag
    # inet drops every IPv4 fragment, before any reassembly (defrag hooks
    # at -400).
    nsx inet nft add table ip esprit_frag
    nsx inet nft add chain ip esprit_frag pre '{ type filter hook prerouting priority -450; }'
    nsx inet nft add rule ip esprit_frag pre 'ip frag-off & 0x3fff != 0 counter drop'
    check "frag: esprit initiates: the first ping h11 -> 10.2.1.10 is answered (IKE_AUTH in fragments)" \
        first_ping h11 10.2.1.10
    check "frag: strongSwan reassembled esprit's fragmented IKE_AUTH and verified west.example through the intermediate" \
        bash -c "grep -q 'reassembled fragmented IKE message' '$RUN/swan/charon.log' &&
                 grep -q \"authentication of 'west.example' with RSA_EMSA_PKCS1_SHA2_256 successful\" '$RUN/swan/charon.log'"
    check "frag: esprit took east.example's chain (IKE SA up)" \
        grep -q "gateway swan: IKE SA up (we initiated" "$RUN/cd.log"
    check "frag: pair 11: 10 pings" ping_ok h11 10.2.1.10 10
    swan_ctl --terminate --ike esprit --timeout 10 >"$RUN/terminate.log" 2>&1
    check "frag: strongSwan closed the IKE SA: esprit has no SA left" active 0
    swan_initiate p22
    check "frag: strongSwan initiates with its chain in fragments: esprit takes it (IKE SA up, the peer initiated)" \
        grep -q "gateway swan: IKE SA up (the peer initiated" "$RUN/cd.log"
    check "frag: pair 22: 10 pings" ping_ok h12 10.2.2.10 10
    check "frag: no IKEv2 fragment dropped by esprit (get counter)" no_fragment_drops
    stop_capture
    check "frag: Encrypted Fragments from esprit on the WAN, each within 1280 bytes" skf_from 198.51.100.1
    check "frag: Encrypted Fragments from strongSwan on the WAN, each within 1280 bytes" skf_from 203.0.113.2
    check "frag: no IPv4 fragment on the WAN, none dropped by inet" no_ip_fragments
    grep -E "IKE SA|child SA|certificate|AUTH|failed|error" "$RUN/cd.log" | cut -c1-220 | sed 's/^/    /' >&2 || true
    tear_down
}

# dissect PCAP: tshark reads the whole capture: IKEv2 (ISAKMP version 2.0)
# and ESP (in UDP, RFC 3948) are there, nothing is "Malformed".
dissect() {
    local out n
    out=$(tshark -V -r "$1" 2>/dev/null) || return 1
    n=$(grep -c "Malformed" <<<"$out")
    log "    $(basename "$1"): $(tshark -r "$1" 2>/dev/null | wc -l) frames, $(grep -c "^    Version: 2.0" <<<"$out") IKEv2, $(grep -c "^Encapsulating Security Payload" <<<"$out") ESP, $n Malformed"
    [ "$n" = 0 ] && grep -q "^    Version: 2.0" <<<"$out" && grep -q "^Encapsulating Security Payload" <<<"$out"
}

for s in $SCENARIOS; do
    case $s in
    esprit) esprit_initiates ;;
    strongswan) swan_initiates ;;
    rekey)
        rekeys esprit
        rekeys strongswan
        ;;
    dpd) dpd_scenario ;;
    cert)
        cert_scenario rsa
        cert_scenario ecdsa
        ;;
    frag) frag_scenario ;;
    *) die "unknown scenario $s" ;;
    esac
done

log "=== the WAN captures, dissected"
for f in "$WORK"/pcaps/*.pcap; do
    [ -e "$f" ] || continue
    check "tshark: $(basename "$f" .pcap): IKEv2 and ESP dissected, nothing Malformed" dissect "$f"
done

log "runtime $(($(date +%s) - START)) s"
DONE=1
summary
