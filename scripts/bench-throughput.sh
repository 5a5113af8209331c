#!/usr/bin/env bash
# Whole-system throughput of esprit against kernel IPv4 forwarding, in the
# seed topology (scripts/lib/topo.sh), with the AF_XDP generator and sink
# of bench/src/bin/pktgen.rs:
#
#   h11 (pktgen tx) -lan1- gw1 -wan0- inet -wan0- gw2 -lan1- h21 (pktgen rx)
#
# Paths, each at every size (IPv4/UDP 10.1.1.10 -> 10.2.1.10, pair 11's
# proxy-ID, --flows UDP source ports):
#   kernel-3hop   gw1, inet, gw2 forward in their kernels; sink in h21
#   kernel-1hop   gw1's kernel forwards; sink on inet's i1 (facing gw1)
#   esprit        fastpathd on gw1 (encrypt) and gw2 (decrypt), AES-128-GCM
#                 manual-key SAs; inet forwards ESP; sink in h21 checks it
#                 receives the original UDP (size, destination, sequence)
#   esprit-encrypt fastpathd on gw1 only does work; sink on inet's i1
#                 counts ESP (sequence numbers from the ESP header)
#   strongswan    strongSwan charon with kernel-libipsec (userspace ESP in
#                 UDP 4500, TUN ipsec0) on gw1 and gw2, IKEv2 PSK, one child
#                 10.1.1.0/24 <-> 10.2.1.0/24, ESP aes128gcm16, initiated
#                 with swanctl; gw1's and gw2's kernels forward into and out
#                 of ipsec0; inet forwards the ESP; sink in h21 as for esprit
#   strongswan-encrypt the same SA, gw1's charon only does work; sink on
#                 inet's i1 counts ESP, as for esprit-encrypt
# Ratios: esprit / kernel-3hop, esprit-encrypt / kernel-1hop, strongswan /
# kernel-3hop, strongswan-encrypt / kernel-1hop, and esprit / strongswan
# with esprit-encrypt / strongswan-encrypt (second table), same run.
#
#   scripts/bench-throughput.sh            (root; ~2 minutes) full blast, one table
#   scripts/bench-throughput.sh --report   (root; ~8 minutes) NDR/PDR search,
#       latency at 10/50/90 % of the NDR, CPU per packet, sizes 64 512 1400
#       imix: report.md and SVG plots in bench/results/throughput/
#   scripts/bench-throughput.sh --short    (root; < 90 s) the same for 64 B,
#       kernel-3hop and esprit, a 5-step search; checks the report and plots
#       exist and hold numbers (scripts/test.sh runs it)
#
# The search (bench/src/ndr.rs, asked through bench-report next) is RFC
# 2544 §26.1's throughput trial series as FD.io CSIT reports it: NDR
# (0 loss) and PDR (<= 0.1 % loss), bisecting the offered rate from the
# generator's full blast, ESPRIT_BENCH_TRIALS trials at most (8, the blast
# included) of ESPRIT_BENCH_SECONDS each (1 with --report), stopping early
# at ESPRIT_BENCH_PRECISION (0.05 of the rate). Then one trial with
# one-way latency at each of ESPRIT_BENCH_LOADS ("10 50 90") % of the NDR
# (of the PDR where the NDR is 0). ESPRIT_BENCH_SAS (1) is the number of SAs
# (proxy-IDs with one flow each) the esprit paths carry; only 1 today.
# ESPRIT_BENCH_OUT: the report's folder. ESPRIT_BENCH_ZC_IO_NS (30): the
# per-packet driver cost assumed by the zero-copy projection (bench-report).
# Environment: ESPRIT_BENCH_SECONDS (3) per run, ESPRIT_BENCH_SIZES
# ("64 1400"), ESPRIT_BENCH_FLOWS (16), ESPRIT_BENCH_BUSY_POLL (0: gateways
# nap when idle), ESPRIT_BENCH_GW_CORES ("0 1": gw1's and gw2's worker
# cores), ESPRIT_BENCH_TX_CPU / ESPRIT_BENCH_RX_CPU (pin generator / sink;
# unpinned by default), ESPRIT_BENCH_RATE (pps; default full blast),
# ESPRIT_BENCH_LATENCY=1 (one-way latency, best with a low RATE: the
# generator stamps one time per burst), ESPRIT_BENCH_RING (the gateways'
# --ring-size), ESPRIT_BENCH_PATHS (all six), ESPRIT_BIN (directory with
# pktgen, fastpathd, fpctl; built with --profile bench when absent),
# ESPRIT_BENCH_JSON (file to append the result lines to).
set -euo pipefail
ESPRIT_SCRIPT=bench-throughput
source "$(dirname "$0")/lib/common.sh"
source "$ESPRIT_ROOT/scripts/lib/topo.sh"
source "$ESPRIT_ROOT/scripts/lib/strongswan.sh"
need_root

MODE=blast
case "${1:-}" in
"") ;;
--report) MODE=report ;;
--short)
    MODE=report
    SHORT=1
    # Six trials: the full blast and five halvings, down to 1/32 of it,
    # where even debug builds on a loaded box find a lossless rate.
    : "${ESPRIT_BENCH_SIZES:=64}" "${ESPRIT_BENCH_PATHS:=kernel-3hop esprit}" "${ESPRIT_BENCH_TRIALS:=6}"
    : "${ESPRIT_BENCH_SECONDS:=0.5}" "${ESPRIT_BENCH_LIMIT:=85}" "${ESPRIT_BENCH_MB_ROUNDS:=30}"
    : "${ESPRIT_BENCH_OUT:=$ESPRIT_ROOT/bench/results/throughput-short}"
    ;;
*) die "usage: $0 [--report | --short]" ;;
esac
if [ "$MODE" = report ]; then
    : "${ESPRIT_BENCH_SECONDS:=1}" "${ESPRIT_BENCH_SIZES:=64 512 1400 imix}" "${ESPRIT_BENCH_LIMIT:=2400}"
fi
TRIALS=${ESPRIT_BENCH_TRIALS:-8}
PRECISION=${ESPRIT_BENCH_PRECISION:-0.05}
LOADS=${ESPRIT_BENCH_LOADS:-10 50 90}
SAS=${ESPRIT_BENCH_SAS:-1}
OUT=${ESPRIT_BENCH_OUT:-$ESPRIT_ROOT/bench/results/throughput}
[ "$SAS" = 1 ] || die "ESPRIT_BENCH_SAS=$SAS: only 1 SA is wired up so far"

SECS=${ESPRIT_BENCH_SECONDS:-3}
SECS_CEIL=$(python3 -c "import math, sys; print(math.ceil(float(sys.argv[1])))" "$SECS")
SIZES=${ESPRIT_BENCH_SIZES:-64 1400}
FLOWS=${ESPRIT_BENCH_FLOWS:-16}
BUSY=${ESPRIT_BENCH_BUSY_POLL:-0}
read -r GW1_CORE GW2_CORE <<<"${ESPRIT_BENCH_GW_CORES:-0 1}"
PATHS=${ESPRIT_BENCH_PATHS:-kernel-3hop kernel-1hop strongswan strongswan-encrypt esprit esprit-encrypt}
TX_CPU=${ESPRIT_BENCH_TX_CPU:-} # pin the generator / sink (taskset -c); default: unpinned
RX_CPU=${ESPRIT_BENCH_RX_CPU:-}
RATE=${ESPRIT_BENCH_RATE:-}     # pace the generator (pps); default: as fast as it can
LATENCY=${ESPRIT_BENCH_LATENCY:-0} # 1: one-way latency percentiles (use with a low RATE)
RING=${ESPRIT_BENCH_RING:-}        # fastpathd --ring-size; default: fastpathd's
LIMIT=${ESPRIT_BENCH_LIMIT:-240} # hard bound on the whole script, seconds
IDLE_MS=1000                     # the sink stops this long after the last frame
[ "$MODE" = report ] && IDLE_MS=300
CONF="python3 $ESPRIT_ROOT/scripts/lib/fpconf.py"

if [ -z "${ESPRIT_BIN:-}" ]; then
    need_cargo
    TGT=$(esprit_target_dir)
    # Cargo puts the `bench` profile's binaries in release/.
    ESPRIT_BIN=$TGT/release
    log "building pktgen, bench-report, microbench-report and fastpathd (--profile bench) into $TGT"
    (cd "$ESPRIT_ROOT" && CARGO_TARGET_DIR=$TGT cargo build -q --profile bench -p esprit-bench --bin pktgen \
        --bin bench-report --bin microbench-report \
        && CARGO_TARGET_DIR=$TGT cargo build -q --profile bench -p esprit-fastpathd) || die "build failed"
fi
BIN=$ESPRIT_BIN
for b in pktgen fastpathd fpctl; do [ -x "$BIN/$b" ] || die "$BIN/$b missing"; done
if [ "$MODE" = report ]; then
    for b in bench-report microbench-report; do [ -x "$BIN/$b" ] || die "$BIN/$b missing"; done
fi

LAT_FLAG=
[ "$LATENCY" = 1 ] && LAT_FLAG=--latency
# The current trial: its rate (empty: full blast), latency flag, kind
# (blast, search, latency) and load (% of the NDR, latency trials).
TRIAL_RATE=$RATE
TRIAL_LAT=$LAT_FLAG
KIND=blast
LOAD_PCT=0
WORK=$(mktemp -d /tmp/esprit-bench.XXXXXX)
PIDS=()
GW_PIDS=()
SWAN_PIDS=() # charons (strongswan path), stopped by PID
cleanup() {
    local p
    trap - EXIT INT TERM
    for p in "${PIDS[@]}" "${GW_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}" "${GW_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    for p in "${SWAN_PIDS[@]}"; do swan_stop_pid "$p"; done
    if [ -n "${WATCHDOG:-}" ]; then kill "$WATCHDOG" 2>/dev/null; wait "$WATCHDOG" 2>/dev/null; fi
    topo_down
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT
trap 'log "time limit (${LIMIT}s) reached or terminated"; exit 143' TERM
# Bound the whole run: the watchdog TERMs this shell, whose trap cleans up.
# It holds no output open, and takes its sleep with it when killed.
(
    trap 'kill "$nap" 2>/dev/null; exit 0' TERM
    sleep "$LIMIT" &
    nap=$!
    wait "$nap" && kill -TERM $$
) >/dev/null 2>&1 &
WATCHDOG=$!

if [ "$MODE" = report ]; then
    # The in-memory pipeline cost per packet, for the per-core projection;
    # before the topology, on a machine running nothing of ours. No
    # criterion results: the interleaved checks alone.
    log "microbench-report --interleaved (pipeline cost for the projection)"
    "$BIN/microbench-report" --interleaved --rounds "${ESPRIT_BENCH_MB_ROUNDS:-500}" \
        --criterion-dir "$WORK/no-criterion" >"$WORK/microbench.md" 2>"$WORK/microbench.err" ||
        { cat "$WORK/microbench.err" >&2; die "microbench-report failed"; }
fi
: >"$WORK/results.jsonl"

topo_up "ebt$$" 1
mac() { ip netns exec "$TOPO-$1" cat "/sys/class/net/$2/address"; }
H11_MAC=$(mac h11 eth0)
GW1_LAN_MAC=$(mac gw1 lan1)
log "topology $TOPO; mode $MODE; $SECS s per run, sizes $SIZES, $FLOWS flows, busy-poll=$BUSY, gateway cores $GW1_CORE/$GW2_CORE, rings ${RING:-default}, $(nproc) CPUs"

# ---------------------------------------------------------------- helpers

# sink NS IF ARGS...: starts pktgen rx in the background, waits until our
# XDP program is on IF, leaves its PID in SINK_PID.
sink() {
    local ns=$1 ifc=$2
    shift 2
    nsx_bg "$ns" timeout $((SECS_CEIL + 20)) ${RX_CPU:+taskset -c "$RX_CPU"} "$BIN/pktgen" rx --port "$ifc" --seconds $((SECS_CEIL + 15)) \
        --idle-exit-ms "$IDLE_MS" ${TRIAL_LAT} "$@" >"$WORK/rx.json" 2>"$WORK/rx.err"
    SINK_PID=$!
    PIDS+=("$SINK_PID")
    for _ in $(seq 100); do
        nsx "$ns" ip link show "$ifc" | grep -q xdp && return 0
        kill -0 "$SINK_PID" 2>/dev/null || break
        sleep 0.05
    done
    cat "$WORK/rx.err" >&2
    die "sink on $ns/$ifc did not start"
}

# generate SIZE: pktgen tx in h11 towards 10.2.1.10 via gw1, in the foreground.
generate() {
    nsx h11 timeout $((SECS_CEIL + 10)) ${TX_CPU:+taskset -c "$TX_CPU"} "$BIN/pktgen" tx --port eth0 --src-mac "$H11_MAC" --dst-mac "$GW1_LAN_MAC" \
        --src 10.1.1.10 --dst 10.2.1.10 --size "$1" --seconds "$SECS" --flows "$FLOWS" ${TRIAL_RATE:+--rate "$TRIAL_RATE"} ${TRIAL_LAT} \
        >"$WORK/tx.json" 2>"$WORK/tx.err" || { cat "$WORK/tx.err" >&2; die "generator failed"; }
}

# cpu_ticks PID: user and system CPU time of a process, all its threads,
# in clock ticks, as "USER SYS" (/proc/PID/stat fields 14 and 15; the name
# in field 2 has no spaces here). Softirq work the kernel does for it in
# other tasks' contexts (the forwarding into strongSwan's ipsec0, the
# receive side of a veth) is not in it.
cpu_ticks() { awk '{ print $14, $15 }' "/proc/$1/stat" 2>/dev/null || echo 0 0; }
# busy_ticks: all CPUs' non-idle time, in clock ticks (/proc/stat).
busy_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }
GW1_PID= # the process doing gw1's work on the current path (fastpathd or charon)

gw_stats() { # gw_stats G FILE
    "$BIN/fpctl" --socket "$WORK/gw$1.sock" request '{"type":"stats"}' >"$2" 2>/dev/null || echo '{}' >"$2"
}

# run_one PATH SIZE SINK_NS SINK_IF SINK_ARGS...: one measurement, one result line.
run_one() {
    local path=$1 size=$2 ns=$3 ifc=$4
    shift 4
    sink "$ns" "$ifc" "$@"
    local g
    for g in 1 2; do [ -S "$WORK/gw$g.sock" ] && gw_stats "$g" "$WORK/gw$g.before"; done
    [[ $path == strongswan* ]] && swan_counters "$WORK/swan.before"
    local user0=0 sys0=0 user1=0 sys1=0 busy0
    [ -n "$GW1_PID" ] && read -r user0 sys0 < <(cpu_ticks "$GW1_PID")
    busy0=$(busy_ticks)
    local t0=$EPOCHREALTIME
    generate "$size"
    local wall
    wall=$(python3 -c "import sys; print(float(sys.argv[2]) - float(sys.argv[1]))" "$t0" "$EPOCHREALTIME")
    [ -n "$GW1_PID" ] && read -r user1 sys1 < <(cpu_ticks "$GW1_PID")
    local gw_user=$((user1 - user0)) gw_sys=$((sys1 - sys0)) busy=$(($(busy_ticks) - busy0))
    wait "$SINK_PID" || { cat "$WORK/rx.err" >&2; die "sink failed"; }
    for g in 1 2; do [ -S "$WORK/gw$g.sock" ] && gw_stats "$g" "$WORK/gw$g.after"; done
    [[ $path == strongswan* ]] && swan_counters "$WORK/swan.after"
    sed 's/^/    /' "$WORK/tx.err" "$WORK/rx.err" >&2
    python3 - "$path" "$size" "$WORK" "$gw_user" "$gw_sys" "$busy" "$(getconf CLK_TCK)" "$KIND" "$LOAD_PCT" "$SAS" "$wall" \
        >>"$WORK/results.jsonl" <<'PY'
import json, os, sys
path, size, work = sys.argv[1], sys.argv[2], sys.argv[3]
gw_user, gw_sys, busy, tck = (int(a) for a in sys.argv[4:8])
kind, load_pct, sas, wall = sys.argv[8], int(sys.argv[9]), int(sys.argv[10]), float(sys.argv[11])
tx = json.load(open(f"{work}/tx.json"))
rx = json.load(open(f"{work}/rx.json"))
# CPU seconds over the generator's run: gw1's process (0 for the kernel
# paths) and all CPUs' busy time.
line = {"path": path, "size": size, "tx": tx, "rx": rx, "gw1_cpu_s": (gw_user + gw_sys) / tck,
        "gw1_user_s": gw_user / tck, "gw1_sys_s": gw_sys / tck, "busy_cpu_s": busy / tck,
        "ncpu": os.cpu_count() or 1, "kind": kind, "load_pct": load_pct, "sas": sas,
        # The CPU figures' interval: the generator's whole run, its set-up included.
        "wall_s": wall}
for g in (1, 2):
    b, a = f"{work}/gw{g}.before", f"{work}/gw{g}.after"
    if not (os.path.exists(b) and os.path.exists(a)):
        continue
    sb, sa = json.load(open(b)), json.load(open(a))
    def tot(s, k):
        return sum(w.get(k, 0) for w in s.get("workers", []))
    def drops(s):
        d = {}
        for w in s.get("workers", []):
            for r, n in w.get("drops", []):
                d[r] = d.get(r, 0) + n
        return d
    db, da = drops(sb), drops(sa)
    line[f"gw{g}"] = {k: tot(sa, k) - tot(sb, k) for k in ("rx_packets", "tx_packets", "encrypted", "decrypted")}
    line[f"gw{g}"]["drops"] = {r: n - db.get(r, 0) for r, n in da.items() if n - db.get(r, 0)}
if os.path.exists(f"{work}/swan.before") and os.path.exists(f"{work}/swan.after"):
    b, a = json.load(open(f"{work}/swan.before")), json.load(open(f"{work}/swan.after"))
    line["swan"] = {k: a[k] - b.get(k, 0) for k in a}
print(json.dumps(line))
PY
    rm -f "$WORK"/gw?.before "$WORK"/gw?.after "$WORK"/swan.before "$WORK"/swan.after
}

# size_arg SIZE: the sink's expected frame size (none for a mix).
size_arg() { [ "$1" = imix ] || echo "--size $1"; }

# measure PATH SIZE SINK_NS SINK_IF SINK_ARGS...: one full-blast run, or
# (--report) the NDR/PDR search and the latency trials, each a result line.
measure() {
    if [ "$MODE" != report ]; then
        run_one "$@"
        return
    fi
    local path=$1 size=$2 step ndr pdr n base pct
    TRIAL_LAT=
    KIND=search
    LOAD_PCT=0
    while :; do
        step=$("$BIN/bench-report" next --results "$WORK/results.jsonl" --path "$path" --size "$size" \
            --max-trials "$TRIALS" --precision "$PRECISION") || die "bench-report next failed"
        case $step in
        blast) TRIAL_RATE= ;;
        rate\ *) TRIAL_RATE=${step#rate } ;;
        done\ *) break ;;
        *) die "bench-report next: $step" ;;
        esac
        log "  $path $size B: trial at ${TRIAL_RATE:-full blast} pps"
        run_one "$@"
    done
    read -r _ ndr pdr n <<<"$step"
    log "  $path $size B: NDR $ndr pps, PDR $pdr pps ($n trials)"
    printf '{"kind": "ndr", "path": "%s", "size": "%s", "ndr_pps": %s, "pdr_pps": %s, "trials": %s, "sas": %s}\n' \
        "$path" "$size" "$ndr" "$pdr" "$n" "$SAS" >>"$WORK/results.jsonl"
    base=$ndr
    [ "$base" = 0 ] && base=$pdr
    if [ "$base" != 0 ]; then
        KIND=latency
        TRIAL_LAT=--latency
        for pct in $LOADS; do
            TRIAL_RATE=$((base * pct / 100))
            [ "$TRIAL_RATE" -gt 0 ] || continue
            LOAD_PCT=$pct
            log "  $path $size B: latency at $pct % ($TRIAL_RATE pps)"
            run_one "$@"
        done
    fi
    TRIAL_RATE=$RATE
    TRIAL_LAT=$LAT_FLAG
    KIND=blast
    LOAD_PCT=0
}

# swan_counters FILE: ipsec0 (libipsec's TUN) counters of gw1 (tx: packets
# the kernel handed to charon to encrypt) and gw2 (rx: decrypted packets
# charon wrote back), and gw2's UDP receive-buffer drops (ESP in UDP 4500).
swan_counters() {
    local g k out=""
    for g in 1 2; do
        for k in rx_packets tx_packets tx_dropped; do
            out+="\"gw${g}_$k\": $(nsx "gw$g" cat "/sys/class/net/ipsec0/statistics/$k" 2>/dev/null || echo 0), "
        done
    done
    out+="\"gw2_udp_rcvbuf_errors\": $(nsx gw2 awk '/^Udp:/ { if (n++) print $6 }' /proc/net/snmp)"
    echo "{$out}" >"$1"
}

want() { [[ " $PATHS " == *" $1 "* ]]; }

# gateway_paths NAME WHAT WHAT_ENCRYPT: at every size, NAME (both gateways,
# sink in h21 checks the decrypted UDP) and NAME-encrypt (sink on inet's
# i1 counts the ESP leaving gw1), each when wanted.
gateway_paths() {
    local size
    for size in $SIZES; do
        if want "$1"; then
            log "$1 ($2), $size B"
            measure "$1" "$size" h21 eth0 $(size_arg "$size") --dst 10.2.1.10
        fi
        if want "$1-encrypt"; then
            log "$1-encrypt ($3), $size B"
            measure "$1-encrypt" "$size" inet i1 --expect esp
        fi
    done
}

# ------------------------------------------------ kernel forwarding baseline

if want kernel-3hop || want kernel-1hop; then
    for g in 1 2; do nsx "gw$g" sysctl -qw net.ipv4.ip_forward=1; done
    nsx inet ip route add 10.1.0.0/16 via 198.51.100.1
    nsx inet ip route add 10.2.0.0/16 via 203.0.113.2
    topo_arp_warm
    nsx h11 ping -q -c 1 -W 2 10.2.1.10 >/dev/null || die "kernel path h11 -> h21 does not forward"
    for size in $SIZES; do
        if want kernel-3hop; then
            log "kernel-3hop, $size B"
            measure kernel-3hop "$size" h21 eth0 $(size_arg "$size") --dst 10.2.1.10
        fi
        if want kernel-1hop; then
            log "kernel-1hop, $size B"
            measure kernel-1hop "$size" inet i1 $(size_arg "$size") --dst 10.2.1.10
        fi
    done
    for g in 1 2; do nsx "gw$g" sysctl -qw net.ipv4.ip_forward=0; done
fi

# ------------------------------------- strongSwan (charon + kernel-libipsec)

if want strongswan || want strongswan-encrypt; then
    swan_packages
    PSK="esprit-bench-psk-0123456789"
    for g in 1 2; do
        o=$((3 - g))
        nsx "gw$g" sysctl -qw net.ipv4.ip_forward=1
        nsx "gw$g" sysctl -qw net.ipv4.conf.all.rp_filter=0
        swan_start "$TOPO-gw$g" "$WORK/swan$g" || {
            p=$(cat "$WORK/swan$g/run/charon.pid" 2>/dev/null || true)
            [ -n "$p" ] && SWAN_PIDS+=("$p")
            cat "$WORK/swan$g/charon.stdout" "$WORK/swan$g/charon.log" >&2 2>/dev/null || true
            die "charon gw$g did not start"
        }
        SWAN_PIDS+=("$SWAN_PID")
        swan_psk_tunnel "$SWAN_DIR/swanctl.conf" bench "$(gw_wan "$g")" "$(gw_wan "$o")" \
            "10.$g.1.0/24" "10.$o.1.0/24" aes128gcm16 "$PSK"
        swan_ctl --load-all --clear --noprompt --file "$SWAN_DIR/swanctl.conf" >"$WORK/swan$g/load.log" 2>&1 ||
            { cat "$WORK/swan$g/load.log" >&2; die "swanctl --load-all failed on gw$g"; }
    done
    topo_arp_warm
    SWAN_DIR=$WORK/swan1
    GW1_PID=${SWAN_PIDS[0]}
    # Trap (on-demand) never fires with libipsec: initiate from gw1.
    swan_ctl --initiate --child bench --timeout 15 >"$WORK/swan1/initiate.log" 2>&1 ||
        { tail -20 "$WORK/swan1/initiate.log" >&2; die "swanctl --initiate failed"; }
    nsx h11 ping -q -c 3 -i 0.1 -W 2 10.2.1.10 >/dev/null ||
        { swan_ctl --list-sas >&2 || true; die "strongswan path h11 -> h21 does not work"; }
    # The sink on i1 takes every frame while it runs, IKE included: a run
    # is far shorter than any IKE timer of this SA.
    gateway_paths strongswan "charon + kernel-libipsec on gw1 and gw2" "gw1's charon only, sink on the WAN"
    swan_ctl --list-sas 2>&1 | grep -E 'bytes_|bytes,|packets' | sed 's/^ */    gw1 child SA: /' >&2 || true
    # Stop both charons (their routes and ipsec0 go with them) before the
    # other paths, and give the gateways back their non-forwarding kernels.
    for p in "${SWAN_PIDS[@]}"; do swan_stop_pid "$p"; done
    SWAN_PIDS=()
    GW1_PID=
    for g in 1 2; do nsx "gw$g" sysctl -qw net.ipv4.ip_forward=0; done
fi

# ------------------------------------------------------ esprit, two gateways

if want esprit || want esprit-encrypt; then
    busy_flag=
    [ "$BUSY" = 1 ] && busy_flag=--busy-poll
    for g in 1 2; do
        core=$GW1_CORE
        [ "$g" = 2 ] && core=$GW2_CORE
        nsx_bg "gw$g" "$BIN/fastpathd" --port lan1 --port lan2 --port wan0 --workers 1 --cores "$core" \
            --xdp-mode driver ${RING:+--ring-size "$RING"} --socket "$WORK/gw$g.sock" $busy_flag >"$WORK/gw$g.log" 2>&1
        GW_PIDS+=($!)
    done
    for g in 1 2; do
        for _ in $(seq 100); do [ -S "$WORK/gw$g.sock" ] && break; sleep 0.1; done
        [ -S "$WORK/gw$g.sock" ] || { cat "$WORK/gw$g.log" >&2; die "fastpathd gw$g did not start"; }
        $CONF base "$g" | "$BIN/fpctl" --socket "$WORK/gw$g.sock" batch >/dev/null
        $CONF sas "$g" 11 --suite aes128gcm16 | "$BIN/fpctl" --socket "$WORK/gw$g.sock" batch >/dev/null
    done
    GW1_PID=${GW_PIDS[0]}
    topo_arp_warm
    # The fast path mirrors the kernels' neighbour tables every 100 ms.
    sleep 0.3
    nsx h11 ping -q -c 3 -i 0.1 -W 2 10.2.1.10 >/dev/null || die "esprit path h11 -> h21 does not work"
    gateway_paths esprit "gw1 encrypt, gw2 decrypt" "gw1 only, sink on the WAN"
fi

# ------------------------------------------------------------------ report

[ -n "${ESPRIT_BENCH_JSON:-}" ] && cat "$WORK/results.jsonl" >>"$ESPRIT_BENCH_JSON"
if [ "$MODE" = report ]; then
    mkdir -p "$OUT"
    rm -f "$OUT"/*.svg "$OUT"/report.md
    cp "$WORK/results.jsonl" "$OUT/results.jsonl"
    cp "$WORK/microbench.md" "$OUT/microbench.md"
    note="\`scripts/bench-throughput.sh ${1:-}\` on $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, load average"
    note+=" $(cut -d' ' -f1-3 /proc/loadavg) at the end; $SECS s per trial, at most $TRIALS trials per search,"
    note+=" precision $PRECISION; $FLOWS flows; $SAS SA; gateways busy-poll=$BUSY. Sizes are Ethernet frames"
    note+=" without FCS; imix is 7:4:1 of 64/570/1400 B. gw1 CPU is the encrypting gateway's process"
    note+=" (fastpathd or charon) user / system time from /proc/PID/stat over the trial, per packet offered."
    "$BIN/bench-report" render --results "$OUT/results.jsonl" --microbench "$OUT/microbench.md" --out "$OUT" \
        --zc-io-ns "${ESPRIT_BENCH_ZC_IO_NS:-30}" --note "$note" || die "bench-report render failed"
    log "report: $OUT/report.md, plots: $OUT/*.svg"
    if [ -n "${SHORT:-}" ]; then
        # What must not rot: every path searched, a rate and latencies in
        # the report, plots with drawn series. Not how fast anything is.
        for p in $PATHS; do
            for z in $SIZES; do
                grep -Eq "^\| $p \| $z \| [0-9]+\.[0-9]{3} \| [0-9.]+ \| [0-9]+\.[0-9]{3} \|" "$OUT/report.md" ||
                    die "report.md: no NDR row for $p $z B"
                n=$(grep -Ec "^\| $p \| $z \| [0-9]+ % \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ \| [1-9][0-9]* \|" "$OUT/report.md" || true)
                [ "$n" = "$(wc -w <<<"$LOADS")" ] || die "report.md: $n latency rows for $p $z B, want $(wc -w <<<"$LOADS")"
            done
        done
        grep -Eq '^\| [0-9a-z]+ \| [0-9.]+ \| [0-9]+\.[0-9]{2} \|' "$OUT/report.md" || die "report.md: no projection row"
        for f in "$OUT/rate-vs-size.svg" $(for z in $SIZES; do echo "$OUT/latency-vs-load-$z.svg"; done); do
            [ -s "$f" ] || die "$f missing"
            # plotters writes each label on the line after its <text>.
            grep -q '<polyline' "$f" && grep -A1 '<text' "$f" | grep -Eq '^[0-9]+\.[0-9]+$' || die "$f: no series or numbers"
        done
        log "short report checked: $(wc -l <"$OUT/results.jsonl") result lines"
    fi
    exit 0
fi
python3 - "$WORK/results.jsonl" "$SECS" "$FLOWS" "$BUSY" "$RATE" <<'PY'
import json, os, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
ncpu = os.cpu_count() or 1
def gw1_us(r, key="gw1_cpu_s"):
    """gw1's process CPU time (all, or user only) per packet it put on the
    WAN (-encrypt paths: the sink on the WAN counts every one), in us."""
    good = r["rx"]["good"]
    return r[key] / good * 1e6 if good and r.get(key) else 0.0
base = {"esprit": "kernel-3hop", "esprit-encrypt": "kernel-1hop", "strongswan": "kernel-3hop",
        "strongswan-encrypt": "kernel-1hop"}
rate = {(r["path"], r["size"]): r["rx"]["mpps"] for r in rows}
print(f"\nthroughput at the sink ({sys.argv[2]} s per run, {sys.argv[3]} flows, gateways busy-poll={sys.argv[4]}, "
      f"generator {sys.argv[5] + ' pps' if sys.argv[5] else 'full blast'}; "
      "Gbit/s of frame bytes without FCS; for the -encrypt paths: of ESP frames on the WAN)")
print(f"{'path':<15} {'size':>5} {'sent Mpps':>9} {'Mpps':>7} {'Gbit/s':>7} {'ratio':>6} {'delivered':>9}  drops / notes")
bad = 0
for r in rows:
    tx, rx = r["tx"], r["rx"]
    ref = rate.get((base.get(r["path"], r["path"]), r["size"]))
    ratio = f"{rx['mpps'] / ref:.2f}" if ref else "-"
    delivered = rx["good"] / tx["packets"] if tx["packets"] else 0.0
    notes = []
    for g in ("gw1", "gw2"):
        if g in r:
            d = r[g]["drops"]
            notes.append(f"{g} enc {r[g]['encrypted']} dec {r[g]['decrypted']}" + (f" drops {d}" if d else ""))
    if "swan" in r:
        s = r["swan"]
        notes.append(f"gw1 ipsec0 tx {s['gw1_tx_packets']} (dropped {s['gw1_tx_dropped']}), gw2 ipsec0 rx {s['gw2_rx_packets']}, "
                     f"gw2 UDP rcvbuf drops {s['gw2_udp_rcvbuf_errors']}")
    if rx["mangled"] or rx["foreign"]:
        notes.append(f"sink: {rx['mangled']} mangled, {rx['foreign']} foreign")
    if rx["xsk_rx_dropped"] or rx["xsk_rx_ring_full"]:
        notes.append(f"sink socket dropped {rx['xsk_rx_dropped']} (ring full {rx['xsk_rx_ring_full']})")
    notes.append(f"{rx['lost_by_seq']} missing by seq")
    if r.get("gw1_cpu_s"):
        notes.append(f"gw1 process {r['gw1_cpu_s']:.2f} CPU-s ({r['gw1_user_s']:.2f} user)" +
                     (f" = {gw1_us(r):.2f} us per ESP packet out" if r["path"].endswith("-encrypt") else ""))
    if r.get("busy_cpu_s") is not None:
        notes.append(f"all CPUs {r['busy_cpu_s'] / (ncpu * float(sys.argv[2])):.0%} busy")
    lat = rx.get("latency_ns")
    if lat:
        notes.append(f"latency p50 {lat['p50'] / 1e3:.1f} us p99 {lat['p99'] / 1e3:.1f} us max {lat['max'] / 1e3:.1f} us")
    print(f"{r['path']:<15} {r['size']:>5} {tx['mpps']:>9.3f} {rx['mpps']:>7.3f} {rx['gbps']:>7.3f} {ratio:>6} "
          f"{delivered:>8.1%}  {'; '.join(notes)}")
    # Sanity: the sink must see a real share of what was sent, and nothing
    # mangled (for esprit: the decrypted inner packets, byte-exact headers).
    if r["path"].startswith("strongswan") and not rx["mangled"] and rx["good"] < 0.05 * tx["packets"]:
        # The path was checked with ping before: strongSwan collapsing under
        # load is a result, not a broken bench.
        print(f"  ^ strongSwan delivered {rx['good']} of {tx['packets']}: collapsed; pace with ESPRIT_BENCH_RATE")
    elif rx["good"] < 0.05 * tx["packets"] or rx["mangled"]:
        bad += 1
        print(f"  ^ SUSPICIOUS: {rx['good']} good of {tx['packets']} sent, {rx['mangled']} mangled")
by = {(r["path"], r["size"]): r for r in rows}
# Like against like, same run: both gateways (sink in h21), and the
# encrypting gateway alone (sink on the WAN, nothing decrypts).
for ours, theirs, what in (("esprit", "strongswan", "both gateways, sink in h21"),
                           ("esprit-encrypt", "strongswan-encrypt", "encrypting gateway only, sink on the WAN")):
    sizes = [r["size"] for r in rows if r["path"] == ours and (theirs, r["size"]) in by]
    if not sizes:
        continue
    print(f"\n{ours} vs {theirs} (charon + kernel-libipsec), {what}, same run")
    print(f"{'size':>5} {'esprit Mpps':>11} {'Gbit/s':>7} {'swan Mpps':>9} {'Gbit/s':>7} {'esprit/strongswan':>17}")
    for size in sizes:
        e, s = by[(ours, size)]["rx"], by[(theirs, size)]["rx"]
        ratio = f"{e['mpps'] / s['mpps']:.1f}" if s["mpps"] else "-"
        print(f"{size:>5} {e['mpps']:>11.3f} {e['gbps']:>7.3f} {s['mpps']:>9.3f} {s['gbps']:>7.3f} {ratio:>17}")
    if ours == "esprit-encrypt":
        # Per packet, the encrypting gateway's own CPU time: what each
        # would do on a core of its own, where the generator and sink
        # sharing these two CPUs cap both of the rates above.
        print(f"{'size':>5} {'esprit us/pkt':>13} {'swan us/pkt':>11} {'swan/esprit':>11}  "
              "(gw1 process CPU per ESP packet out: all / user only)")
        for size in sizes:
            cells = []
            for key in ("gw1_cpu_s", "gw1_user_s"):
                e, s = gw1_us(by[(ours, size)], key), gw1_us(by[(theirs, size)], key)
                cells.append((e, s, f"{s / e:.1f}" if e and s else "-"))
            (e, s, ratio), (eu, su, ratio_u) = cells
            print(f"{size:>5} {f'{e:.2f} / {eu:.2f}':>13} {f'{s:.2f} / {su:.2f}':>11} {f'{ratio} / {ratio_u}':>11}")
sys.exit(1 if bad else 0)
PY
