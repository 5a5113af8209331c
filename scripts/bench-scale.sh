#!/usr/bin/env bash
# Scale, end to end: one VPN of N /32 proxy-IDs between two esprit
# gateways in the seed topology (scripts/lib/topo.sh), IKEv1 Main Mode
# once, then one Quick Mode (no PFS) per proxy-ID, each negotiated on
# demand by the generator's traffic:
#
#   h11 (pktgen tx, N destinations) -lan1- gw1 -wan0- inet -wan0- gw2 -lan1- h21 (pktgen rx)
#
# gw1 holds N proxy-IDs local-ip 10.1.1.10/32 remote-ip 10.2.64.1+k/32
# (k < N) and routes 10.2.64.0/18 into tunnel.1; gw2 mirrors them and
# routes 10.2.64.0/18 to h21. pktgen sends round-robin to the N
# destinations at ESPRIT_SCALE_RATE pps until every pair is up.
#
# Measured:
#  - time from the first acquire until all N pairs are up (the N-th
#    outbound SA gw1's controld installs, from its log; fastpathd's dump
#    confirms N), pairs per second overall and per tenth:
#    a flat per-tenth rate means the cost of one child does not grow with
#    the number already up;
#  - no acquire lost: all N came up without the generator stopping;
#  - every flow on its own SA: after bring-up, K packets to each
#    destination; every one of gw1's N outbound SAs and gw2's N inbound
#    SAs counted exactly K more packets (fastpathd's per-SA counters), and
#    the sink received all N * K;
#  - resident memory (VmRSS) of controld and fastpathd on both gateways,
#    before the traffic and with all pairs up, per pair.
#
#   scripts/bench-scale.sh          (root) N = 1000
#   scripts/bench-scale.sh --short  (root) N = 200, for scripts/test.sh: checks the
#                                   report holds every figure, not speed
#
# Environment: ESPRIT_SCALE_IKE (1, or 2 for IKEv2: IKE_SA_INIT and
# IKE_AUTH once, then one CREATE_CHILD_SA per proxy-ID), ESPRIT_SCALE_PFS
# (none; or a group word of set ike p2-proposal: group14 = modp2048,
# group19 = ecp256, group31 = curve25519), ESPRIT_SCALE_N (1000), ESPRIT_SCALE_RATE (pps offered while
# negotiating; default 4 per proxy-ID per second, at least 2000),
# ESPRIT_SCALE_K (4), ESPRIT_SCALE_LIMIT (seconds for the bring-up; 300),
# ESPRIT_SCALE_OUT (report folder; bench/results/scale), ESPRIT_BIN
# (directory with controld, fastpathd, esprit, fpctl, pktgen; built with
# --profile bench when absent). Report: $OUT/report.md and one JSON line
# in $OUT/result.json.
set -euo pipefail
ESPRIT_SCRIPT=bench-scale
source "$(dirname "$0")/lib/common.sh"
source "$ESPRIT_ROOT/scripts/lib/topo.sh"
source "$ESPRIT_ROOT/scripts/lib/gateway.sh"
need_root
apt_install "${ESPRIT_TEST_PACKAGES[@]}"

N=${ESPRIT_SCALE_N:-1000}
OUT=${ESPRIT_SCALE_OUT:-$ESPRIT_ROOT/bench/results/scale}
SHORT=
case "${1:-}" in
"") ;;
--short)
    SHORT=1
    N=${ESPRIT_SCALE_N:-200}
    OUT=${ESPRIT_SCALE_OUT:-$ESPRIT_ROOT/bench/results/scale-short}
    ;;
*) die "usage: $0 [--short]" ;;
esac
[[ "$N" =~ ^[0-9]+$ ]] && [ "$N" -ge 1 ] && [ "$N" -le 16000 ] || die "ESPRIT_SCALE_N=$N: 1 ..= 16000 (10.2.64.0/18)"
RATE=${ESPRIT_SCALE_RATE:-$((N * 4 > 2000 ? N * 4 : 2000))}
IKE=${ESPRIT_SCALE_IKE:-1}
PFS=${ESPRIT_SCALE_PFS:-no-pfs}
case "$PFS" in
no-pfs | group14 | group19 | group20 | group15 | group5 | group31) ;;
*) die "ESPRIT_SCALE_PFS=$PFS: no-pfs or groupN" ;;
esac
case "$IKE" in
1) GATEWAY_HEAD='set ike gateway "scale"' MODE=' Main' IKE_WORDS="IKEv1 Main Mode PSK group 14, one Quick Mode per proxy-ID" ;;
2) GATEWAY_HEAD='set ike gateway ikev2 "scale"' MODE='' IKE_WORDS="IKEv2 PSK group 14, one CREATE_CHILD_SA per proxy-ID" ;;
*) die "ESPRIT_SCALE_IKE=$IKE: 1 or 2" ;;
esac
K=${ESPRIT_SCALE_K:-4}
LIMIT=${ESPRIT_SCALE_LIMIT:-300}

if [ -z "${ESPRIT_BIN:-}" ]; then
    need_cargo
    TGT=$(esprit_target_dir)
    ESPRIT_BIN=$TGT/release # the bench profile's binaries land in release/
    log "building controld, esprit, fastpathd, fpctl and pktgen (--profile bench) into $TGT"
    (cd "$ESPRIT_ROOT" && CARGO_TARGET_DIR=$TGT cargo build -q --locked --profile bench \
        -p esprit-controld -p esprit-fastpathd -p esprit-bench --bin pktgen --bin controld --bin esprit \
        --bin fastpathd --bin fpctl) || die "build failed"
fi
BIN=$ESPRIT_BIN
for b in controld esprit fastpathd fpctl pktgen; do [ -x "$BIN/$b" ] || die "$BIN/$b missing"; done

WORK=$(mktemp -d /tmp/esprit-scale.XXXXXX)
PIDS=()
cleanup() {
    local p
    trap - EXIT INT TERM
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    gw_stop
    topo_down
    if [ -n "${ESPRIT_KEEP:-}" ]; then log "work files kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# ------------------------------------------------------------ configuration

# The k-th proxy-ID's remote (gw1) / local (gw2) host: 10.2.64.1 + k.
hosts() { python3 -c '
import ipaddress, sys
base = int(ipaddress.IPv4Address("10.2.64.1"))
for k in range(int(sys.argv[1])):
    print(ipaddress.IPv4Address(base + k))' "$N"; }

# gateway_config G: gateway G's configuration, in ScreenOS's words.
gateway_config() {
    local g=$1 other wan peer
    other=$((3 - g))
    wan=$(gw_wan "$g")
    peer=$(gw_wan "$other")
    cat <<EOF
set interface ethernet0/1 zone Trust
set interface ethernet0/1 ip 10.$g.1.1/24
set interface ethernet0/1 port lan1
set interface ethernet0/2 zone Untrust
set interface ethernet0/2 ip $wan/24
set interface ethernet0/2 port wan0
set route 0.0.0.0/0 interface ethernet0/2 gateway ${wan%.*}.254
set ike p1-proposal "p1" preshare group14 esp aes128 sha-1 second 28800
set ike p2-proposal "p2" $PFS esp aes128gcm second 3600
$GATEWAY_HEAD address $peer$MODE outgoing-interface "ethernet0/2" preshare "scale-bench-$$-key" proposal "p1"
set vpn "scale" gateway "scale" no-replay tunnel idletime 0 proposal "p2"
set vpn "scale" id 0x1 bind interface tunnel.1
set vpn "scale" proxy-id check
set interface "tunnel.1" zone "Untrust"
set interface tunnel.1 ip unnumbered interface ethernet0/2
EOF
    if [ "$g" = 1 ]; then
        hosts | sed 's|.*|set vpn scale proxy-id local-ip 10.1.1.10/32 remote-ip &/32 any|'
        echo "set route 10.2.64.0/18 interface tunnel.1"
    else
        hosts | sed 's|.*|set vpn scale proxy-id local-ip &/32 remote-ip 10.1.1.10/32 any|'
        echo "set route 10.1.1.0/24 interface tunnel.1"
        echo "set route 10.2.64.0/18 interface ethernet0/1 gateway 10.2.1.10"
    fi
}

# --------------------------------------------------------------- helpers

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
# sas G DIRECTION: how many SAs of DIRECTION gateway G's fastpathd holds
# (its dump: no worker is asked). controld's own "child SA up" lines are
# not counted: its IKE log limiter holds lines back at this rate.
sas() {
    "$BIN/fpctl" --socket "$WORK/fp$1.sock" request '{"type":"dump"}' | python3 -c '
import json, sys
reply = json.load(sys.stdin)
dump = reply.get("dump", reply)
print(sum(1 for sa in dump["sas"] if sa[1] == sys.argv[1]))' "$2"
}
# Pairs up: gw1's controld logs each outbound SA it installs (not an IKE
# line, so never held back), with its time since controld started.
pairs_up() { grep -c "fastpathd: add-sa .*(Outbound)" "$WORK/cd1.log" || true; }
# sa_packets G DIRECTION: "SPI packets" of gateway G's SAs of DIRECTION,
# from fastpathd's counters.
sa_packets() {
    "$BIN/fpctl" --socket "$WORK/fp$1.sock" request '{"type":"stats"}' | python3 -c '
import json, sys
reply = json.load(sys.stdin)
stats = reply.get("stats", reply)
for sa in stats["sas"]:
    if sa.get("direction") == sys.argv[1]:
        print(sa["spi"], sa["packets"])' "$2" | sort
}

# ------------------------------------------------------------------- run

mkdir -p "$OUT"
topo_up "esc$$"
mac() { ip netns exec "$TOPO-$1" cat "/sys/class/net/$2/address"; }
for g in 1 2; do gateway_config "$g" >"$WORK/gw$g.conf"; done
"$BIN/controld" --check "$WORK/gw1.conf" >&2 || die "controld --check refused gw1's configuration"
for g in 1 2; do gw_start "$g"; done
# gw_start's PIDs: fastpathd and controld of gw1, then of gw2.
read -r FP1 CD1 FP2 CD2 <<<"${GW_PIDS[*]}"
topo_arp_warm
log "gateways up: $N proxy-IDs each; offering $RATE pps to $N destinations"
rss0=("$(rss_kb "$CD1")" "$(rss_kb "$FP1")" "$(rss_kb "$CD2")" "$(rss_kb "$FP2")")

# Bring-up: the generator runs until every pair is up (or the limit).
nsx_bg h11 "$BIN/pktgen" tx --port eth0 --src-mac "$(mac h11 eth0)" --dst-mac "$(mac gw1 lan1)" \
    --src 10.1.1.10 --dst 10.2.64.1 --dst-count "$N" --rate "$RATE" --seconds "$LIMIT" \
    >"$WORK/tx-bringup.json" 2>"$WORK/tx-bringup.err"
GEN=$!
PIDS+=("$GEN")
up=0
# The times reported come from controld's log, not from this loop: it
# only decides when to stop the generator, so it looks four times a
# second (each look reads the whole log, which grows with N: at 20 a
# second it took some 8 % of the box from the gateways it measures).
while :; do
    up=$(pairs_up)
    [ "$up" -ge "$N" ] && break
    kill -0 "$GEN" 2>/dev/null || break
    sleep 0.25
done
kill -TERM "$GEN" 2>/dev/null || true
wait "$GEN" 2>/dev/null || true
if [ "$up" -lt "$N" ]; then
    for g in 1 2; do
        log "gw$g: $(sas "$g" outbound) outbound and $(sas "$g" inbound) inbound SA(s); its counters, UDP errors and last IKE lines:"
        gw_cli "$g" get counter 2>&1 | grep -v ' 0$' | sed 's/^/    /' >&2 || true
        nsx "gw$g" nstat -az 2>/dev/null | grep -E "UdpRcvbufErrors|UdpInErrors|UdpSndbufErrors" | sed 's/^/    /' >&2 || true
        grep -vE "child SA up|acquire|add-sa|install SAs" "$WORK/cd$g.log" | tail -n 15 | sed 's/^/    /' >&2 || true
    done
    die "only $up of $N pairs up within ${LIMIT} s"
fi
# From controld's log: t0 is the first acquire (the first packet), then
# the time the k-th outbound SA went to fastpathd, per tenth of N.
read -r t_all tenth_rates < <(python3 - "$WORK/cd1.log" "$N" "$ESPRIT_ROOT/scripts/lib" <<'EOF'
import re, sys
sys.path.insert(0, sys.argv[3])
from tenths import print_bring_up
lines = (re.match(r"controld \[\s*([0-9.]+)\] (.*)", line) for line in open(sys.argv[1]))
print_bring_up(((float(m.group(1)), m.group(2)) for m in lines if m),
               lambda text: text.startswith("acquire:"),
               lambda text: re.match(r"fastpathd: add-sa \S+ spi \S+ \(Outbound\)", text),
               int(sys.argv[2]))
EOF
)
[ "$(sas 1 outbound)" = "$N" ] || die "gw1's fastpathd does not hold $N outbound SAs"
log "all $N pairs up in $t_all ms"
# Acquires controld answered: fastpathd repeats one every 500 ms while its
# proxy-ID waits; the first of each is logged, the repeats are summed up
# in IKE's summary lines ("N repeated acquire(s) ..."). The log lines they
# cost are counted beside them.
acquire_lines=$(grep -c "^controld \[[ 0-9.]*\] acquire:" "$WORK/cd1.log" || true)
acquires=$(python3 - "$WORK/cd1.log" <<'EOF'
import re, sys
n = 0
for line in open(sys.argv[1]):
    if re.search(r"\] acquire: gateway .*: (negotiating|already negotiating)", line):
        n += 1
    m = re.search(r"(\d+) repeated acquire\(s\)", line)
    if m:
        n += int(m.group(1))
print(n)
EOF
)
rss1=("$(rss_kb "$CD1")" "$(rss_kb "$FP1")" "$(rss_kb "$CD2")" "$(rss_kb "$FP2")")

# Every flow on its own SA: K packets to each destination, counted per SA.
sa_packets 1 outbound >"$WORK/out-before"
sa_packets 2 inbound >"$WORK/in-before"
nsx_bg h21 timeout 60 "$BIN/pktgen" rx --port eth0 --seconds 50 --idle-exit-ms 1000 \
    >"$WORK/rx.json" 2>"$WORK/rx.err"
SINK=$!
PIDS+=("$SINK")
for _ in $(seq 100); do nsx h21 ip link show eth0 | grep -q xdp && break; sleep 0.05; done
vrate=$((RATE < 50000 ? RATE : 50000))
nsx h11 timeout 60 "$BIN/pktgen" tx --port eth0 --src-mac "$(mac h11 eth0)" --dst-mac "$(mac gw1 lan1)" \
    --src 10.1.1.10 --dst 10.2.64.1 --dst-count "$N" --rate "$vrate" --count $((N * K)) \
    --seconds 50 >"$WORK/tx-verify.json" 2>"$WORK/tx-verify.err" ||
    { cat "$WORK/tx-verify.err" >&2; die "generator failed"; }
wait "$SINK" || { cat "$WORK/rx.err" >&2; die "sink failed"; }
sent=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["packets"])' "$WORK/tx-verify.json")
received=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["good"])' "$WORK/rx.json")
sa_packets 1 outbound >"$WORK/out-after"
sa_packets 2 inbound >"$WORK/in-after"
# per_sa BEFORE AFTER: "SAs each_got_K other" for the SAs in AFTER.
per_sa() {
    python3 - "$1" "$2" "$K" <<'EOF'
import sys
def load(p):
    return {int(s): int(n) for s, n in (l.split() for l in open(p) if l.strip())}
before, after, k = load(sys.argv[1]), load(sys.argv[2]), int(sys.argv[3])
exact = sum(1 for spi, n in after.items() if n - before.get(spi, 0) == k)
print(len(after), exact)
EOF
}
read -r out_sas out_exact < <(per_sa "$WORK/out-before" "$WORK/out-after")
read -r in_sas in_exact < <(per_sa "$WORK/in-before" "$WORK/in-after")

# ---------------------------------------------------------------- report

per_pair() { python3 -c "print(round(($2 - $1) / $N, 2))" "$1" "$2"; }
rate_all=$(python3 -c "print(round($N / ($t_all / 1000), 1))")
read -r -a tr <<<"$tenth_rates"
flat=$(python3 -c "print(round(${tr[9]} / ${tr[0]}, 2))")
{
    echo "# esprit scale: $N proxy-IDs negotiated end to end"
    echo
    echo "\`scripts/bench-scale.sh${SHORT:+ --short}\` on $(date -u '+%Y-%m-%d %H:%M') UTC, $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end; binaries from $BIN; $IKE_WORDS (p2-proposal $PFS), ESP AES-128-GCM; $RATE pps offered round-robin to $N destinations while negotiating."
    echo
    echo "| proxy-IDs | all up after | pairs/s overall | pairs/s first tenth | pairs/s last tenth | last / first tenth | acquires answered | acquire log lines |"
    echo "|---:|---:|---:|---:|---:|---:|---:|---:|"
    echo "| $N | $t_all ms | $rate_all | ${tr[0]} | ${tr[9]} | $flat | $acquires | $acquire_lines |"
    echo
    echo "Pairs per second in each tenth of the bring-up: ${tenth_rates}. (The first tenth includes Main Mode.)"
    echo
    echo "## Every flow on its own SA"
    echo
    echo "$K packets to each of the $N destinations: sent $sent, received $received by the sink; gw1: $out_exact of $out_sas outbound SAs counted exactly $K more; gw2: $in_exact of $in_sas inbound SAs counted exactly $K more."
    echo
    echo "## Resident memory (VmRSS)"
    echo
    echo "| process | before, KiB | $N pairs up, KiB | per pair, KiB |"
    echo "|---|---:|---:|---:|"
    echo "| gw1 controld | ${rss0[0]} | ${rss1[0]} | $(per_pair "${rss0[0]}" "${rss1[0]}") |"
    echo "| gw1 fastpathd | ${rss0[1]} | ${rss1[1]} | $(per_pair "${rss0[1]}" "${rss1[1]}") |"
    echo "| gw2 controld | ${rss0[2]} | ${rss1[2]} | $(per_pair "${rss0[2]}" "${rss1[2]}") |"
    echo "| gw2 fastpathd | ${rss0[3]} | ${rss1[3]} | $(per_pair "${rss0[3]}" "${rss1[3]}") |"
} >"$OUT/report.md"
python3 - "$OUT/result.json" <<EOF
import json, sys
json.dump({"ike": $IKE, "pfs": "$PFS", "proxy_ids": $N, "all_up_ms": $t_all, "pairs_per_s": $rate_all,
           "tenths_pairs_per_s": [float(x) for x in "$tenth_rates".split()],
           "acquires": $acquires, "acquire_log_lines": $acquire_lines, "sent": $sent, "received": $received,
           "outbound_sas": $out_sas, "outbound_exact": $out_exact,
           "inbound_sas": $in_sas, "inbound_exact": $in_exact,
           "rss_kib_before": [${rss0[0]}, ${rss0[1]}, ${rss0[2]}, ${rss0[3]}],
           "rss_kib_up": [${rss1[0]}, ${rss1[1]}, ${rss1[2]}, ${rss1[3]}]}, open(sys.argv[1], "w"))
EOF
cat "$OUT/report.md"

# What must hold, whatever the speed.
fail=0
[ "$out_sas" = "$N" ] && [ "$out_exact" = "$N" ] || { log "FAIL gw1: $out_exact of $out_sas outbound SAs (want $N) carried exactly $K packets"; fail=1; }
[ "$in_sas" = "$N" ] && [ "$in_exact" = "$N" ] || { log "FAIL gw2: $in_exact of $in_sas inbound SAs (want $N) carried exactly $K packets"; fail=1; }
[ "$received" = "$sent" ] && [ "$sent" = $((N * K)) ] || { log "FAIL sink: received $received of $sent (want $((N * K)))"; fail=1; }
[ "$fail" = 0 ] || exit 1
log "report: $OUT/report.md"
