#!/usr/bin/env bash
# The strongSwan lane of the IKEv2 bring-up benchmark: two charons
# (kernel-libipsec, scripts/lib/strongswan.sh) in gw1 and gw2 of the seed
# topology (scripts/lib/topo.sh), one IKEv2 connection of N children with
# the proxy-IDs of scripts/bench-scale.sh (gw1: 10.1.1.10/32 to
# 10.2.64.1+k/32, k < N; gw2 the mirror), one IKE SA:
#
#   gw1 (charon, initiator) -wan0- inet -wan0- gw2 (charon, responder)
#
# How strongSwan brings them up fastest: gw1's children all have
# start_action = start, so loading the configuration initiates all N at
# once; the first rides in IKE_AUTH and the others queue on the same IKE
# SA as CREATE_CHILD_SA exchanges, one at a time (charon's window of one,
# as esprit's). No traffic: charon's trap policies do not fire with
# kernel-libipsec (shared/peers/strongswan-lab), and a packet per child
# would only add the generator's own cost.
#
# Measured, from gw1's charon log (milliseconds): the first "initiating
# IKE_SA" line to the N-th "CHILD_SA ... established" (SAs installed),
# pairs per second overall and per tenth; checked: exactly one IKE SA
# on each side, N children established on gw2 as well.
#
#   scripts/bench-scale-swan.sh      (root)
#
# Environment: ESPRIT_SCALE_N (1000), ESPRIT_SCALE_PFS (no-pfs; or group14
# = modp2048, group19 = ecp256, group31 = curve25519: the children's PFS),
# ESPRIT_SCALE_LIMIT (seconds for the bring-up; 300), ESPRIT_SCALE_OUT
# (report folder; bench/results/scale-swan). Report: $OUT/report.md and
# one JSON line in $OUT/result.json (the keys of bench-scale.sh's that
# apply).
set -euo pipefail
ESPRIT_SCRIPT=bench-scale-swan
source "$(dirname "$0")/lib/common.sh"
source "$ESPRIT_ROOT/scripts/lib/topo.sh"
source "$ESPRIT_ROOT/scripts/lib/strongswan.sh"
need_root
apt_install iproute2 procps
swan_packages

N=${ESPRIT_SCALE_N:-1000}
OUT=${ESPRIT_SCALE_OUT:-$ESPRIT_ROOT/bench/results/scale-swan}
[[ "$N" =~ ^[0-9]+$ ]] && [ "$N" -ge 1 ] && [ "$N" -le 16000 ] || die "ESPRIT_SCALE_N=$N: 1 ..= 16000 (10.2.64.0/18)"
PFS=${ESPRIT_SCALE_PFS:-no-pfs}
case "$PFS" in
no-pfs) ESP=aes128gcm16 ;;
group14) ESP=aes128gcm16-modp2048 ;;
group19) ESP=aes128gcm16-ecp256 ;;
group31) ESP=aes128gcm16-curve25519 ;;
*) die "ESPRIT_SCALE_PFS=$PFS: no-pfs, group14, group19 or group31" ;;
esac
LIMIT=${ESPRIT_SCALE_LIMIT:-300}

WORK=$(mktemp -d /tmp/esprit-scale-swan.XXXXXX)
SWAN_PIDS=()
cleanup() {
    local p
    trap - EXIT INT TERM
    for p in "${SWAN_PIDS[@]}"; do swan_stop_pid "$p"; done
    topo_down
    if [ -n "${ESPRIT_KEEP:-}" ]; then log "work files kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# swanctl_conf G START: gateway G's connection, N children; START is
# gw1's start_action (start) or gw2's (none).
swanctl_conf() {
    local g=$1 start=$2
    python3 - "$N" "$g" "$ESP" "$start" <<'PY' | swan_psk_conn scale "$(gw_wan "$g")" "$(gw_wan $((3 - g)))" aes128-sha1-modp2048 "scale-bench-$$-key"
import ipaddress, sys
n, g, esp, start = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
base = int(ipaddress.IPv4Address("10.2.64.1"))
for k in range(n):
    far = ipaddress.IPv4Address(base + k)
    local, remote = ("10.1.1.10/32", f"{far}/32") if g == "1" else (f"{far}/32", "10.1.1.10/32")
    print(f"      c{k} {{ local_ts = {local}\n            remote_ts = {remote}\n"
          f"            mode = tunnel\n            esp_proposals = {esp}\n"
          f"            start_action = {start} }}")
PY
}

# No routes into ipsec0 (N of them would cost charon and the kernel what
# esprit's bench does not pay: its routes are one /18); charon.log at
# level 0 (the lines read here; ESPRIT_SWAN_LOG to see more) with
# milliseconds.
export SWAN_EXTRA="install_routes = no" SWAN_LOG="${ESPRIT_SWAN_LOG:-default = 0}" SWAN_LOG_MS=1

mkdir -p "$OUT"
topo_up "esw$$"
# kernel-libipsec installs a child's outbound policy only where an address
# of the namespace lies in its local_ts (shared/peers/strongswan-lab): each
# gateway holds the addresses of its side of the proxy-IDs.
nsx gw1 ip addr add 10.1.1.10/32 dev lo
python3 -c '
import ipaddress, sys
base = int(ipaddress.IPv4Address("10.2.64.1"))
for k in range(int(sys.argv[1])):
    print(f"address add {ipaddress.IPv4Address(base + k)}/32 dev lo")' "$N" | nsx gw2 ip -batch -
for g in 2 1; do
    swan_start "$TOPO-gw$g" "$WORK/gw$g" || die "charon did not start in gw$g"
    SWAN_PIDS+=("$SWAN_PID")
done
read -r SWAN1 SWAN2 <<<"${SWAN_PIDS[1]} ${SWAN_PIDS[0]}"
swanctl_conf 2 none >"$WORK/gw2/swanctl.conf"
swanctl_conf 1 start >"$WORK/gw1/swanctl.conf"
SWAN_DIR=$WORK/gw2
swan_ctl --load-all --file "$WORK/gw2/swanctl.conf" >"$WORK/load2.out" 2>&1 || { cat "$WORK/load2.out" >&2; die "gw2: swanctl --load-all failed"; }
log "charons up: $N children each, ESP $ESP; loading gw1's (start_action = start)"
SWAN_DIR=$WORK/gw1
swan_ctl --load-all --file "$WORK/gw1/swanctl.conf" >"$WORK/load1.out" 2>&1 || { cat "$WORK/load1.out" >&2; die "gw1: swanctl --load-all failed"; }

established() { grep -c "CHILD_SA c[0-9]*{[0-9]*} established" "$WORK/gw$1/charon.log" || true; }
up=0
deadline=$((SECONDS + LIMIT))
while :; do
    up=$(established 1)
    [ "$up" -ge "$N" ] && break
    [ "$SECONDS" -lt "$deadline" ] || break
    kill -0 "$SWAN1" 2>/dev/null || die "gw1's charon died"
    sleep 0.25
done
if [ "$up" -lt "$N" ]; then
    log "gw1: $up, gw2: $(established 2) children established; gw1's last log lines:"
    tail -n 15 "$WORK/gw1/charon.log" | sed 's/^/    /' >&2
    die "only $up of $N children up within ${LIMIT} s"
fi
# gw2 installs its SAs before it answers: it has all N once gw1 has.
for _ in $(seq 40); do [ "$(established 2)" -ge "$N" ] && break; sleep 0.25; done
ike1=$(grep -c "IKE_SA scale\[[0-9]*\] established" "$WORK/gw1/charon.log" || true)
ike2=$(grep -c "IKE_SA scale\[[0-9]*\] established" "$WORK/gw2/charon.log" || true)
up2=$(established 2)

read -r t_all tenth_rates < <(python3 - "$WORK/gw1/charon.log" "$N" "$ESPRIT_ROOT/scripts/lib" <<'EOF'
import re, sys
sys.path.insert(0, sys.argv[3])
from tenths import print_bring_up
def entries(path):
    last = None
    for line in open(path):
        m = re.match(r"(\d\d):(\d\d):(\d\d)\.(\d\d\d) ", line)
        if not m:
            continue
        t = (int(m[1]) * 60 + int(m[2])) * 60 + int(m[3]) + int(m[4]) / 1000
        if last is not None and t < last:  # midnight
            t += 86_400
        last = t
        yield t, line
print_bring_up(entries(sys.argv[1]), lambda text: "initiating IKE_SA scale" in text,
               lambda text: re.search(r"CHILD_SA c\d+\{\d+\} established", text), int(sys.argv[2]))
EOF
)
log "all $N children up in $t_all ms"
rate_all=$(python3 -c "print(round($N / ($t_all / 1000), 1))")
read -r -a tr <<<"$tenth_rates"
flat=$(python3 -c "print(round(${tr[9]} / ${tr[0]}, 2))")
rss1=$(awk '/^VmRSS:/ { print $2 }' "/proc/$SWAN1/status")
{
    echo "# strongSwan scale: $N children on one IKEv2 SA"
    echo
    echo "\`scripts/bench-scale-swan.sh\` on $(date -u '+%Y-%m-%d %H:%M') UTC, $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end; $(/usr/lib/ipsec/charon --version 2>/dev/null | head -1 || echo charon) with kernel-libipsec; IKE aes128-sha1-modp2048, ESP $ESP (p2 $PFS); gw1's $N children start_action = start."
    echo
    echo "| children | all up after | pairs/s overall | pairs/s first tenth | pairs/s last tenth | last / first tenth | IKE SAs (gw1, gw2) | children on gw2 | gw1 charon KiB |"
    echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    echo "| $N | $t_all ms | $rate_all | ${tr[0]} | ${tr[9]} | $flat | $ike1, $ike2 | $up2 | $rss1 |"
    echo
    echo "Pairs per second in each tenth of the bring-up: ${tenth_rates}. (The first tenth includes IKE_SA_INIT and IKE_AUTH.)"
} >"$OUT/report.md"
python3 - "$OUT/result.json" <<EOF
import json, sys
json.dump({"peer": "strongswan", "ike": 2, "pfs": "$PFS", "proxy_ids": $N, "all_up_ms": $t_all,
           "pairs_per_s": $rate_all, "tenths_pairs_per_s": [float(x) for x in "$tenth_rates".split()],
           "ike_sas": [$ike1, $ike2], "responder_children": $up2, "rss_kib_up": $rss1}, open(sys.argv[1], "w"))
EOF
cat "$OUT/report.md"

fail=0
[ "$ike1" = 1 ] && [ "$ike2" = 1 ] || { log "FAIL: $ike1 and $ike2 IKE SAs (want one each)"; fail=1; }
[ "$up2" = "$N" ] || { log "FAIL gw2: $up2 children (want $N)"; fail=1; }
[ "$fail" = 0 ] || exit 1
log "report: $OUT/report.md"
