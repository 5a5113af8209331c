#!/usr/bin/env bash
# Interoperability of esprit (fastpathd + controld running IKEv1) with an
# independent implementation, in the seed topology (scripts/lib/topo.sh).
#
#   scripts/tests/interop-strongswan-ikev1.sh
#
# gw1 = fastpathd + controld, configured in ScreenOS syntax with one AutoKey
# VPN (gateway "swan", Main Mode, PSK) bound to tunnel.1 with the seed's
# four proxy-IDs and `proxy-id check`; gw2 = strongSwan charon with
# kernel-libipsec (scripts/lib/strongswan.sh), one child per proxy-ID.
# For each ESP suite (ESPS, default "aes128-sha1 aes128gcm16"):
#
#  1. esprit initiates on demand: the first ping h11 -> h21 makes fastpathd
#     acquire, controld runs Main Mode + Quick Mode, installs the pair, and
#     the held packet is delivered (the first ping is answered); then the
#     three other pairs the same way;
#  2. each pair crosses the WAN on its own SPI pair: tcpdump on inet's i1
#     (UDP 4500, ESP in UDP), packets counted per SPI, 8 SPIs, all of them
#     the ones `esprit get sa` shows;
#     a route added with `esprit set` keeps the SAs; a proxy-ID added
#     renegotiates the gateway (SAs deleted, the next packet negotiates);
#  3. strongSwan initiates (`swanctl --initiate --child` x4), esprit
#     responds; every pair pings; a fifth child whose selectors are not
#     esprit's is refused (INVALID-ID-INFORMATION) and logged in words.
#
# Then, with ESP aes128gcm16 (REKEY=0 skips it), rekeys under continuous
# traffic (pings every 20 ms on two pairs, none may be lost):
#  4. esprit rekeys: child lifetime 24 s and phase-1 lifetime 40 s on
#     esprit (strongSwan's are long); esprit's children are rekeyed at
#     85-90% (make-before-break), the old pairs deleted 10 s later, the
#     ISAKMP SA replaced at 90%; new SPIs in `get sa` and on strongSwan;
#  5. strongSwan rekeys: it initiated the children with rekey_time 15 s
#     (life_time 40 s, proposed to esprit, which rekeys only at 95%);
#     esprit installs each new pair and removes the old after the grace
#     period (strongSwan sends no Delete for a rekeyed IKEv1 child).
#
# And (AGGR=0 skips it) Aggressive Mode with FQDN identities, PFS group 14
# and DPD every 2 s on both sides (ESP aes128-sha1):
#  6. esprit initiates on demand in Aggressive Mode, the Quick Mode has PFS;
#     each side's R-U-THERE is answered;
#  7. strongSwan stops: esprit declares it dead after 3 unanswered probes
#     and removes the gateway's SAs; strongSwan back, the next packet
#     negotiates again;
#  8. a dynamic peer (`dynamic swan.example.net Aggr`): esprit cannot
#     initiate until strongSwan connects; strongSwan's Aggressive Mode is
#     matched by its identity, its address learnt, and esprit then
#     negotiates further proxy-IDs on demand.
#
# Ends with "N passed, M failed". Needs root. Bounded by $ESPRIT_TIMEOUT
# seconds (default 420). INITIATORS="esprit strongswan" (the default)
# selects the scenarios. Cleans up (processes by PID, namespaces) on any
# exit. Binaries from $ESPRIT_BIN (default $CARGO_TARGET_DIR or target,
# /debug), built if missing. ESPRIT_KEEP=1 keeps the logs.
set -uo pipefail
ESPRIT_SCRIPT=interop
source "$(dirname "$0")/../lib/common.sh"
source "$ESPRIT_ROOT/scripts/lib/testlib.sh"
source "$ESPRIT_ROOT/scripts/lib/topo.sh"
source "$ESPRIT_ROOT/scripts/lib/strongswan.sh"
source "$ESPRIT_ROOT/scripts/lib/interop.sh"
need_root

[ $# -eq 0 ] || die "usage: scripts/tests/interop-strongswan-ikev1.sh (no arguments; see the header)"
LIMIT=${ESPRIT_TIMEOUT:-600}
ESPS=${ESPS:-"aes128-sha1 aes128gcm16"}
PSK="esprit-interop-psk-0123456789"
START=$(date +%s)

swan_packages
apt_install tcpdump iproute2 ethtool iputils-ping
esprit_bin_dir

lab_begin interop "$LIMIT"


PAIRS="11 12 21 22"
P2_NAME() { case $1 in aes128-sha1) echo nopfs-esp-aes128-sha ;; aes128gcm16) echo nopfs-esp-aes128gcm ;; *) die "ESP suite $1?" ;; esac; }

write_gw1_config() { # write_gw1_config ESP [P2_LIFE_SECS P1_LIFE_SECS]
    local p p2 p1=pre-g14-aes128-sha
    p2=$(P2_NAME "$1")
    {
        if [ -n "${2:-}" ]; then
            p2=short-p2
            p1=short-p1
            echo "set ike p1-proposal \"short-p1\" preshare group14 esp aes128 sha-1 second $3"
            case $1 in
            aes128gcm16) echo "set ike p2-proposal \"short-p2\" no-pfs esp aes128gcm second $2" ;;
            *) echo "set ike p2-proposal \"short-p2\" no-pfs esp aes128 sha-1 second $2" ;;
            esac
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
        echo "set ike gateway \"swan\" address 203.0.113.2 Main outgoing-interface \"ethernet0/2\" preshare \"$PSK\" proposal \"$p1\""
        # strongSwan's kernel-libipsec encapsulates ESP in UDP: NAT-T on.
        echo "set ike gateway \"swan\" nat-traversal"
        echo "set vpn \"vpn1\" gateway \"swan\" replay tunnel idletime 0 proposal \"$p2\""
        echo "set vpn \"vpn1\" id 0x1 bind interface tunnel.1"
        echo "set vpn \"vpn1\" proxy-id check"
        for p in $PAIRS; do
            echo "set vpn \"vpn1\" proxy-id local-ip 10.1.${p:0:1}.0/24 remote-ip 10.2.${p:1:1}.0/24 any"
        done
        echo "set route 10.2.1.0/24 interface tunnel.1"
        echo "set route 10.2.2.0/24 interface tunnel.1"
    } >"$WORK/gw1.conf"
    chmod 600 "$WORK/gw1.conf"
}

write_swanctl() { # write_swanctl ESP [CHILD_TIMES]
    local p times=${2:-"life_time = 66m"}
    {
        cat <<EOC
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
EOC
        for p in $PAIRS; do
            cat <<EOC
      p$p { local_ts = 10.2.${p:1:1}.0/24
            remote_ts = 10.1.${p:0:1}.0/24
            mode = tunnel
            esp_proposals = $1
            $times
            start_action = none }
EOC
        done
        # Not one of esprit's proxy-IDs: esprit must refuse it, in words.
        cat <<EOC
      pbad { local_ts = 10.2.9.0/24
             remote_ts = 10.1.1.0/24
             mode = tunnel
             esp_proposals = $1
             start_action = none }
    }
  }
}
secrets { ike-esprit { id-a = 198.51.100.1
                       id-b = 203.0.113.2
                       secret = "$PSK" } }
EOC
    } >"$SWAN_DIR/swanctl.conf"
}

# bring_up ESP RUN_NAME [P2_LIFE P1_LIFE [SWAN_CHILD_TIMES]]: the topology,
# strongSwan on gw2, fastpathd + controld on gw1, a capture on the WAN.
bring_up() {
    local esp=$1
    RUN=$WORK/$2
    mkdir -p "$RUN"
    topo_up "ei$$"
    # gw2 is a plain Linux router with strongSwan: its kernel forwards.
    nsx gw2 sysctl -qw net.ipv4.ip_forward=1
    nsx gw2 sysctl -qw net.ipv4.conf.all.rp_filter=0
    swan_start "$TOPO-gw2" "$RUN/swan" || die "charon did not start"
    write_swanctl "$esp" "${5:-}"
    swan_ctl --load-all --clear --noprompt --file "$SWAN_DIR/swanctl.conf" >"$RUN/swan-load.log" 2>&1 ||
        { cat "$RUN/swan-load.log" >&2; die "swanctl --load-all failed"; }

    write_gw1_config "$esp" "${3:-}" "${4:-}"
    check "controld --check accepts the AutoKey configuration" "$BIN/controld" --check "$WORK/gw1.conf"
    nsx_bg gw1 "$BIN/fastpathd" --port lan1 --port lan2 --port wan0 --xdp-mode "${XDP_MODE:-driver}" \
        --socket "$RUN/fp.sock" >"$RUN/fp.log" 2>&1
    PID[fp]=$!
    wait_socket "$RUN/fp.sock" "$RUN/fp.log" "fastpathd"
    nsx_bg gw1 "$BIN/controld" --config "$WORK/gw1.conf" --fastpath "$RUN/fp.sock" \
        --socket "$RUN/cd.sock" --state-dir "$RUN/state" >"$RUN/cd.log" 2>&1
    PID[cd]=$!
    wait_socket "$RUN/cd.sock" "$RUN/cd.log" "controld"
    topo_arp_warm
    nsx gw2 ping -c 1 -W 2 198.51.100.1 >/dev/null 2>&1 || true
    nsx_bg inet tcpdump -n -i i1 -w "$RUN/wan.pcap" -U 'udp port 4500' >/dev/null 2>&1
    PID[tcpdump]=$!
    for _ in $(seq 50); do [ -s "$RUN/wan.pcap" ] && break; sleep 0.1; done
}

scenario() { # scenario ESP esprit|strongswan
    local esp=$1 who=$2 p
    log "=== ESP $esp, $who initiates"
    bring_up "$esp" "$esp-$who"

    if [ "$who" = esprit ]; then
        check "$esp: pair 11 on demand: the first ping h11 -> 10.2.1.10 is answered (Main Mode + Quick Mode)" \
            first_ping h11 10.2.1.10
        for p in 12 21 22; do
            check "$esp: pair $p on demand: the first ping h1${p:0:1} -> 10.2.${p:1:1}.10 is answered (Quick Mode)" \
                first_ping "h1${p:0:1}" "10.2.${p:1:1}.10"
        done
    else
        for p in $PAIRS; do
            swan_ctl --initiate --child "p$p" --timeout 15 >"$RUN/initiate-$p.log" 2>&1 ||
                { log "    swanctl --initiate --child p$p failed"; tail -5 "$RUN/initiate-$p.log" >&2; }
        done
    fi
    if [ "$who" = strongswan ]; then
        swan_ctl --initiate --child pbad --timeout 10 >"$RUN/initiate-bad.log" 2>&1 || true
        check "$esp/$who: a Quick Mode for an unconfigured proxy-id is refused and logged in words" \
            grep -q "asked for proxy-id local-ip 10.1.1.0/24 remote-ip 10.2.9.0/24 ANY, which is not configured" "$RUN/cd.log"
    fi
    check "$esp/$who: esprit get sa shows 8 SAs A/U" active 8
    check "$esp/$who: strongSwan has 4 CHILD_SAs INSTALLED" swan_installed 4
    for p in $PAIRS; do
        check "$esp/$who: pair $p: 10 pings h1${p:0:1} -> 10.2.${p:1:1}.10" ping_ok "h1${p:0:1}" "10.2.${p:1:1}.10" 10
    done
    # tcpdump may lag behind the pings on a loaded machine: stop it once it
    # has written them all (4 pairs x 10 pings x 2 directions), not after a
    # guessed delay.
    wait_capture 80 || log "    the capture holds fewer than 80 ESP packets after 10 s"
    kill "${PID[tcpdump]}" 2>/dev/null; wait "${PID[tcpdump]}" 2>/dev/null; unset 'PID[tcpdump]'
    check "$esp/$who: each pair on its own SPI pair on the WAN (8 SPIs, as get sa)" spis_each_pair 8
    esprit get sa | sed 's/^/    /' >&2

    if [ "$who" = esprit ]; then
        local before after
        before=$(esprit get sa | awk '/ A\/U / { print $5 }' | sort | tr '\n' ' ')
        esprit set route 192.0.2.0/24 interface ethernet0/2 gateway 198.51.100.254 >/dev/null
        after=$(esprit get sa | awk '/ A\/U / { print $5 }' | sort | tr '\n' ' ')
        check "$esp/$who: a change elsewhere in the configuration (a route) keeps the 8 SAs" \
            test "$before" = "$after" -a -n "$after"
        esprit set vpn vpn1 proxy-id local-ip 10.1.1.0/24 remote-ip 10.2.9.0/24 any >/dev/null
        after=$(esprit get sa | awk '/ A\/U / { print $5 }' | sort | tr '\n' ' ')
        check "$esp/$who: a new proxy-id keeps the 8 SAs (a change touches only what it changes)" \
            test "$before" = "$after"
        esprit unset vpn vpn1 proxy-id local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 any >/dev/null
        check "$esp/$who: removing proxy-id 10.1.1.0/24 <-> 10.2.1.0/24 deletes its pair only (6 SAs left)" active 6
        check "$esp/$who: ... and strongSwan removes its copy on esprit's Delete (3 CHILD_SAs)" swan_installed 3
        check "$esp/$who: ... the other pairs still ping (h12 -> 10.2.2.10)" ping_ok h12 10.2.2.10 5
        check "$esp/$who: ... traffic of the removed proxy-id is dropped now (h11 -> 10.2.1.10)" \
            bash -c "! ip netns exec $TOPO-h11 ping -c 2 -i 0.2 -W 1 10.2.1.10"
        esprit set vpn vpn1 proxy-id local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 any >/dev/null
        check "$esp/$who: set again, the next packet negotiates its pair (first ping answered)" \
            first_ping h11 10.2.1.10
        check "$esp/$who: ... 8 SAs" active 8
    fi
    grep -E "after the acquire|phase 1 up|child SA up|mismatch|not configured|failed|error" "$RUN/cd.log" |
        sed 's/^/    /' >&2 || true

    lab_stop_pids
    swan_stop
    topo_down
}

# The SPIs `esprit get sa` shows as active, sorted, on one line.
# steady_pings SECONDS: pings every 20 ms h11 -> 10.2.1.10 and
# h12 -> 10.2.2.10 for SECONDS, in the background; steady_done checks
# that every one was answered.
steady_pings() {
    local n=$(($1 * 50))
    nsx_bg h11 ping -q -i 0.02 -c "$n" -w $(($1 + 15)) 10.2.1.10 >"$RUN/steady-11.out" 2>&1
    STEADY=($!)
    nsx_bg h12 ping -q -i 0.02 -c "$n" -w $(($1 + 15)) 10.2.2.10 >"$RUN/steady-22.out" 2>&1
    STEADY+=($!)
}
steady_done() {
    local p
    for p in "${STEADY[@]}"; do wait "$p" || true; done
    for p in 11 22; do
        log "    pair $p: $(grep -o '[0-9]* packets transmitted.*loss' "$RUN/steady-$p.out")"
        grep -q " 0% packet loss" "$RUN/steady-$p.out" || return 1
    done
}
count_lines() { grep -c "$1" "$RUN/cd.log" || true; }

rekey_scenario() { # rekey_scenario esprit|strongswan
    local who=$1 before after n
    if [ "$who" = esprit ]; then
        log "=== rekeys under traffic: esprit rekeys (child 24 s, phase 1 40 s)"
        bring_up aes128gcm16 rekey-esprit 24 40 "life_time = 10m
            rekey_time = 9m"
        for p in 11 22; do
            check "rekey/esprit: pair $p up on demand" first_ping "h1${p:0:1}" "10.2.${p:1:1}.10"
        done
    else
        log "=== rekeys under traffic: strongSwan rekeys (rekey_time 15 s, life_time 40 s)"
        bring_up aes128gcm16 rekey-swan "" "" "life_time = 40s
            rekey_time = 15s
            rand_time = 0s"
        for p in 11 22; do
            swan_ctl --initiate --child "p$p" --timeout 15 >"$RUN/initiate-$p.log" 2>&1 ||
                { log "    swanctl --initiate --child p$p failed"; tail -5 "$RUN/initiate-$p.log" >&2; }
        done
    fi
    check "rekey/$who: 4 SAs A/U" active 4
    before=$(active_spis)
    steady_pings 40
    check "rekey/$who: 2 x 2000 pings every 20 ms across the rekeys, none lost" steady_done
    check "rekey/$who: fastpathd dropped no ESP for an unknown SPI (each side's new SA was in before it was used)" \
        bash -c "! '$BIN/esprit' --socket '$RUN/cd.sock' get counter | grep -E 'esp-unknown-spi|replay-'"
    after=$(active_spis)
    log "    SPIs before: $before"
    log "    SPIs after:  $after"
    check "rekey/$who: every active SPI is new" \
        bash -c "for s in $before; do case ' $after ' in *\" \$s \"*) exit 1;; esac; done; [ -n '$after' ]"
    n=$(count_lines "rekeyed: child SA")
    log "    $n child rekeys logged"
    check "rekey/$who: both children were rekeyed (make-before-break logged)" test "$n" -ge 2
    if [ "$who" = esprit ]; then
        check "rekey/esprit: the ISAKMP SA was rekeyed (phase 1 before its 40 s)" \
            grep -q "phase 1 rekeyed" "$RUN/cd.log"
    fi
    check "rekey/$who: strongSwan still has the children (new ones INSTALLED)" \
        bash -c "[ \"\$(STRONGSWAN_CONF='$SWAN_DIR/strongswan.conf' swanctl --list-sas | grep -c INSTALLED)\" -ge 2 ]"
    grep -E "rekey|phase 1|child SA (up|down)|failed|error" "$RUN/cd.log" | sed 's/^/    /' >&2 || true
    lab_stop_pids
    swan_stop
    topo_down
}

aggr_scenario() {
    log "=== Aggressive Mode, FQDN identities, PFS group 14, DPD"
    SWAN_EXTRA="i_dont_care_about_security_and_use_aggressive_mode_psk = yes"
    bring_up aes128-sha1 aggr
    SWAN_EXTRA=""
    # The same VPN, in Aggressive Mode with FQDN identities, PFS and DPD.
    sed -i -e 's/ Main outgoing-interface/ Aggr outgoing-interface/' \
        -e 's/proposal "nopfs-esp-aes128-sha"/proposal "pfs14-aes128-sha"/' "$WORK/gw1.conf"
    {
        echo 'set ike p2-proposal "pfs14-aes128-sha" group14 esp aes128 sha-1 second 3600'
        echo 'set ike gateway "swan" local-id esprit.example.net'
        echo 'set ike gateway "swan" peer-id swan.example.net'
        echo 'set ike gateway "swan" dpd-liveness interval 2 retry 3'
    } >>"$WORK/gw1.conf"
    sed -i -e 's/aggressive = no/aggressive = yes\n    dpd_delay = 2s/' \
        -e 's/id = 203.0.113.2/id = swan.example.net/; s/id = 198.51.100.1/id = esprit.example.net/' \
        -e 's/id-a = 198.51.100.1/id-a = esprit.example.net/; s/id-b = 203.0.113.2/id-b = swan.example.net/' \
        -e 's/esp_proposals = aes128-sha1$/esp_proposals = aes128-sha1-modp2048/' "$SWAN_DIR/swanctl.conf"
    swan_ctl --load-all --clear --noprompt --file "$SWAN_DIR/swanctl.conf" >"$RUN/swan-load.log" 2>&1 ||
        { cat "$RUN/swan-load.log" >&2; die "swanctl --load-all failed"; }
    esprit exec reload >/dev/null || { cat "$RUN/cd.log" >&2; die "exec reload of the Aggressive Mode configuration failed"; }
    check "aggr: the first ping h11 -> 10.2.1.10 is answered (Aggressive Mode + Quick Mode with PFS)" \
        first_ping h11 10.2.1.10
    check "aggr: strongSwan saw Aggressive Mode" grep -q "parsed AGGRESSIVE request" "$RUN/swan/charon.log"
    check "aggr: the child SA has PFS modp2048" grep -q "child SA up .*PFS modp2048" "$RUN/cd.log"
    check "aggr: 10 pings" ping_ok h11 10.2.1.10 10
    local _ ok=1
    for _ in $(seq 100); do
        grep -q "parsed INFORMATIONAL_V1 request .*N(DPD)" "$RUN/swan/charon.log" &&
            grep -q "generating INFORMATIONAL_V1 request .*N(DPD_ACK)" "$RUN/swan/charon.log" && ok=0 && break
        sleep 0.1
    done
    # (strongSwan probes only a peer it has not heard from: esprit's own
    # probes keep it quiet here; the dynamic scenario checks the answers.)
    check "aggr: DPD: strongSwan answers esprit's R-U-THERE" test "$ok" = 0
    # Gone without a word (kill -9: no Delete), as a crashed or cut-off peer.
    local t0=$SECONDS
    kill -9 "$SWAN_PID" 2>/dev/null
    SWAN_PID=""
    ok=1
    for _ in $(seq 250); do
        grep -q "dead peer detection" "$RUN/cd.log" && ok=0 && break
        sleep 0.1
    done
    log "    peer declared dead $((SECONDS - t0)) s after strongSwan stopped"
    check "aggr: strongSwan gone: esprit declares the peer dead (DPD, 3 probes 2 s apart)" test "$ok" = 0
    check "aggr: ... and removes the gateway's SAs" active 0
    SWAN_EXTRA="i_dont_care_about_security_and_use_aggressive_mode_psk = yes"
    swan_start "$TOPO-gw2" "$RUN/swan2" || die "charon did not start again"
    SWAN_EXTRA=""
    cp "$RUN/swan/swanctl.conf" "$SWAN_DIR/swanctl.conf"
    swan_ctl --load-all --clear --noprompt --file "$SWAN_DIR/swanctl.conf" >"$RUN/swan-load2.log" 2>&1 ||
        { cat "$RUN/swan-load2.log" >&2; die "swanctl --load-all failed"; }
    check "aggr: strongSwan back: the next packet negotiates again (first ping answered)" first_ping h11 10.2.1.10
    grep -E "phase 1|child SA|dead peer|failed|error" "$RUN/cd.log" | sed 's/^/    /' >&2 || true
    lab_stop_pids
    swan_stop
    topo_down
}

dynamic_scenario() {
    log "=== a dynamic peer (ScreenOS 'dynamic ID'): strongSwan connects from an address esprit does not know"
    SWAN_EXTRA="i_dont_care_about_security_and_use_aggressive_mode_psk = yes"
    bring_up aes128-sha1 dynamic
    SWAN_EXTRA=""
    sed -i -e 's/ address 203.0.113.2 Main outgoing-interface/ dynamic swan.example.net Aggr outgoing-interface/' "$WORK/gw1.conf"
    echo 'set ike gateway "swan" local-id esprit.example.net' >>"$WORK/gw1.conf"
    sed -i -e 's/aggressive = no/aggressive = yes\n    dpd_delay = 2s/' \
        -e 's/id = 203.0.113.2/id = swan.example.net/; s/id = 198.51.100.1/id = esprit.example.net/' \
        -e 's/id-a = 198.51.100.1/id-a = esprit.example.net/; s/id-b = 203.0.113.2/id-b = swan.example.net/' \
        "$SWAN_DIR/swanctl.conf"
    swan_ctl --load-all --clear --noprompt --file "$SWAN_DIR/swanctl.conf" >"$RUN/swan-load.log" 2>&1 ||
        { cat "$RUN/swan-load.log" >&2; die "swanctl --load-all failed"; }
    esprit exec reload >/dev/null || { cat "$RUN/cd.log" >&2; die "exec reload of the dynamic-peer configuration failed"; }
    check "dynamic: before the peer connects, esprit has nowhere to negotiate (the first ping is not answered)" \
        bash -c "! ip netns exec $TOPO-h11 ping -c 1 -W 2 10.2.1.10"
    check "dynamic: ... and says why" grep -q "not known yet: it must connect first" "$RUN/cd.log"
    swan_ctl --initiate --child p11 --timeout 15 >"$RUN/initiate-11.log" 2>&1 ||
        { log "    swanctl --initiate --child p11 failed"; tail -5 "$RUN/initiate-11.log" >&2; }
    check "dynamic: strongSwan's Aggressive Mode is matched by its identity; pair 11 pings" ping_ok h11 10.2.1.10 5
    check "dynamic: esprit learnt the peer's address" \
        bash -c "'$BIN/esprit' --socket '$RUN/cd.sock' get ike cookies | grep -q 203.0.113.2"
    check "dynamic: esprit now negotiates on demand to the learnt address (pair 22)" first_ping h12 10.2.2.10
    check "dynamic: 4 SAs active" active 4
    local _ ok=1
    for _ in $(seq 100); do
        grep -q "parsed INFORMATIONAL_V1 request .*N(DPD_ACK)" "$RUN/swan/charon.log" && ok=0 && break
        sleep 0.1
    done
    check "dynamic: esprit answers strongSwan's DPD R-U-THERE" test "$ok" = 0
    grep -E "phase 1|child SA|not known|failed|error" "$RUN/cd.log" | sed 's/^/    /' >&2 || true
    lab_stop_pids
    swan_stop
    topo_down
}

for esp in $ESPS; do
    for who in ${INITIATORS:-esprit strongswan}; do
        scenario "$esp" "$who"
    done
done
[ "${AGGR:-1}" != 0 ] && aggr_scenario && dynamic_scenario
if [ "${REKEY:-1}" != 0 ]; then
    rekey_scenario esprit
    rekey_scenario strongswan
fi

log "runtime $(($(date +%s) - START)) s"
summary
