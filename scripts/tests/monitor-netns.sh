#!/usr/bin/env bash
# The VPN monitor between two esprit gateways, in the seed topology
# (scripts/lib/topo.sh), both configured from the seed's sample
# (scripts/lib/gateway.sh); gw1 adds
#
#   set vpnmonitor interval 2 threshold 3
#   set vpn "test" monitor source-interface ethernet0/1 destination-ip 10.2.1.10 rekey
#
# so its probes (ICMP echo requests from 10.1.1.1, sent by fastpathd
# through tunnel.1) cross pair 11 (10.1.1.0/24 <-> 10.2.1.0/24), and only
# that proxy-ID decides tunnel.1's status (KB16008, "VPN Monitor"):
#
#  a. with no user traffic at all, the monitor alone brings pair 11's SA
#     up (rekey) and tunnel.1 becomes UP;
#  b. pair 22 comes up with its traffic and goes DOWN when its SA is
#     cleared: `get vpn test` shows each change with its time, and the
#     event log has them; the monitor brings pair 11 back by itself;
#  c. gw2 drops the proxy-ID (unset vpn test proxy-id ...): gw1's probes go
#     unanswered and tunnel.1 goes DOWN within interval x threshold (plus
#     slack); gw2 takes it back: rekey renegotiates and tunnel.1 is UP;
#  d. the path breaks without a word (ESP dropped on the way, the SAs stay):
#     tunnel.1 goes DOWN, and rekey deletes the silent pair with the peer
#     and negotiates a new one; when ESP passes again tunnel.1 is UP;
#  e. route withdrawal per proxy-ID: gw1 adds `set vpn test withdraw-routes`
#     and a null route behind 10.2.2.0/24. Pair 22, DOWN since b, is
#     renegotiated by controld at once (no traffic) and UP; gw2 drops pair
#     22's proxy-ID: gw1 withdraws 10.2.2.0/24 from tunnel.1 (`get route`),
#     h12 -> h22 is dropped as null-route (never leaves in clear) while
#     pair 11 keeps flowing; gw2 takes the proxy-ID back: gw1's retry
#     brings pair 22 UP and the route back, and h12 -> h22 crosses again.
#
# Ends with "N passed, M failed". Needs root. Bounded by $ESPRIT_TIMEOUT
# seconds (default 240). Binaries from $ESPRIT_BIN (default
# $CARGO_TARGET_DIR or target, /debug), built if missing.
set -uo pipefail
ESPRIT_SCRIPT=monitor-netns
source "$(dirname "$0")/../lib/common.sh"
source "$ESPRIT_ROOT/scripts/lib/testlib.sh"
source "$ESPRIT_ROOT/scripts/lib/topo.sh"
source "$ESPRIT_ROOT/scripts/lib/gateway.sh"
need_root
apt_install "${ESPRIT_TEST_PACKAGES[@]}"

LIMIT=${ESPRIT_TIMEOUT:-240}
esprit_bin_dir

lab_begin monitor-netns "$LIMIT"


INTERVAL=2
THRESHOLD=3
P11="local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 ANY"
P22="local-ip 10.1.2.0/24 remote-ip 10.2.2.0/24 ANY"
# What `get interface tunnel.1` says, status line, for each status.
monitor_line() { # monitor_line TUNNEL_STATUS MONITOR_STATUS: the exact line (regex)
    printf '^  status %s: decided by vpn test'"'"'s monitor \\(monitor %s, destination 10\\.2\\.1\\.10, proxy-id %s\\)( \\(changed [0-9T:Z-]+\\))?$' \
        "$1" "$2" "${P11//./\\.}"
}
# until_line SECONDS G COMMAND REGEX: the output of `esprit COMMAND` on
# gateway G has a line matching REGEX within SECONDS; prints the time it took.
until_line() {
    local secs=$1 g=$2 cmd=$3 re=$4 start now out
    start=$(date +%s%3N)
    while :; do
        # The whole output first: `grep -q` quitting early would make the
        # CLI's last writes fail (pipefail).
        # shellcheck disable=SC2086
        out=$(gw_cli "$g" $cmd 2>/dev/null)
        if grep -Eq "$re" <<<"$out"; then
            now=$(date +%s%3N)
            log "    after $(((now - start) / 1000)).$(((now - start) % 1000 / 100)) s: $(grep -E -m 1 "$re" <<<"$out")"
            return 0
        fi
        now=$(date +%s%3N)
        if [ $((now - start)) -gt $((secs * 1000)) ]; then
            # shellcheck disable=SC2086
            gw_cli "$g" $cmd | sed 's/^/    /' >&2
            return 1
        fi
        sleep 0.2
    done
}
quiet() { "$@" >/dev/null; }
not() { ! "$@" >/dev/null; }
has_line() { # has_line G COMMAND REGEX: one look, no waiting
    local out
    # shellcheck disable=SC2086
    out=$(gw_cli "$1" $2) && grep -Eq "$3" <<<"$out"
}
no_user_traffic() { # every acquire of gw1 so far was for a probe
    ! grep "acquire: tunnel" "$WORK/cd1.log" | grep -v "10.1.1.1 -> 10.2.1.10 protocol 1"
}

topo_up "mo$$"
for g in 1 2; do gw_config "$g" >"$WORK/gw$g.conf"; done
cat >>"$WORK/gw1.conf" <<EOF

# The VPN monitor (scripts/tests/monitor-netns.sh).
set vpnmonitor interval $INTERVAL threshold $THRESHOLD
set vpn "test" monitor source-interface ethernet0/1 destination-ip 10.2.1.10 rekey
EOF
gw_start 1
gw_start 2
topo_arp_warm

log "=== a. no user traffic: the monitor alone brings pair 11 up"
check "a: tunnel.1 UP, decided by the monitor (exact line)" \
    until_line 20 1 "get interface tunnel.1" "$(monitor_line UP UP)"
check "a: get vpn test shows the monitor UP from 10.1.1.1 (ethernet0/1)" \
    has_line 1 "get vpn test" "^  vpn monitor UP since [0-9T:Z-]+: 10\.1\.1\.1 \(ethernet0/1\) -> 10\.2\.1\.10$"
check "a: pair 11 UP and monitored" \
    has_line 1 "get vpn test" "^  00000001  ${P11} UP +[0-9]+ +[0-9]+ +[0-9]+  [0-9T:Z-]+ \(monitored\)$"
check "a: pair 22 READY (never negotiated), never changed" \
    has_line 1 "get vpn test" "^  00000004  ${P22} READY +0 +0 +0  -$"
check "a: 2 SAs A/U (pair 11 only)" gw_active 1 2
check "a: the SA came from the monitor's probe (acquire of 10.1.1.1 -> 10.2.1.10 protocol 1)" \
    grep -q "acquire: tunnel.1 .* 10.1.1.1 -> 10.2.1.10 protocol 1" "$WORK/cd1.log"
check "a: no packet of the LAN hosts was involved" no_user_traffic
check "a: the event log has the monitor going UP" \
    has_line 1 "get event" "vpn-monitor +203\.0\.113\.2 +vpn test: vpn monitor UP \(was -\)"
gw_cli 1 get vpn test | sed 's/^/    /' >&2

log "=== b. pair 22: UP with its traffic, DOWN when its SA is cleared"
check "b: h12 -> h22 crosses (pair 22 negotiated)" quiet nsx h12 ping -c 1 -W 8 10.2.2.10
check "b: get vpn test shows pair 22 UP with the time it changed" \
    until_line 5 1 "get vpn test" "^  00000004  ${P22} UP +[0-9]+ +[0-9]+ +[0-9]+  [0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z$"
check "b: the event log has pair 22 UP (was READY)" \
    until_line 5 1 "get event" "status +203\.0\.113\.2 +vpn test proxy-id ${P22}: UP \(was READY\)$"
gw_cli 1 clear sa >/dev/null
check "b: after clear sa, pair 22 DOWN with the time it changed" \
    until_line 5 1 "get vpn test" "^  00000004  ${P22} DOWN +[0-9]+ +[0-9]+ +[0-9]+  [0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z$"
check "b: the event log has pair 22 DOWN (was UP)" \
    until_line 5 1 "get event" "status +203\.0\.113\.2 +vpn test proxy-id ${P22}: DOWN \(was UP\)$"
check "b: the monitor brought pair 11 back by itself (tunnel.1 UP)" \
    until_line 15 1 "get interface tunnel.1" "$(monitor_line UP UP)"
check "b: pair 22 stays DOWN (nothing asks for it)" \
    has_line 1 "get vpn test" "^  00000004  ${P22} DOWN "
gw_cli 1 get vpn test | sed 's/^/    /' >&2

log "=== c. gw2 drops pair 11's proxy-ID, then takes it back"
check "c: gw2 removes the proxy-ID" \
    quiet gw_cli 2 unset vpn test proxy-id local-ip 10.2.1.0/24 remote-ip 10.1.1.0/24 any
check "c: tunnel.1 on gw1 DOWN within interval x threshold + slack" \
    until_line $((INTERVAL * THRESHOLD + 8)) 1 "get interface tunnel.1" "$(monitor_line DOWN DOWN)"
check "c: get vpn test shows the monitor DOWN" \
    has_line 1 "get vpn test" "^  vpn monitor DOWN since [0-9T:Z-]+: 10\.1\.1\.1 \(ethernet0/1\) -> 10\.2\.1\.10$"
check "c: get vpn test shows the probes lost" \
    has_line 1 "get vpn test" "^    probes sent [0-9]+, answered [0-9]+, skipped 0 \(traffic\), lost in a row [3-9][0-9]*$"
check "c: the event log has the monitor DOWN" \
    has_line 1 "get event" "vpn test: vpn monitor DOWN \(was UP\): 3 probe\(s\) in a row unanswered"
# gw2's Delete may come first: tunnel.1 is then READY (its proxy-ID waits
# for IKE) until the monitor decides.
check "c: the event log has tunnel.1 DOWN (was UP or READY)" \
    has_line 1 "get event" "status +- +interface tunnel\.1: DOWN \(was (UP|READY)\)$"
check "c: gw2 takes the proxy-ID back" \
    quiet gw_cli 2 set vpn test proxy-id local-ip 10.2.1.0/24 remote-ip 10.1.1.0/24 any
check "c: rekey renegotiates: tunnel.1 on gw1 UP again" \
    until_line 30 1 "get interface tunnel.1" "$(monitor_line UP UP)"
check "c: the event log has tunnel.1 UP (was DOWN)" \
    has_line 1 "get event" "status +- +interface tunnel\.1: UP \(was DOWN\)$"

log "=== d. the path breaks silently (ESP dropped between the gateways, no Delete)"
SPIS_BEFORE=$(gw_spis 1)
# The router blackholes ESP from gw1 (IKE on UDP 500 still passes).
nsx inet ip rule add iif i1 ipproto 50 blackhole
check "d: tunnel.1 on gw1 DOWN within interval x threshold + slack" \
    until_line $((INTERVAL * THRESHOLD + 8)) 1 "get interface tunnel.1" "$(monitor_line DOWN DOWN)"
check "d: rekey: gw1 deleted the silent pair with the peer to renegotiate it" \
    grep -q "vpn monitor test: DOWN with SA 0x[0-9a-f]* installed: renegotiating (rekey)" "$WORK/cd1.log"
nsx inet ip rule del iif i1 ipproto 50 blackhole
check "d: ESP passes again: tunnel.1 on gw1 UP" \
    until_line 30 1 "get interface tunnel.1" "$(monitor_line UP UP)"
new_spis() { # no SPI active before the break is active now
    local s now
    gw_active 1 2 || return 1
    now=$(gw_spis 1)
    log "    SPIs before: $SPIS_BEFORE; now: $now"
    for s in $SPIS_BEFORE; do case " $now " in *" $s "*) return 1 ;; esac; done
}
check "d: pair 11 is UP on a new SA pair" new_spis

gw_cli 1 get interface tunnel.1 | sed 's/^/    /' >&2
gw_cli 1 get vpn test | sed 's/^/    /' >&2
gw_cli 1 get event | grep -E "vpn-monitor|status " | head -12 | sed 's/^/    /' >&2

log "=== e. withdraw-routes: pair 22's route follows its status"
P22_RE="${P22//./\\.}"
null_drops() { gw_cli 1 get counter | awk '$1 == "null-route" { print $2 }'; }
check "e: gw1 takes a null route behind 10.2.2.0/24 and withdraw-routes" \
    quiet gw_cli 1 set route 10.2.2.0/24 interface null metric 250
check "e: ... (set vpn test withdraw-routes)" quiet gw_cli 1 set vpn test withdraw-routes
check "e: pair 22 (DOWN since b) is renegotiated by controld itself: UP, no traffic" \
    until_line 15 1 "get vpn test" "^  00000004  ${P22_RE} UP "
check "e: the event log has its routes withdrawn, then restored" \
    has_line 1 "get event" "vpn test proxy-id ${P22_RE} DOWN: route\(s\) withdrawn: 10\.2\.2\.0/24 interface tunnel\.1$"
check "e: ... restored" \
    until_line 5 1 "get event" "vpn test proxy-id ${P22_RE} no longer DOWN: route\(s\) restored: 10\.2\.2\.0/24 interface tunnel\.1$"
check "e: gw2 drops pair 22's proxy-ID" \
    quiet gw_cli 2 unset vpn test proxy-id local-ip 10.2.2.0/24 remote-ip 10.1.2.0/24 any
check "e: gw1 withdraws 10.2.2.0/24 from tunnel.1 (get route, exact line)" \
    until_line 10 1 "get route" "^  10\.2\.2\.0/24 +tunnel\.1 +- +static +1 tunnel\.1  withdrawn: vpn test proxy-id ${P22_RE} DOWN$"
check "e: ... and installs the null route" has_line 1 "get route" "^\* 10\.2\.2\.0/24 +null +- +static +250 -$"
check "e: get vpn test marks pair 22 DOWN, routes withdrawn" \
    has_line 1 "get vpn test" "^  00000004  ${P22_RE} DOWN .*\(routes withdrawn\)$"
NULL_BEFORE=$(null_drops)
check "e: h12 -> h22 gets no answer" not nsx h12 ping -c 2 -i 0.3 -W 1 10.2.2.10
drops_grew() {
    local now
    now=$(null_drops)
    log "    null-route drops: ${NULL_BEFORE:-0} -> ${now:-0}"
    [ "${now:-0}" -ge $((${NULL_BEFORE:-0} + 2)) ]
}
check "e: ... dropped by gw1 as null-route (not sent in clear)" drops_grew
check "e: pair 11 keeps flowing (h11 -> h21)" quiet nsx h11 ping -c 1 -W 3 10.2.1.10
check "e: gw2 takes the proxy-ID back" \
    quiet gw_cli 2 set vpn test proxy-id local-ip 10.2.2.0/24 remote-ip 10.1.2.0/24 any
check "e: gw1's retry brings pair 22 UP (10 s retries; a refused Quick Mode may take its time out)" \
    until_line 40 1 "get vpn test" "^  00000004  ${P22_RE} UP "
check "e: the tunnel route is back in fastpathd" \
    until_line 5 1 "get route" "^\* 10\.2\.2\.0/24 +tunnel\.1 +- +static +1 tunnel\.1$"
check "e: h12 -> h22 crosses again" quiet nsx h12 ping -c 1 -W 3 10.2.2.10
gw_cli 1 get route | sed 's/^/    /' >&2

summary
