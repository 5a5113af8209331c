#!/usr/bin/env bash
# IKE under attack: esprit (fastpathd + controld) on gw1 and strongSwan
# (IKEv1, Main Mode, PSK) on gw2 in the seed topology (scripts/lib/topo.sh);
# the attacker is scapy (scripts/tests/attack_ike.py, Debian's python3) on
# the "inet" router between them, spoofing any source it likes.
# strongSwan initiates; esprit responds.
#
#  1. a spoofed first message from strongSwan's address after esprit's
#     Main Mode message 2 and before strongSwan's message 3 (held by an
#     nftables rule on the router and released once the spoof is handled),
#     with a new initiator cookie and with strongSwan's own: message 3 is
#     answered and Main Mode completes; the first spoof gets its own
#     message 2, the second is refused (ike_ingest_dropped rejected +1);
#  2. (a) 1,000 spoofed first messages a second from strongSwan's own
#     address while it negotiates: it completes, the spoofs displace only
#     each other; (b) a flood of spoofed Main Mode first messages from 1,000 source
#     addresses as fast as a raw socket takes them, plus 1,000 a second from
#     strongSwan's own address (each costs esprit a half-open entry),
#     while strongSwan negotiates: its Main Mode and Quick Mode complete
#     and the pair pings; controld's VmRSS and VmHWM stay under
#     $MEM_BOUND_KB (64 MiB; figures logged); half-open entries displaced
#     are counted, not logged (under 1,000 log lines for the whole flood).
#     Without bounded ingest the queue in front of controld is
#     unbounded: these hold while controld keeps up (it does here, about
#     200,000 datagrams a second offered, most dropped by the kernel).
#  3. an Aggressive Mode request to this Main Mode gateway: not one
#     datagram back (captured), counted as aggressive-not-configured;
#  4. a NAT-T port hijack (an Informational with the ISAKMP SA's cookies
#     from strongSwan's address, port 4501): the peer stays at 4500 in
#     `get ike cookies`, ESP keeps flowing to 4500 and none to 4501;
#  5. strongSwan's Quick Mode message 1 and its R-U-THERE-ACK, replayed:
#     no answer, no new SA, counted (replayed-message-id 1, replayed-message
#     1 in `esprit get counter --json`).
#
# Ends with "N passed, M failed". Needs root. Bounded by $ESPRIT_TIMEOUT
# seconds (default 300). Cleans up (processes by PID, namespaces) on any
# exit. ESPRIT_KEEP=1 keeps the logs. Run it as
#   flock /tmp/esprit-netns.lock bash scripts/tests/attacks-ike.sh
set -uo pipefail
ESPRIT_SCRIPT=attacks-ike
source "$(dirname "$0")/../lib/common.sh"
source "$ESPRIT_ROOT/scripts/lib/testlib.sh"
source "$ESPRIT_ROOT/scripts/lib/topo.sh"
source "$ESPRIT_ROOT/scripts/lib/strongswan.sh"
need_root

LIMIT=${ESPRIT_TIMEOUT:-300}
PSK="esprit-attacks-psk-0123456789"
FLOOD_SECS=${FLOOD_SECS:-15}
MEM_BOUND_KB=${MEM_BOUND_KB:-65536}
PY=/usr/bin/python3
ATTACK="$ESPRIT_ROOT/scripts/tests/attack_ike.py"

swan_packages
apt_install "${ESPRIT_TEST_PACKAGES[@]}" nftables
esprit_bin_dir

lab_begin attacks "$LIMIT"

esprit() { "$BIN/esprit" --socket "$WORK/cd.sock" "$@"; }
# discard REASON: esprit's count of IKE datagrams discarded for REASON.
discard() {
    esprit get counter --json | $PY -c 'import json,sys; print(json.load(sys.stdin)["ike_discards"][sys.argv[1]])' "$1"
}
attack() { nsx inet "$PY" "$ATTACK" "$@"; }
mem() { awk '/^(VmRSS|VmHWM):/ { printf "%s %s kB ", $1, $2 }' "/proc/${PID[cd]}/status"; }
hwm_kb() { awk '/^VmHWM:/ { print $2 }' "/proc/${PID[cd]}/status"; }
swan_installed() { # swan_installed N: strongSwan lists N CHILD_SAs INSTALLED within 10 s
    local _
    for _ in $(seq 100); do
        [ "$(swan_ctl --list-sas 2>/dev/null | grep -c INSTALLED)" = "$1" ] && return 0
        sleep 0.1
    done
    swan_ctl --list-sas >&2
    return 1
}
sa_count() { esprit get sa 2>/dev/null | grep -c ' A/U '; }

# --- the lab ---
topo_up "ea$$"
nsx gw2 sysctl -qw net.ipv4.ip_forward=1
nsx gw2 sysctl -qw net.ipv4.conf.all.rp_filter=0
nsx inet sysctl -qw net.ipv4.conf.all.rp_filter=0
swan_start "$TOPO-gw2" "$WORK/swan" || die "charon did not start"
cat >"$SWAN_DIR/swanctl.conf" <<EOC
connections {
  esprit {
    version = 1
    local_addrs = 203.0.113.2
    remote_addrs = 198.51.100.1
    proposals = aes128-sha1-modp2048
    aggressive = no
    keyingtries = 1
    local  { auth = psk
             id = 203.0.113.2 }
    remote { auth = psk
             id = 198.51.100.1 }
    children {
      p11 { local_ts = 10.2.1.0/24
            remote_ts = 10.1.1.0/24
            mode = tunnel
            esp_proposals = aes128gcm16
            start_action = none }
      p12 { local_ts = 10.2.2.0/24
            remote_ts = 10.1.2.0/24
            mode = tunnel
            esp_proposals = aes128gcm16
            start_action = none }
    }
  }
}
secrets { ike-esprit { id-a = 198.51.100.1
                       id-b = 203.0.113.2
                       secret = "$PSK" } }
EOC
swan_ctl --load-all --clear --noprompt --file "$SWAN_DIR/swanctl.conf" >"$WORK/swan-load.log" 2>&1 ||
    { cat "$WORK/swan-load.log" >&2; die "swanctl --load-all failed"; }

cat >"$WORK/gw1.conf" <<EOC
set interface ethernet0/1 zone Trust
set interface ethernet0/1 ip 10.1.1.1/24
set interface ethernet0/1 port lan1
set interface ethernet0/3 zone Trust
set interface ethernet0/3 ip 10.1.2.1/24
set interface ethernet0/3 port lan2
set interface ethernet0/2 zone Untrust
set interface ethernet0/2 ip 198.51.100.1/24
set interface ethernet0/2 port wan0
set interface tunnel.1 zone Untrust
set interface tunnel.1 ip unnumbered interface ethernet0/2
set route 0.0.0.0/0 interface ethernet0/2 gateway 198.51.100.254
set ike gateway "swan" address 203.0.113.2 Main outgoing-interface "ethernet0/2" preshare "$PSK" proposal "pre-g14-aes128-sha"
set ike gateway "swan" dpd-liveness interval 2 retry 5
set ike gateway "swan" nat-traversal
set vpn "vpn1" gateway "swan" replay tunnel idletime 0 proposal "nopfs-esp-aes128gcm"
set vpn "vpn1" id 0x1 bind interface tunnel.1
set vpn "vpn1" proxy-id check
set vpn "vpn1" proxy-id local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 any
set vpn "vpn1" proxy-id local-ip 10.1.2.0/24 remote-ip 10.2.2.0/24 any
set route 10.2.1.0/24 interface tunnel.1
set route 10.2.2.0/24 interface tunnel.1
EOC
chmod 600 "$WORK/gw1.conf"
check "controld --check accepts the configuration (no short-key or group-2 warning)" \
    bash -c "'$BIN/controld' --check '$WORK/gw1.conf' 2>'$WORK/check.err' && ! grep -q warning '$WORK/check.err'"
nsx_bg gw1 "$BIN/fastpathd" --port lan1 --port lan2 --port wan0 --xdp-mode "${XDP_MODE:-driver}" \
    --socket "$WORK/fp.sock" >"$WORK/fp.log" 2>&1
PID[fp]=$!
wait_socket "$WORK/fp.sock" "$WORK/fp.log" "fastpathd"
nsx_bg gw1 "$BIN/controld" --config "$WORK/gw1.conf" --fastpath "$WORK/fp.sock" \
    --socket "$WORK/cd.sock" --state-dir "$WORK/state" >"$WORK/cd.log" 2>&1
PID[cd]=$!
wait_socket "$WORK/cd.sock" "$WORK/cd.log" "controld"
topo_arp_warm
nsx gw2 ping -c 1 -W 2 198.51.100.1 >/dev/null 2>&1 || true
# Everything strongSwan sends esprit, for the replays of step 5.
nsx_bg inet tcpdump -n -i i2 --immediate-mode -w "$WORK/swan.pcap" -U 'udp and src host 203.0.113.2 and dst host 198.51.100.1' \
    >/dev/null 2>&1
PID[tcpdump]=$!
for _ in $(seq 50); do [ -s "$WORK/swan.pcap" ] && break; sleep 0.1; done
log "controld before: $(mem)"

# --- 1. a spoofed first message in the middle of a real negotiation ---
# The router holds strongSwan's Main Mode message 3 (first payload KE)
# until the spoof is handled: esprit's message 2 is out, message 3 is not
# in, the one moment a first message could replace the exchange (before
# the half-open bounds it did: message 3 then matched nothing and went
# unanswered, strongSwan retransmitted it in vain). It runs first: the
# floods of step 2 leave a full share of half-open entries from
# strongSwan's address for 30 s, and the spoof's would then displace one
# of them (half-open-limit-source +1): counters that depend on what came
# before.
hold_mm3() {
    nsx inet nft -f - <<EON
table ip esprit_hold {
    chain forward {
        type filter hook forward priority filter; policy accept;
        ip saddr 203.0.113.2 ip daddr 198.51.100.1 udp dport 500 @th,192,8 4 @th,208,8 2 counter drop
    }
}
EON
}
mid() { # mid KIND: strongSwan negotiates with a spoofed first message of KIND in its middle
    local kind=$1 out="$WORK/inject-$1.out" rc _
    swan_ctl --terminate --ike esprit >/dev/null 2>&1
    for _ in $(seq 50); do [ "$(sa_count)" = 0 ] && break; sleep 0.1; done
    hold_mm3 || die "nft: the hold rule was refused"
    rm -f "$WORK/sniffing"
    attack inject-mid i2 i1 198.51.100.1 203.0.113.2 "$kind" "$WORK/sniffing" \
        "$BIN/esprit" --socket "$WORK/cd.sock" >"$out" 2>&1 &
    PID[inject]=$!
    for _ in $(seq 100); do [ -e "$WORK/sniffing" ] && break; sleep 0.1; done
    swan_ctl --initiate --child p11 --timeout 10 >"$WORK/initiate-$kind.log" 2>&1 &
    PID[initiate]=$!
    wait "${PID[inject]}"
    rc=$?
    unset 'PID[inject]'
    check "mid ($kind): strongSwan's message 3 held until the spoof was handled" test "$rc" = 0
    nsx inet nft delete table ip esprit_hold
    while read -r l; do log "    $l"; done <"$out"
}
said() { grep -qx"${3:-}" "$2" "$WORK/inject-$1.out"; } # said KIND LINE [E]: the injector's report has LINE
mid_done() { # mid_done KIND: message 3 answered, Main Mode and Quick Mode complete
    check "mid ($1): strongSwan's message 3 is answered with message 4" \
        grep -q "^message 3: released, answered with message 4" "$WORK/inject-$1.out"
    check "mid ($1): strongSwan's Main Mode and Quick Mode complete (10 s)" swan_installed 1
    wait "${PID[initiate]}" 2>/dev/null
    unset 'PID[initiate]'
}
log "=== 1. a spoofed first message between esprit's Main Mode message 2 and strongSwan's message 3"
mid new-cookie
# Another initiator's exchange: answered (its responder cookie from the
# secret, no state beyond the half-open bound), beside strongSwan's.
check "mid (new-cookie): the spoof is answered as an exchange of its own" \
    said new-cookie "handled: answered with message 2 \(responder cookie [0-9a-f]{16}\)" E
check "mid (new-cookie): no counter moves (rejected +0, discards {})" \
    said new-cookie "counters: rejected +0, discards {}"
mid_done new-cookie
mid same-cookie
# strongSwan's own initiator cookie with another offer: a first message
# for an exchange in progress, refused without an answer and counted.
check "mid (same-cookie): the spoof is not answered" said same-cookie "handled: refused"
check "mid (same-cookie): counted: ike_ingest_dropped rejected +1, no discard" \
    said same-cookie "counters: rejected +1, discards {}"
mid_done same-cookie
check "mid: pair 11 pings" ping_ok h11 10.2.1.10 3
swan_ctl --terminate --ike esprit >/dev/null 2>&1
for _ in $(seq 50); do [ "$(sa_count)" = 0 ] && break; sleep 0.1; done

# --- 2a. spoofed first messages from strongSwan's own address ---
log "=== 2a. 1,000 spoofed first messages a second from strongSwan's own address"
attack own 198.51.100.1 203.0.113.2 1000 8 >"$WORK/own.out" 2>&1 &
PID[own]=$!
sleep 2
t0=$(date +%s.%N)
swan_ctl --initiate --child p11 >"$WORK/initiate1.log" 2>&1
t1=$(date +%s.%N)
check "own: strongSwan's Main Mode and Quick Mode complete during them ($(awk "BEGIN { printf \"%.1f\", $t1 - $t0 }") s)" \
    swan_installed 1
check "own: pair 11 pings during them" ping_ok h11 10.2.1.10 3
wait "${PID[own]}" 2>/dev/null
unset 'PID[own]'
displaced=$(discard half-open-limit-source)
log "    $(cat "$WORK/own.out"); half-open entries displaced (all 1,024 in use, its own source the largest): $displaced"
check "own: they displaced only each other (counted: $displaced)" test "$displaced" -gt 0
swan_ctl --terminate --ike esprit >/dev/null 2>&1
for _ in $(seq 50); do [ "$(sa_count)" = 0 ] && break; sleep 0.1; done

# --- 2b. the flood from 1,000 addresses while strongSwan negotiates ---
log "=== 2b. spoofed first messages from 1,000 addresses at full rate, and 1,000/s from strongSwan's own"
lines_before=$(wc -l <"$WORK/cd.log")
attack flood 198.51.100.1 "$FLOOD_SECS" >"$WORK/flood.out" 2>&1 &
PID[flood]=$!
attack own 198.51.100.1 203.0.113.2 1000 "$FLOOD_SECS" >"$WORK/own.out" 2>&1 &
PID[own]=$!
sleep 2
t0=$(date +%s.%N)
swan_ctl --initiate --child p11 >"$WORK/initiate1b.log" 2>&1
t1=$(date +%s.%N)
took=$(awk "BEGIN { printf \"%.1f\", $t1 - $t0 }")
completed=no
swan_installed 1 2>/dev/null && completed=yes
during=$(mem)
hwm=$(hwm_kb)
wait "${PID[flood]}" "${PID[own]}" 2>/dev/null
unset 'PID[flood]' 'PID[own]'
log "    $(cat "$WORK/flood.out") $(cat "$WORK/own.out")"
log "    strongSwan's negotiation during the flood: completed=$completed after $took s"
# controld has caught up once it answers the operator again.
esprit get counter >/dev/null 2>&1
hwm_after=$(hwm_kb)
log "    controld during the flood: $during; after it: $(mem)"
lines=$(($(wc -l <"$WORK/cd.log") - lines_before))
log "    controld log: $lines lines; discarded as from no gateway's address: $(discard no-gateway)"
check "flood: the datagrams from strangers are counted, not logged ($lines lines)" test "$lines" -lt 1000
# Bounded ingest bounds the queue in front of controld too;
# without it these hold as long as controld keeps up with what the kernel
# lets through (its receive buffers drop the rest), which it does once
# strangers' datagrams are counted rather than logged.
check "flood: strongSwan's negotiation completes during the flood ($took s)" test "$completed" = yes
check "flood: controld VmHWM ${hwm} kB under ${MEM_BOUND_KB} kB while strongSwan negotiated" \
    test "$hwm" -lt "$MEM_BOUND_KB"
check "flood: controld VmHWM ${hwm_after} kB under ${MEM_BOUND_KB} kB after the whole flood" \
    test "$hwm_after" -lt "$MEM_BOUND_KB"
swan_installed 1 2>/dev/null || swan_ctl --initiate --child p11 >"$WORK/initiate1c.log" 2>&1

# --- 3. Aggressive Mode to a Main Mode gateway ---
log "=== 3. an Aggressive Mode request"
back=$(attack aggressive i1 198.51.100.1 203.0.113.2 2>"$WORK/aggr.err")
check "aggressive: 0 datagrams back to the Aggressive Mode request (captured: ${back:-?})" test "${back:-x}" = 0
check "aggressive: counted as aggressive-not-configured: 1" test "$(discard aggressive-not-configured)" = 1

# --- 4. NAT-T port hijack ---
log "=== 4. NAT-T port hijack"
read -r icky rcky < <(esprit get ike cookies --json | $PY -c '
import json, sys
s = json.load(sys.stdin)["sas"][0]
print(s["initiator_cookie"], s["responder_cookie"])')
peer_before=$(esprit get ike cookies --json | $PY -c 'import json,sys; print(json.load(sys.stdin)["sas"][0]["remote"])')
attack hijack 198.51.100.1 203.0.113.2 4501 "$icky" "$rcky" >"$WORK/hijack.out" 2>&1
sleep 0.5
peer_after=$(esprit get ike cookies --json | $PY -c 'import json,sys; print(json.load(sys.stdin)["sas"][0]["remote"])')
check "hijack: the peer stays at $peer_before (now: $peer_after)" test "$peer_after" = "$peer_before"
nsx_bg inet tcpdump -n -i i1 --immediate-mode -w "$WORK/esp.pcap" -U 'udp and src host 198.51.100.1' >/dev/null 2>&1
PID[esp]=$!
for _ in $(seq 50); do [ -s "$WORK/esp.pcap" ] && break; sleep 0.1; done
sleep 1
check "hijack: pair 11 pings after it" ping_ok h11 10.2.1.10 5
sleep 1
kill "${PID[esp]}" 2>/dev/null
wait "${PID[esp]}" 2>/dev/null
unset 'PID[esp]'
to4500=$(tcpdump -r "$WORK/esp.pcap" -n 'dst port 4500' 2>/dev/null | grep -c 'spi=')
to4501=$(tcpdump -r "$WORK/esp.pcap" -n 'dst port 4501' 2>/dev/null | wc -l)
check "hijack: ESP keeps flowing to 203.0.113.2:4500 ($to4500 packets), none to 4501 ($to4501)" \
    test "$to4500" -ge 5 -a "$to4501" = 0

# --- 5. replays ---
log "=== 5. a replayed Quick Mode message and a replayed DPD acknowledgement"
after=$(date +%s.%N)
swan_ctl --initiate --child p12 >"$WORK/initiate3.log" 2>&1
check "replay: strongSwan's second child is up" swan_installed 2
sas=$(sa_count)
for _ in $(seq 20); do
    attack replay "$WORK/swan.pcap" 198.51.100.1 203.0.113.2 qm1 "$after" >"$WORK/replay-qm.out" 2>&1 && break
    sleep 0.2
done
log "    $(cat "$WORK/replay-qm.out")"
sleep 0.5
check "replay: the replayed Quick Mode message is counted (replayed-message-id: 1)" \
    test "$(discard replayed-message-id)" = 1
check "replay: no new SA from it ($sas before, $(sa_count) after)" test "$(sa_count)" = "$sas"
# DPD: esprit probes after 2 s of silence; strongSwan's ACK is the only
# Informational it sends.
after=$(date +%s.%N)
for _ in $(seq 100); do
    attack replay "$WORK/swan.pcap" 198.51.100.1 203.0.113.2 info "$after" >"$WORK/replay-dpd.out" 2>&1 && break
    sleep 0.2
done
log "    $(cat "$WORK/replay-dpd.out")"
sleep 0.5
check "replay: the replayed R-U-THERE-ACK is counted (replayed-message: 1)" \
    test "$(discard replayed-message)" = 1
check "replay: the ISAKMP SA is still up and both pairs ping" \
    bash -c "'$BIN/esprit' --socket '$WORK/cd.sock' get ike cookies | grep -qi established"
check "replay: pair 12 pings" ping_ok h12 10.2.2.10 3

log "IKE discards: $(esprit get counter --json | $PY -c 'import json,sys; print({k: v for k, v in json.load(sys.stdin)["ike_discards"].items() if v})')"
log "controld at the end: $(mem)"
[ "$fail" = 0 ] || { tail -n 30 "$WORK/cd.log" >&2; tail -n 30 "$SWAN_DIR/charon.log" >&2; }
summary
