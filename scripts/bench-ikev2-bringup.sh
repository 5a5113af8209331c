#!/usr/bin/env bash
# IKEv2 bring-up, esprit beside strongSwan, same run: children per second
# on one IKE SA with N proxy-IDs, for each PFS of the children, esprit <->
# esprit (scripts/bench-scale.sh, ESPRIT_SCALE_IKE=2: traffic-triggered,
# one CREATE_CHILD_SA per proxy-ID) and strongSwan <-> strongSwan
# (scripts/bench-scale-swan.sh: all children started at once), one after
# the other for each PFS so that both meet the same box.
#
#   scripts/bench-ikev2-bringup.sh      (root; a few minutes per PFS)
#
# Environment: ESPRIT_BRINGUP_PFS (the PFS words, in order; default
# "no-pfs group31 group14": none, Curve25519, MODP 2048), ESPRIT_SCALE_N
# (1000), ESPRIT_BIN (as bench-scale.sh), ESPRIT_BRINGUP_OUT (report
# folder; bench/results/ikev2-bringup). Report: $OUT/report.md (the table)
# and each run's own report below $OUT.
set -euo pipefail
ESPRIT_SCRIPT=bench-ikev2-bringup
source "$(dirname "$0")/lib/common.sh"
need_root

PFS_LIST=${ESPRIT_BRINGUP_PFS:-no-pfs group31 group14}
N=${ESPRIT_SCALE_N:-1000}
OUT=${ESPRIT_BRINGUP_OUT:-$ESPRIT_ROOT/bench/results/ikev2-bringup}
mkdir -p "$OUT"
export ESPRIT_SCALE_N=$N

loads=()
for pfs in $PFS_LIST; do
    loads+=("$pfs $(cut -d' ' -f1 /proc/loadavg)")
    log "PFS $pfs: esprit <-> esprit"
    ESPRIT_SCALE_IKE=2 ESPRIT_SCALE_PFS=$pfs ESPRIT_SCALE_OUT="$OUT/esprit-$pfs" \
        "$ESPRIT_ROOT/scripts/bench-scale.sh" >"$OUT/esprit-$pfs.log" 2>&1 ||
        { tail -n 30 "$OUT/esprit-$pfs.log" >&2; die "esprit, PFS $pfs: failed (log: $OUT/esprit-$pfs.log)"; }
    log "PFS $pfs: strongSwan <-> strongSwan"
    ESPRIT_SCALE_PFS=$pfs ESPRIT_SCALE_OUT="$OUT/strongswan-$pfs" \
        "$ESPRIT_ROOT/scripts/bench-scale-swan.sh" >"$OUT/strongswan-$pfs.log" 2>&1 ||
        { tail -n 30 "$OUT/strongswan-$pfs.log" >&2; die "strongSwan, PFS $pfs: failed (log: $OUT/strongswan-$pfs.log)"; }
done

python3 - "$OUT" "$N" "$(date -u '+%Y-%m-%d %H:%M')" "$(nproc)" "${loads[@]}" >"$OUT/report.md" <<'EOF'
import json, sys
out, n, when, cpus, loads = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
words = {"no-pfs": "none", "group14": "MODP 2048 (group 14)", "group19": "ECP 256 (group 19)",
         "group31": "Curve25519 (group 31)"}
print(f"# IKEv2 bring-up: {n} proxy-IDs on one IKE SA, esprit and strongSwan")
print()
print(f"`scripts/bench-ikev2-bringup.sh`, ended {when} UTC, {cpus} CPUs. Pairs per second from the")
print("first request (esprit: the first acquire; strongSwan: \"initiating IKE_SA\") to the")
print(f"{n}-th child installed on the initiator; flat = last tenth's rate / first tenth's.")
print()
print("| PFS | esprit pairs/s | strongSwan pairs/s | esprit / strongSwan | esprit all up | strongSwan all up | flat esprit | flat strongSwan | load average before |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for entry in loads:
    pfs, load = entry.split()
    e = json.load(open(f"{out}/esprit-{pfs}/result.json"))
    s = json.load(open(f"{out}/strongswan-{pfs}/result.json"))
    flat = lambda r: round(r["tenths_pairs_per_s"][9] / r["tenths_pairs_per_s"][0], 2)
    print(f"| {words.get(pfs, pfs)} | {e['pairs_per_s']} | {s['pairs_per_s']} | "
          f"{round(e['pairs_per_s'] / s['pairs_per_s'], 2)} | {e['all_up_ms']} ms | {s['all_up_ms']} ms | "
          f"{flat(e)} | {flat(s)} | {load} |")
EOF
cat "$OUT/report.md"
log "report: $OUT/report.md"
