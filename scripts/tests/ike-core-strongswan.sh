#!/bin/bash
# IKEv1 interop: esprit-ike's example shell (examples/ike_peer.rs) against
# strongSwan 5.9.8 (charon + kernel-libipsec), both ways, for the seed's
# four proxy-IDs, with ESP aes128-sha1 and aes128gcm16.
#
#   netns esprit-ike-e: ike_peer   198.51.100.1 --veth-- 203.0.113.1  charon :netns esprit-ike-s
#   proxy-IDs (esprit side): 10.1.1.0/24,10.1.2.0/24 <-> 10.2.1.0/24,10.2.2.0/24
#
# Checks per ESP suite and direction: 4 CHILD_SAs INSTALLED in
# `swanctl --list-sas`, and each SPI pair ike_peer printed appears there
# mirrored (its in = strongSwan's out and the reverse). When strongSwan
# initiates, it proposes a child lifetime (66 min) longer than esprit's
# (60 min): each of esprit's four QM2s must carry RESPONDER-LIFETIME
# (RFC 2407 §4.6.3.1), and strongSwan must parse them (it logs the type
# by number, N((24576))) and install the CHILD_SAs.
#
# Root. Installs the strongSwan packages with apt-get if missing. Cleans up
# (charon by PID, ike_peer by PID, namespaces) on any exit. Bounded: each
# step has a timeout. Env: IKE_PEER=path (skip the cargo build),
# ESPS="aes128-sha1 aes128gcm16", PARALLEL=N (Quick Modes esprit runs at
# once; default 1, as strongSwan itself does), KEEP=1 (keep the work dir).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
ESPRIT_SCRIPT=ike-core-strongswan
source "$ROOT/scripts/lib/common.sh"
source "$ROOT/scripts/lib/strongswan.sh"
[ "$(id -u)" = 0 ] || { echo "needs root"; exit 2; }
NE=esprit-ike-e
NS=esprit-ike-s
E_ADDR=198.51.100.1
S_ADDR=203.0.113.1
PSK="esprit-ike-interop-psk-0123"
ESPS=${ESPS:-"aes128-sha1 aes128gcm16"}
W=$(mktemp -d /tmp/esprit-ike-swan.XXXXXX)
PEER_PIDS=()
FAIL=0


cleanup() {
  for p in "${PEER_PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null; done
  swan_stop
  for ns in $NE $NS; do
    for _ in $(seq 20); do [ -e /run/netns/$ns ] || break; ip netns del $ns 2>/dev/null || sleep 0.3; done
  done
  [ "${KEEP:-0}" = 1 ] && echo "work dir kept: $W" || rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# ---------------------------------------------------------------- packages
swan_packages

# ---------------------------------------------------------------- build
if [ -z "${IKE_PEER:-}" ]; then
  log "building ike_peer"
  (cd "$ROOT" && timeout 900 cargo build -q -p esprit-ike --example ike_peer) || { echo "build failed"; exit 2; }
  IKE_PEER=$(esprit_bin examples/ike_peer)
fi
[ -x "$IKE_PEER" ] || { echo "no ike_peer at $IKE_PEER"; exit 2; }

# ---------------------------------------------------------------- topology
for ns in $NE $NS; do [ -e /run/netns/$ns ] && ip netns del $ns; ip netns add $ns; ip -n $ns link set lo up; done
ip link add ve-e netns $NE type veth peer name ve-s netns $NS
ip -n $NE addr add $E_ADDR/24 dev ve-e; ip -n $NE link set ve-e up
ip -n $NS addr add $S_ADDR/24 dev ve-s; ip -n $NS link set ve-s up
ip -n $NE route add 203.0.113.0/24 dev ve-e
ip -n $NS route add 198.51.100.0/24 dev ve-s
# kernel-libipsec routes each SA's remote_ts into ipsec0 with a source
# address from local_ts; without one the route, and with it the CHILD_SA,
# fails. No LAN here (IKE only): put the addresses on lo.
ip -n $NS addr add 10.2.1.1/32 dev lo
ip -n $NS addr add 10.2.2.1/32 dev lo
ip netns exec $NE ping -c1 -W2 $S_ADDR >/dev/null || { echo "veth not up"; exit 1; }

# ---------------------------------------------------------------- charon
sw() { swan_ctl "$@"; }

write_swanctl() {
  local esp=$1
  {
  cat <<EOC
connections {
  esprit {
    version = 1
    local_addrs = $S_ADDR
    remote_addrs = $E_ADDR
    proposals = aes128-sha1-modp2048
    aggressive = no
    keyingtries = 1
    local  { auth = psk
             id = $S_ADDR }
    remote { auth = psk
             id = $E_ADDR }
    children {
EOC
  for l in 1 2; do for r in 1 2; do
    cat <<EOC
      p${l}_${r} { local_ts = 10.2.$r.0/24
                   remote_ts = 10.1.$l.0/24
                   mode = tunnel
                   esp_proposals = $esp
                   life_time = 66m
                   start_action = none }
EOC
  done; done
  cat <<EOC
    }
  }
}
secrets { ike-esprit { id-a = $E_ADDR
                       id-b = $S_ADDR
                       secret = "$PSK" } }
EOC
  } > $W/swanctl.conf
}

swan_start $NS $W || { echo "charon failed to start"; cat $W/charon.stdout; exit 1; }
log "charon pid $SWAN_PID"

PROXIES=()
for l in 1 2; do for r in 1 2; do PROXIES+=(--proxy "local-ip 10.1.$l.0/24 remote-ip 10.2.$r.0/24 ANY"); done; done

# check OUT SAS: every "spi_in=X spi_out=Y" of ike_peer is "in Y / out X" at strongSwan.
check_children() { # check_children WHAT IKE_PEER_OUT SWANCTL_SAS
  local what=$1 out=$2 sas=$3 n ok=0
  n=$(grep -c 'INSTALLED' "$sas")
  while read -r line; do
    local si so
    si=$(echo "$line" | sed -n 's/.*spi_in=\([0-9a-f]*\).*/\1/p')
    so=$(echo "$line" | sed -n 's/.*spi_out=\([0-9a-f]*\).*/\1/p')
    if grep -q "in  $so," "$sas" && grep -q "out $si," "$sas"; then ok=$((ok+1)); fi
  done < <(grep '^CHILD_SA up' "$out")
  if [ "$n" = 4 ] && [ "$ok" = 4 ]; then
    echo "PASS $what: 4 CHILD_SAs INSTALLED at strongSwan, 4/4 SPI pairs match ike_peer's"
  else
    echo "FAIL $what: $n INSTALLED, $ok/4 SPI pairs match"; FAIL=1
  fi
}

# QM2s strongSwan parsed with a RESPONDER-LIFETIME in them, so far.
responder_lifetimes() { grep -c 'parsed QUICK_MODE response .*N((24576))' $W/charon.log || true; }

terminate_all() {
  sw --terminate --ike esprit --force --timeout 5 >/dev/null 2>&1
  sleep 0.5
}

for ESP in $ESPS; do
  write_swanctl $ESP
  sw --load-all --clear --noprompt --file $W/swanctl.conf >/dev/null 2>&1 || { echo "swanctl load failed"; FAIL=1; continue; }

  log "ESP $ESP: esprit initiates Main Mode + 4 Quick Modes"
  out=$W/peer-init-$ESP.txt
  ip netns exec $NE timeout 40 "$IKE_PEER" --local $E_ADDR --remote $S_ADDR --psk "$PSK" --esp $ESP \
     --initiate --timeout 30 --parallel ${PARALLEL:-1} "${PROXIES[@]}" > $out 2>&1 &
  PEER_PIDS+=($!); wait $! ; rc=$?
  cat $out
  sw --list-sas > $W/sas-init-$ESP.txt 2>&1; cat $W/sas-init-$ESP.txt
  [ $rc = 0 ] || { echo "FAIL ike_peer exited $rc"; FAIL=1; }
  check_children "esprit->strongSwan $ESP" $out $W/sas-init-$ESP.txt
  terminate_all

  log "ESP $ESP: strongSwan initiates (swanctl --initiate --child x4), esprit responds"
  out=$W/peer-resp-$ESP.txt
  ip netns exec $NE timeout 50 "$IKE_PEER" --local $E_ADDR --remote $S_ADDR --psk "$PSK" --esp $ESP \
     --expect 4 --timeout 40 "${PROXIES[@]}" > $out 2>&1 &
  pp=$!; PEER_PIDS+=($pp)
  rl_before=$(responder_lifetimes)
  sleep 0.5
  for c in p1_1 p1_2 p2_1 p2_2; do
    sw --initiate --child $c --timeout 15 > $W/initiate-$c.log 2>&1 || { echo "initiate $c failed:"; tail -5 $W/initiate-$c.log; }
  done
  wait $pp; rc=$?
  cat $out
  sw --list-sas > $W/sas-resp-$ESP.txt 2>&1; cat $W/sas-resp-$ESP.txt
  [ $rc = 0 ] || { echo "FAIL ike_peer exited $rc"; FAIL=1; }
  check_children "strongSwan->esprit $ESP" $out $W/sas-resp-$ESP.txt
  rl=$(( $(responder_lifetimes) - rl_before ))
  if [ "$rl" = 4 ]; then
    echo "PASS strongSwan->esprit $ESP: 4 QM2s with RESPONDER-LIFETIME parsed by strongSwan"
  else
    echo "FAIL strongSwan->esprit $ESP: $rl of 4 QM2s with RESPONDER-LIFETIME parsed by strongSwan"; FAIL=1
  fi
  terminate_all
done

if [ $FAIL = 0 ]; then log "ALL PASS"; else log "FAILURES (charon log: $W/charon.log)"; tail -40 $W/charon.log; fi
exit $FAIL
