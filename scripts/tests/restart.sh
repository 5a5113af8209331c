#!/usr/bin/env bash
# A controld killed with -9 and started again loses nothing, in the seed
# topology (scripts/lib/topo.sh), against two peers:
#
#  1. esprit (gw2, scripts/lib/gateway.sh), both sides with child SAs of
#     40 s, an ISAKMP SA of 60 s and DPD every 2 s;
#  2. strongSwan (IKEv1, kernel-libipsec, NAT-T on 4500) on gw2, esprit on
#     gw1 with the same lifetimes and DPD every 3 s (strongSwan's lifetimes
#     are long and its DPD delay 1 s).
#
# In each, esprit on gw1 brings two pairs up on demand (h11 -> 10.2.1.10,
# h12 -> 10.2.2.10), pings run every 20 ms on both for 62 s, and 3 s in
# gw1's controld is killed with SIGKILL and started again with the same
# state directory. Checked: no ping lost; the new controld resumed the
# ISAKMP SA and both child pairs from ike.json and ike.journal and adopted fastpathd's
# SAs (nothing installed, nothing removed); `esprit get sa` and `get ike
# cookies` are as before (SPIs, IDs, cookies; the lifetime columns aside);
# no renegotiation; the peer's DPD is answered and its own probes are
# answered (R-U-THERE both ways, no peer declared dead; strongSwan probes
# only an idle peer, so its own R-U-THERE is checked once the pings are
# over); then the child
# rekeys (85-90% of 40 s) and the phase-1 rekey (90% of 60 s) succeed
# under the resumed timers, and the superseded pairs are deleted with the
# peer (Delete); ike.json and ike.journal are mode 0600 in a 0700 directory.
#
# Ends with "N passed, M failed". Needs root. Bounded by $ESPRIT_TIMEOUT
# seconds (default 360). PEERS="esprit strongswan" (the default) selects
# the scenarios. Binaries from $ESPRIT_BIN (default $CARGO_TARGET_DIR or
# target, /debug), built if missing. ESPRIT_KEEP=1 keeps the logs.
set -uo pipefail
ESPRIT_SCRIPT=restart
source "$(dirname "$0")/../lib/common.sh"
source "$ESPRIT_ROOT/scripts/lib/testlib.sh"
source "$ESPRIT_ROOT/scripts/lib/topo.sh"
source "$ESPRIT_ROOT/scripts/lib/gateway.sh"
source "$ESPRIT_ROOT/scripts/lib/strongswan.sh"
need_root
apt_install "${ESPRIT_TEST_PACKAGES[@]}"

LIMIT=${ESPRIT_TIMEOUT:-360}
PEERS=${PEERS:-"esprit strongswan"}
PSK="esprit-restart-psk-0123456789"
# Pings run this long; the kill comes KILL_AT seconds in.
STEADY_SECS=62
KILL_AT=3
esprit_bin_dir
case " $PEERS " in *" strongswan "*) swan_packages ;; esac

lab_begin restart "$LIMIT"
TOP=$WORK
STEADY=()
CAPTURE=""
# On exit: the pingers and the capture, and WORK back to the top directory
# (each peer's run works in a subdirectory of it).
restart_exit() {
    lab_end_pids "${STEADY[@]}" $CAPTURE
    WORK=$TOP
}
lab_on_exit restart_exit

# The controld of gw1 by itself (gw_start started it with fastpathd): its
# PID is the last one gw_start recorded for gw1.
CD1=""
start_controld1() { # start_controld1 LOG
    nsx_bg gw1 "$BIN/controld" --config "$WORK/gw1.conf" --fastpath "$WORK/fp1.sock" \
        --socket "$WORK/cd1.sock" --state-dir "$WORK/state1" --port-map ethernet0/1=lan1 >"$1" 2>&1
    CD1=$!
    GW_PIDS+=("$CD1")
    wait_socket "$WORK/cd1.sock" "$1" "controld on gw1"
}

# What must not change across the restart: `get sa` without its lifetime
# column, `get ike cookies` without its lifetime column.
sa_view() { gw_cli 1 get sa | awk '{ $6 = ""; print }'; }
cookie_view() { gw_cli 1 get ike cookies | awk '/established|negotiating/ { $9 = ""; print }'; }
same_as_before() { # same_as_before: within 10 s, get sa and cookies as saved
    local _
    for _ in $(seq 100); do
        [ "$(sa_view 2>/dev/null)" = "$SA_BEFORE" ] && [ "$(cookie_view 2>/dev/null)" = "$COOKIES_BEFORE" ] &&
            return 0
        sleep 0.1
    done
    log "    get sa before:"
    echo "$SA_BEFORE" | sed 's/^/      /' >&2
    log "    get sa after:"
    sa_view 2>&1 | sed 's/^/      /' >&2
    log "    cookies before: $COOKIES_BEFORE"
    log "    cookies after:  $(cookie_view 2>&1)"
    return 1
}

first_ping() { # first_ping FROM DST: answered (held while IKE ran)
    nsx "$1" ping -c 1 -W 8 "$2" >/dev/null 2>&1 && return 0
    gw_diag
    return 1
}
steady_start() {
    local n=$((STEADY_SECS * 50))
    nsx_bg h11 ping -q -i 0.02 -c "$n" -w $((STEADY_SECS + 15)) 10.2.1.10 >"$WORK/steady-11.out" 2>&1
    STEADY=($!)
    nsx_bg h12 ping -q -i 0.02 -c "$n" -w $((STEADY_SECS + 15)) 10.2.2.10 >"$WORK/steady-22.out" 2>&1
    STEADY+=($!)
}
steady_done() {
    local p
    for p in "${STEADY[@]}"; do wait "$p" || true; done
    STEADY=()
    for p in 11 22; do
        log "    pair $p: $(grep -o '[0-9]* packets transmitted.*loss' "$WORK/steady-$p.out")"
        grep -q " 0% packet loss" "$WORK/steady-$p.out" || return 1
    done
}
# wait_log FILE PATTERN SECONDS: PATTERN appears in FILE in time.
wait_log() {
    local _
    for _ in $(seq $(($3 * 10))); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
    return 1
}
# no_renegotiation LOG: every child SA the new controld brought up was a
# rekey of a resumed one, and it asked for none on demand.
no_renegotiation() {
    local up rekeyed
    up=$(grep -c "child SA up" "$1")
    rekeyed=$(grep -c "rekeyed: child SA" "$1")
    log "    after the restart: $up child SA(s) up, $rekeyed of them rekeys"
    [ "$up" = "$rekeyed" ] && ! grep -q "acquire: .*negotiating" "$1"
}
# informational FROM: ISAKMP informational messages (DPD here: nothing
# else is due) from FROM in the WAN capture.
informational() {
    tcpdump -r "$WORK/wan.pcap" -n 2>/dev/null | grep -E "^[0-9:.]+ IP $1\.(500|4500) >" | grep -c "inf\[E\]" || true
}
swan_log_since() { # swan_log_since LINE PATTERN SECONDS: in charon.log after LINE, in time
    local _
    for _ in $(seq $(($3 * 10))); do
        tail -n +"$1" "$SWAN_DIR/charon.log" | grep -q "$2" && return 0
        sleep 0.1
    done
    return 1
}
no_line() { # no_line PATTERN FILE...: no line of the FILEs matches
    local pat=$1
    shift
    ! grep -hE "$pat" "$@" >&2
}

# run PEER
run() {
    local peer=$1 newlog before_dpd
    WORK=$TOP/$peer
    mkdir -p "$WORK"
    log "=== peer $peer: child SAs 40 s, ISAKMP SA 60 s, DPD; controld of gw1 killed $KILL_AT s into $STEADY_SECS s of pings"
    topo_up "rs$$"
    gw_config 1 "second 40" 60 >"$WORK/gw1.conf"
    # Only the two pairs the pings use.
    sed -i -e '/proxy-id local-ip 10.1.1.0\/24 remote-ip 10.2.2.0/d' \
        -e '/proxy-id local-ip 10.1.2.0\/24 remote-ip 10.2.1.0/d' "$WORK/gw1.conf"
    if [ "$peer" = esprit ]; then
        echo 'set ike gateway "test" dpd-liveness interval 2 retry 3' >>"$WORK/gw1.conf"
        gw_config 2 "second 40" 60 >"$WORK/gw2.conf"
        sed -i -e '/proxy-id local-ip 10.2.1.0\/24 remote-ip 10.1.2.0/d' \
            -e '/proxy-id local-ip 10.2.2.0\/24 remote-ip 10.1.1.0/d' "$WORK/gw2.conf"
        echo 'set ike gateway "test" dpd-liveness interval 2 retry 3' >>"$WORK/gw2.conf"
    else
        sed -i -e "s/preshare \"[^\"]*\"/preshare \"$PSK\"/" "$WORK/gw1.conf"
        # strongSwan probes after 1 s without hearing from esprit, esprit
        # after 3 s: once the pings stop, strongSwan's probe comes first.
        echo 'set ike gateway "test" dpd-liveness interval 3 retry 3' >>"$WORK/gw1.conf"
        # strongSwan's kernel-libipsec encapsulates ESP in UDP: NAT-T on.
        echo 'set ike gateway "test" nat-traversal' >>"$WORK/gw1.conf"
        nsx gw2 sysctl -qw net.ipv4.ip_forward=1
        nsx gw2 sysctl -qw net.ipv4.conf.all.rp_filter=0
        swan_start "$TOPO-gw2" "$WORK/swan" || die "charon did not start"
        write_swanctl >"$SWAN_DIR/swanctl.conf"
        swan_ctl --load-all --clear --noprompt --file "$SWAN_DIR/swanctl.conf" >"$WORK/swan-load.log" 2>&1 ||
            { cat "$WORK/swan-load.log" >&2; die "swanctl --load-all failed"; }
    fi
    chmod 600 "$WORK"/gw*.conf
    check "$peer: controld --check accepts gw1's configuration" "$BIN/controld" --check "$WORK/gw1.conf"
    gw_start 1
    [ "$peer" = esprit ] && gw_start 2
    topo_arp_warm
    nsx gw2 ping -c 1 -W 2 198.51.100.1 >/dev/null 2>&1 || true
    check "$peer: pair 11 up on demand" first_ping h11 10.2.1.10
    check "$peer: pair 22 up on demand" first_ping h12 10.2.2.10
    check "$peer: gw1 shows 4 SAs A/U" gw_active 1 4
    CD1=${GW_PIDS[1]}
    SA_BEFORE=$(sa_view)
    COOKIES_BEFORE=$(cookie_view)
    echo "$SA_BEFORE" | sed 's/^/    /' >&2
    check "$peer: ike.json and ike.journal are mode 0600 in a 0700 state directory" \
        bash -c "[ \"\$(stat -c %a '$WORK/state1/ike.json')\" = 600 ] && [ \"\$(stat -c %a '$WORK/state1/ike.journal')\" = 600 ] && [ \"\$(stat -c %a '$WORK/state1')\" = 700 ]"
    # The snapshot is written at start, before any exchange: what the
    # kill must not lose is in the journal (its records, keys included).
    check "$peer: the exchanges since controld started are in ike.journal" \
        bash -c "[ \"\$(stat -c %s '$WORK/state1/ike.journal')\" -gt 2000 ]"

    steady_start
    sleep "$KILL_AT"
    kill -9 "$CD1"
    wait "$CD1" 2>/dev/null
    log "    controld of gw1 (PID $CD1) killed with SIGKILL"
    newlog=$WORK/cd1-after.log
    nsx_bg inet tcpdump -n -i i1 -w "$WORK/wan.pcap" -U 'udp port 500 or udp port 4500' >/dev/null 2>&1
    CAPTURE=$!
    start_controld1 "$newlog"
    log "    controld of gw1 started again (PID $CD1)"
    [ "$peer" = strongswan ] && before_dpd=$(wc -l <"$SWAN_DIR/charon.log")
    check "$peer: the new controld resumed 1 ISAKMP SA and 2 child SA pairs from ike.json and ike.journal" \
        wait_log "$newlog" "IKE state: resumed 1 ISAKMP SA(s) and 2 child SA pair(s)" 5
    check "$peer: ... and adopted fastpathd's 4 SAs (0 installed, 0 removed)" \
        wait_log "$newlog" "fastpathd synchronised: .* 4 SA(s) adopted, 0 installed, 0 removed" 5
    check "$peer: get sa and get ike cookies as before the kill (SPIs, IDs, cookies)" same_as_before

    # DPD both ways after the restart (2 s; nothing else is due until the
    # child rekeys at 34 s).
    sleep 9
    kill "$CAPTURE" 2>/dev/null
    wait "$CAPTURE" 2>/dev/null
    CAPTURE=""
    local ours theirs
    ours=$(informational 198.51.100.1)
    theirs=$(informational 203.0.113.2)
    log "    informational messages in 9 s after the restart: gw1 $ours, peer $theirs"
    check "$peer: DPD after the restart: R-U-THERE and ACKs from each side (at least 2 in 9 s)" \
        test "$ours" -ge 2 -a "$theirs" -ge 2
    if [ "$peer" = strongswan ]; then
        check "$peer: strongSwan authenticated and answered the resumed controld's R-U-THERE" \
            swan_log_since "$before_dpd" 'generating INFORMATIONAL_V1 request .*N(DPD_ACK)' 1
    fi
    local logs=("$newlog")
    [ "$peer" = esprit ] && logs+=("$WORK/cd2.log")
    check "$peer: no peer declared dead, no ISAKMP SA down" no_line 'dead peer|phase 1 down' "${logs[@]}"

    check "$peer: $((STEADY_SECS * 50)) pings every 20 ms on each pair across the kill, the restart and the rekeys: none lost" \
        steady_done
    if [ "$peer" = strongswan ]; then
        # strongSwan probes only a peer it has not heard from (ESP
        # included): with the pings over, its R-U-THERE must be answered.
        check "$peer: with the pings over, strongSwan's own R-U-THERE is answered (DPD_ACK from esprit)" \
            swan_log_since "$before_dpd" 'parsed INFORMATIONAL_V1 request .*N(DPD_ACK)' 10
    fi
    check "$peer: both child SAs rekeyed by the resumed controld (make-before-break)" \
        test "$(grep -c 'rekeyed: child SA' "$newlog")" -ge 2
    check "$peer: the ISAKMP SA rekeyed by the resumed controld (phase 1 before its 60 s)" \
        grep -q "phase 1 rekeyed" "$newlog"
    check "$peer: the resumed controld deleted both superseded pairs with the peer (Delete)" \
        test "$(grep -c 'child SA down .*: deleted by us' "$newlog")" -ge 2
    if [ "$peer" = esprit ]; then
        # On the Delete, or at the old pair's lifetime end if that came
        # first (a pair rekeyed late in its life is deleted at its expiry).
        check "$peer: ... and the peer removed its copies of both" \
            test "$(grep -c 'child SA down .*: deleted by' "$WORK/cd2.log")" -ge 2
    fi
    check "$peer: no renegotiation (every child SA up after the restart is a rekey)" no_renegotiation "$newlog"
    check "$peer: fastpathd dropped no ESP for an unknown SPI or as a replay" \
        bash -c "! '$BIN/esprit' --socket '$WORK/cd1.sock' get counter | grep -E 'esp-unknown-spi|replay-'"
    # A superseded pair may still reach its hard lifetime in fastpathd on
    # a busy machine (controld retires it 2 s before); the ping and
    # renegotiation checks prove every pair was replaced before that.
    check "$peer: no Quick Mode failed, no SA expired unreplaced" \
        bash -c "! grep -E 'Quick Mode failed|lifetime ran out' '$newlog'"
    check "$peer: nothing secret in the logs" \
        bash -c "! grep -F -e '$PSK' -e '#ABC123' '$WORK/cd1.log' '$newlog'"
    grep -E "IKE state|synchronised|rekey|phase 1|child SA (up|down)|failed|error" "$newlog" | sed 's/^/    /' >&2 || true
    gw_stop
    swan_stop
    topo_down
    WORK=$TOP
}

# strongSwan on gw2: IKEv1 Main Mode, the two pairs, long lifetimes (esprit
# rekeys), DPD every 2 s.
write_swanctl() {
    local p
    cat <<EOC
connections {
  esprit {
    version = 1
    local_addrs = 203.0.113.2
    remote_addrs = 198.51.100.1
    proposals = aes128-sha1-modp2048
    aggressive = no
    dpd_delay = 1s
    keyingtries = 1
    local  { auth = psk
             id = 203.0.113.2 }
    remote { auth = psk
             id = 198.51.100.1 }
    children {
EOC
    for p in 11 22; do
        cat <<EOC
      p$p { local_ts = 10.2.${p:1:1}.0/24
            remote_ts = 10.1.${p:0:1}.0/24
            mode = tunnel
            esp_proposals = aes128gcm16
            life_time = 66m
            rekey_time = 60m
            start_action = none }
EOC
    done
    cat <<EOC
    }
  }
}
secrets { ike-esprit { id-a = 198.51.100.1
                       id-b = 203.0.113.2
                       secret = "$PSK" } }
EOC
}

for peer in $PEERS; do run "$peer"; done
summary
