#!/usr/bin/env bash
# The data plane enforces hard lifetimes itself. Two esprit
# gateways (fastpathd + controld each, the seed topology) negotiate pair 11
# with IKE; then gw1's controld is killed with -9 and gw1's fastpathd is on
# its own:
#  - seconds: child SAs of "second 20". Traffic keeps flowing on the
#    installed SAs until their hard lifetime; at 20 s fastpathd removes
#    both SAs of the pair (fpctl dump, its log, its counter
#    sa-hard-expired-seconds); the next packets from h11 are dropped and
#    counted (held then expired, or hold-queue-full) behind a new acquire
#    (the proxy-ID is back to "no SA"); ESP captured from gw2 before the
#    expiry and replayed by scapy afterwards is dropped and counted as
#    esp-unknown-spi, N of N;
#  - bytes: child SAs of "kbyte 50". Traffic past 50 KB ends the SAs:
#    fastpathd removes them (sa-hard-expired-bytes) and what follows is
#    dropped and counted the same way;
#  - a worker that panics, or stops polling, takes fastpathd down with one
#    log line and a non-zero exit (XDP detached, socket gone): played by a
#    build with the `fault-injection` feature (ESPRIT_FASTPATHD_FAULT),
#    which release builds do not have.
#
#   flock /tmp/esprit-netns.lock bash scripts/tests/attacks/dp-lifetime.sh
# Needs root; builds the binaries (debug) if missing. Ends with
# "N passed, M failed" and exits non-zero on a failure.
set -uo pipefail
ESPRIT_SCRIPT=dp-lifetime
source "$(dirname "$0")/../../lib/common.sh"
source "$ESPRIT_ROOT/scripts/lib/testlib.sh"
source "$ESPRIT_ROOT/scripts/lib/topo.sh"
source "$ESPRIT_ROOT/scripts/lib/gateway.sh"
need_root
apt_install "${ESPRIT_TEST_PACKAGES[@]}"
esprit_bin_dir
PY=/usr/bin/python3

WORK=$(mktemp -d /tmp/esprit-dpl.XXXXXX)
EXTRA=()
cleanup() {
    local p
    gw_stop
    for p in "${EXTRA[@]}"; do kill "$p" 2>/dev/null || true; done
    ip netns del "dpl$$-wd" 2>/dev/null || true
    topo_down
    if [ -n "${ESPRIT_KEEP:-}" ]; then log "logs kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
watchdog 400

fpctl1() { "$BIN/fpctl" --socket "$WORK/fp1.sock" "$@"; }
# counter NAME: gw1's counter NAME summed over workers (a worker field, a
# drop reason, or one of fastpathd's own under "daemon").
counter() {
    fpctl1 request '{"type":"stats"}' | $PY -c '
import json, sys
s, k = json.load(sys.stdin), sys.argv[1]
n = sum(w.get(k, 0) for w in s["workers"]) + sum(v for w in s["workers"] for r, v in w["drops"] if r == k)
print(n + sum(v for r, v in s.get("daemon", []) if r == k))' "$1"
}
# pair11_sas: gw1's installed SAs of pair 11, "id:direction:spi" per line.
pair11_sas() {
    fpctl1 request '{"type":"dump"}' | $PY -c '
import json, sys
for i, d, spi, vpn, pid in json.load(sys.stdin)["sas"]:
    if "local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24" in pid:
        print(f"{i}:{d}:{spi}")'
}
# dropped_after_expiry TAG: 10 pings from h11 on pair 11 get no answer; every
# one is counted (held, then expired, or refused by a full hold queue), and
# the proxy-ID asks for an SA again.
dropped_after_expiry() {
    local tag=$1 acq0 held0 full0 acq1 held1 full1
    acq0=$(counter acquires) held0=$(counter held) full0=$(counter hold-queue-full)
    if nsx h11 ping -q -c 10 -i 0.2 -W 1 10.2.1.10 >"$RUN/after.out" 2>&1; then
        log "    pings answered after the expiry"
        return 1
    fi
    acq1=$(counter acquires) held1=$(counter held) full1=$(counter hold-queue-full)
    log "    $tag: after expiry 10 pings: held +$((held1 - held0)), hold-queue-full +$((full1 - full0)), acquires +$((acq1 - acq0))"
    grep -q " 0 received" "$RUN/after.out" && [ $((held1 - held0 + full1 - full0)) -eq 10 ] && [ $((acq1 - acq0)) -ge 1 ]
}

# run NAME P2_LIFE
run() {
    local name=$1 life=$2
    RUN=$WORK/$name
    mkdir -p "$RUN"
    local WORK_SAVED=$WORK
    WORK=$RUN
    log "=== $name: child SAs \"$life\""
    topo_up "dpl$$"
    for g in 1 2; do gw_config "$g" "$life" 28800 >"$RUN/gw$g.conf"; done
    gw_start 1
    gw_start 2
    topo_arp_warm
    check "$name: pair 11 up on demand" nsx h11 ping -q -c 1 -W 8 10.2.1.10 >/dev/null
    local t_up=$SECONDS
    # The SAs are installed once traffic flows; both directions of pair 11.
    local sas="" _
    for _ in $(seq 50); do
        sas=$(pair11_sas)
        [ "$(echo "$sas" | grep -c .)" -ge 2 ] && break
        sleep 0.1
    done
    log "    gw1's SAs of pair 11: $(echo $sas)"
    check "$name: gw1 holds pair 11's inbound and outbound SA" \
        bash -c "echo '$sas' | grep -q ':inbound:' && echo '$sas' | grep -q ':outbound:'"
    local in_spi
    in_spi=$(echo "$sas" | awk -F: '$2 == "inbound" { print $3; exit }')

    # ESP from gw2 to gw1 on the wire, for the replay after the expiry.
    nsx_bg inet tcpdump --immediate-mode -n -i i1 -w "$RUN/esp.pcap" -U "(esp or udp port 4500) and dst host 198.51.100.1" >"$RUN/tcpdump.log" 2>&1
    local dump=$!
    EXTRA+=("$dump")
    for _ in $(seq 50); do [ -s "$RUN/esp.pcap" ] && break; sleep 0.1; done

    # controld of gw1 is gone for good.
    kill -9 "${GW_PIDS[1]}"
    wait "${GW_PIDS[1]}" 2>/dev/null
    log "    gw1's controld killed with -9"
    check "$name: traffic still flows on the installed SAs without controld" \
        bash -c "ip netns exec $TOPO-h11 ping -q -c 5 -i 0.2 -w 5 10.2.1.10 >/dev/null"
    sleep 0.3 # the last replies reach the capture
    kill "$dump" 2>/dev/null
    wait "$dump" 2>/dev/null
    log "    captured $(tcpdump -n -r "$RUN/esp.pcap" 2>/dev/null | wc -l) ESP packets from gw2 (for SPI $(printf '0x%08x' "$in_spi"))"

    if [ "$name" = seconds ]; then
        # Removed at 20 s from the install: not before 19 s, by 23 s.
        local gone="" early=0
        while [ $((SECONDS - t_up)) -lt 30 ]; do
            if [ -z "$(pair11_sas)" ]; then gone=$((SECONDS - t_up)); break; fi
            sleep 0.2
        done
        log "    pair 11's SAs gone from gw1 ${gone:-never} s after they came up"
        check "$name: fastpathd removed both SAs at their hard lifetime (${gone:-never} s of 20)" \
            test -n "$gone" -a "${gone:-0}" -ge 19 -a "${gone:-99}" -le 23
        check "$name: counted as sa-hard-expired-seconds" test "$(counter sa-hard-expired-seconds)" -ge 2
        check "$name: fastpathd logged it" grep -q "reached its hard lifetime in seconds: removed" "$RUN/fp1.log"
    else
        # 1000-byte pings past 50 KB: the SAs end on their volume.
        nsx h11 ping -q -c 60 -i 0.02 -s 1000 -W 1 10.2.1.10 >"$RUN/volume.out" 2>&1
        log "    $(grep -o '[0-9]* packets transmitted.*loss' "$RUN/volume.out")"
        local _n
        for _n in $(seq 30); do [ -z "$(pair11_sas | grep ':outbound:')" ] && break; sleep 0.1; done
        check "$name: fastpathd removed the outbound SA past 50 KB" test -z "$(pair11_sas | grep ':outbound:')"
        check "$name: counted as sa-hard-expired-bytes" test "$(counter sa-hard-expired-bytes)" -ge 1
        check "$name: fastpathd logged it" grep -q "reached its hard lifetime (bytes): removed" "$RUN/fp1.log"
    fi
    check "$name: later traffic dropped and counted, a new acquire made" dropped_after_expiry "$name"

    if [ "$name" = seconds ]; then
        # Replay what gw2 sent before: the SPI is no more.
        local unk0 unk1 sent
        unk0=$(counter esp-unknown-spi)
        cat >"$RUN/replay.py" <<'PY'
import sys
from scapy.all import rdpcap, sendp, IP, UDP

def spi(p):
    # ESP (protocol 50) or ESP-in-UDP (RFC 3948: a non-zero first word).
    if IP not in p:
        return None
    if p[IP].proto == 50:
        raw = bytes(p[IP].payload)
    elif UDP in p and p[UDP].dport == 4500:
        raw = bytes(p[UDP].payload)
    else:
        return None
    return int.from_bytes(raw[:4], "big") if len(raw) >= 8 else None

pkts = [p for p in rdpcap(sys.argv[1]) if spi(p) == int(sys.argv[2])]
sendp(pkts, iface="i1", verbose=False)
print(len(pkts))
PY
        sent=$(nsx inet $PY "$RUN/replay.py" "$RUN/esp.pcap" "$in_spi" 2>"$RUN/replay.err")
        sleep 0.5
        unk1=$(counter esp-unknown-spi)
        log "    replayed $sent ESP packets: esp-unknown-spi +$((unk1 - unk0))"
        check "$name: replayed ESP of the expired SA: $sent of $sent dropped as esp-unknown-spi" \
            test "${sent:-0}" -gt 0 -a "$((unk1 - unk0))" -eq "${sent:-0}"
    fi
    gw_stop
    topo_down
    WORK=$WORK_SAVED
}

# watchdog KIND LINE: a fault build's worker 0 plays KIND 1.5 s after its
# start; fastpathd must exit non-zero by itself, printing LINE once.
watchdog_case() {
    local kind=$1 want=$2 ns="dpl$$-wd" rc=0 t0 took n
    ip netns add "$ns"
    ip -n "$ns" link add wd0 type veth peer name wd1
    ip -n "$ns" link set wd0 up
    ip -n "$ns" link set wd1 up
    t0=$(date +%s%N)
    timeout -k 5 20 env ESPRIT_FASTPATHD_FAULT="$kind:0:1500" ip netns exec "$ns" "$FAULT_BIN" --port wd0 \
        --xdp-mode driver --socket "$WORK/wd.sock" --stall-timeout-ms 2000 >"$WORK/wd-$kind.log" 2>&1 || rc=$?
    took=$((($(date +%s%N) - t0) / 1000000))
    sed 's/^/    /' "$WORK/wd-$kind.log" >&2
    n=$(grep -cE "$want" "$WORK/wd-$kind.log")
    check "watchdog $kind: fastpathd exited by itself with status 1 (restarted by systemd): $rc, after $took ms" \
        test "$rc" -eq 1
    check "watchdog $kind: one line says why" test "$n" -eq 1
    check "watchdog $kind: nothing else logged after the start line" test "$(wc -l <"$WORK/wd-$kind.log")" -eq 2
    check "watchdog $kind: XDP program detached, control socket gone" \
        bash -c "! ip -n $ns link show wd0 | grep -q xdp && [ ! -e '$WORK/wd.sock' ]"
    ip netns del "$ns"
}
# The fault build is fastpathd's own crate with one more feature; the
# normal binary is rebuilt right after.
TARGET=$(esprit_target_dir)
FAULT_BIN=$WORK/fastpathd-fault
need_cargo
(cd "$ESPRIT_ROOT" && cargo build -q -p esprit-fastpathd --features fault-injection) \
    && cp "$TARGET/debug/fastpathd" "$FAULT_BIN" \
    && (cd "$ESPRIT_ROOT" && cargo build -q -p esprit-fastpathd) || die "fault-injection build failed"
watchdog_case panic "^fastpathd: worker 0 panicked \(injected fault: ESPRIT_FASTPATHD_FAULT=panic, at fastpath/fastpathd/src/fault.rs:[0-9]+\): exiting so that the service manager restarts fastpathd$"
watchdog_case stall "^fastpathd: worker 0 made no progress for 2[0-9]{3} ms: exiting so that the service manager restarts fastpathd$"

run seconds "second 20"
[ -n "${DPL_ONLY_SECONDS:-}" ] || run bytes "kbyte 50"

echo -n "dp-lifetime: "
summary
