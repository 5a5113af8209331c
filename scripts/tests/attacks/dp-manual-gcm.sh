#!/usr/bin/env bash
# A manual-key VPN never runs AES-GCM (RFC 4106 §8.1: one key
# and salt for both directions, both gateways counting from 1, repeats every
# nonce). From outside, against real daemons in a network namespace this
# script creates (fastpathd on one veth port, controld programming it):
#
#  - `controld --check` refuses a file with such a VPN, naming the line, the
#    word and RFC 4106, never the key;
#  - on a running controld with a good (CBC+HMAC) manual-key VPN, `esprit set`
#    of the same VPN with aes128gcm and `exec reload` of a file with it are
#    refused with the same message; controld keeps running its good
#    configuration (same `get config secrets`, same SA, still installed);
#  - and its operator socket: mode 0600, a 100 KiB request
#    line refused and counted, `get config` masks the keys, `get config
#    secrets` shows them, the Prometheus endpoint refuses /config.
#
#   flock /tmp/esprit-netns.lock bash scripts/tests/attacks/dp-manual-gcm.sh
# Needs root. Ends with "N passed, M failed" (exit 1 if any failed).
# Bounded by $ESPRIT_TIMEOUT seconds (default 120).
set -uo pipefail
ESPRIT_SCRIPT=dp-manual-gcm
source "$(dirname "$0")/../../lib/common.sh"
source "$ESPRIT_ROOT/scripts/lib/testlib.sh"
need_root
esprit_bin_dir

WORK=$(mktemp -d /tmp/esprit-dp-gcm.XXXXXX)
NS="esprit-gcm$$"
EXTRA=()
cleanup() {
    local p
    for p in "${EXTRA[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${EXTRA[@]}"; do wait "$p" 2>/dev/null || true; done
    ip netns del "$NS" 2>/dev/null || true
    if [ -n "${ESPRIT_KEEP:-}" ]; then log "logs kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
watchdog "${ESPRIT_TIMEOUT:-120}"

ip netns add "$NS"
ip -n "$NS" link set lo up
ip -n "$NS" link add wan0 type veth peer name wan0-peer
ip -n "$NS" link set wan0 up
ip -n "$NS" link set wan0-peer up
ip -n "$NS" addr add 198.51.100.1/24 dev wan0
ip -n "$NS" addr add 198.51.100.2/24 dev wan0-peer

key=$(printf 'esprit dp-manual-gcm encr' | sha256sum | cut -c1-32)
auth=$(printf 'esprit dp-manual-gcm auth' | sha256sum | cut -c1-40)
gcm_key=$(printf 'esprit dp-manual-gcm gcm' | sha256sum | cut -c1-40)
good_vpn="set vpn \"lab-vpn\" manual 2011 1011 gateway 198.51.100.2 outgoing-interface \"ethernet0/2\" esp aes128 key $key auth sha-1 key $auth"
gcm_vpn="set vpn \"lab-vpn\" manual 2011 1011 gateway 198.51.100.2 outgoing-interface \"ethernet0/2\" esp aes128gcm key $gcm_key"
# conf VPN_LINE: the gateway's configuration; the VPN is line 6.
conf() {
    cat <<CONF
set interface ethernet0/2 zone Untrust
set interface ethernet0/2 ip 198.51.100.1/24
set interface ethernet0/2 port wan0
set interface tunnel.1 zone Untrust
set interface tunnel.1 ip unnumbered interface ethernet0/2
$1
set vpn "lab-vpn" proxy-id local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 any
set vpn "lab-vpn" id 0x11 bind interface tunnel.1
set route 10.2.1.0/24 interface tunnel.1
CONF
}
RFC_MSG='manual-key cipher "aes128gcm" uses AES-GCM, a counter mode, with a static key, which esprit refuses (RFC 4106 §8.1)'

# 1. controld --check.
conf "$gcm_vpn" >"$WORK/gcm.conf"
rc=0
"$BIN/controld" --check "$WORK/gcm.conf" >"$WORK/check.out" 2>&1 || rc=$?
log "    controld --check: $(head -c 300 "$WORK/check.out")"
check "controld --check refuses the GCM manual-key VPN (exit status $rc)" test "$rc" -ne 0
check "... naming the line (6), the word and RFC 4106 §8.1" grep -qF "line 6: \"set vpn \"lab-vpn\" manual 2011 1011 gateway 198.51.100.2 outgoing-interface \"ethernet0/2\" esp aes128gcm key <secret>\": $RFC_MSG" "$WORK/check.out"
check "... without the key" bash -c "! grep -q '$gcm_key' '$WORK/check.out'"
conf "$good_vpn" >"$WORK/gw.conf"
check "controld --check accepts the CBC+HMAC one" "$BIN/controld" --check "$WORK/gw.conf"

# 2. A running controld with the good configuration.
ip netns exec "$NS" "$BIN/fastpathd" --port wan0 --xdp-mode skb --socket "$WORK/fp.sock" >"$WORK/fp.log" 2>&1 &
EXTRA+=($!)
for _ in $(seq 100); do [ -S "$WORK/fp.sock" ] && break; sleep 0.1; done
ip netns exec "$NS" "$BIN/controld" --config "$WORK/gw.conf" --fastpath "$WORK/fp.sock" \
    --socket "$WORK/cd.sock" --state-dir "$WORK/state" --metrics 127.0.0.1:9425 --no-syslog >"$WORK/cd.log" 2>&1 &
cd_pid=$!
EXTRA+=("$cd_pid")
cli() { "$BIN/esprit" --socket "$WORK/cd.sock" "$@"; }
installed() { cli get sa 2>/dev/null | grep -c ' A/- '; }
for _ in $(seq 100); do [ "$(installed)" = 2 ] && break; sleep 0.1; done
check "controld installed the CBC+HMAC pair (2 SAs A/-)" test "$(installed)" = 2
cli get sa >"$WORK/sa.before"
cli get config secrets >"$WORK/config.before"

# 3. esprit set with GCM.
rc=0
# The line's words as esprit's arguments (eval undoes the quotes, as a shell would).
eval "cli $gcm_vpn" >"$WORK/set.out" 2>&1 || rc=$?
log "    esprit set: $(head -c 300 "$WORK/set.out")"
check "esprit set ... esp aes128gcm is refused (exit status 1)" test "$rc" = 1
check "... naming the word and RFC 4106 §8.1, not the key" \
    bash -c "grep -qF '$RFC_MSG' '$WORK/set.out' && ! grep -q '$gcm_key' '$WORK/set.out'"
unchanged() {
    cli get sa >"$WORK/sa.now" && cli get config secrets >"$WORK/config.now" \
        && cmp -s "$WORK/sa.before" "$WORK/sa.now" && cmp -s "$WORK/config.before" "$WORK/config.now" \
        && [ "$(installed)" = 2 ] && kill -0 "$cd_pid"
}
check "... and changes nothing: same configuration, same SAs, still installed" unchanged

# 4. exec reload of a file with GCM.
conf "$gcm_vpn" >"$WORK/gw.conf"
rc=0
cli exec reload >"$WORK/reload.out" 2>&1 || rc=$?
log "    exec reload: $(head -c 300 "$WORK/reload.out")"
check "exec reload of a file with the GCM VPN is refused (exit status 1)" test "$rc" = 1
check "... naming the file, line 6 and RFC 4106 §8.1, not the key" \
    bash -c "grep -qF 'exec reload: $WORK/gw.conf: line 6: ' '$WORK/reload.out' && grep -qF '$RFC_MSG' '$WORK/reload.out' && ! grep -q '$gcm_key' '$WORK/reload.out'"
check "... and controld keeps running its good configuration" unchanged
conf "$good_vpn" >"$WORK/gw.conf"
check "exec reload of the good file succeeds, nothing to change" cli exec reload

# 5. The operator socket and the secrets.
check "the operator socket is mode 600" test "$(stat -c %a "$WORK/cd.sock")" = 600
long_line() {
    python3 - "$WORK/cd.sock" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(5)
s.connect(sys.argv[1])
try:
    s.sendall(b"get sa " + b"a" * (100 * 1024) + b"\n")
except OSError:
    pass
data = b""
while True:
    try:
        chunk = s.recv(4096)
    except OSError:
        break
    if not chunk:
        break
    data += chunk
print(data.decode(errors="replace").strip())
PY
}
out=$(long_line)
log "    100 KiB line: $out"
check "a 100 KiB request line: %error, connection closed" \
    test "$out" = "%error request line longer than 65536 bytes: refused, connection closed"
check "... and controld still answers" cli get sa
check "get config masks the keys" bash -c "'$BIN/esprit' --socket '$WORK/cd.sock' get config | grep -qF 'esp aes128 key \"********\" auth sha-1 key \"********\"' && ! '$BIN/esprit' --socket '$WORK/cd.sock' get config --json | grep -q '$key'"
check "get config secrets shows them" grep -q "$key" "$WORK/config.before"
scrape() {
    ip netns exec "$NS" python3 -c '
import sys, urllib.request, urllib.error
print(urllib.request.urlopen("http://127.0.0.1:9425/metrics", timeout=5).read().decode())
for path in ("/config", "/get/config/secrets"):
    try:
        urllib.request.urlopen("http://127.0.0.1:9425" + path, timeout=5)
    except urllib.error.HTTPError as e:
        print("status of %s: %d" % (path, e.code))' >"$WORK/metrics.txt"
}
check "Prometheus: 403 for /config and /get/config/secrets, the long line counted, no key" bash -c "
    $(declare -f scrape); NS=$NS WORK=$WORK scrape \
    && grep -q '^status of /config: 403$' '$WORK/metrics.txt' \
    && grep -q '^status of /get/config/secrets: 403$' '$WORK/metrics.txt' \
    && grep -q '^esprit_operator_refused_total{reason=\"line-too-long\"} 1$' '$WORK/metrics.txt' \
    && ! grep -q '$key' '$WORK/metrics.txt' || { cat '$WORK/metrics.txt' >&2; false; }"
rc=0
setpriv --reuid=65534 --regid=65534 --clear-groups "$BIN/esprit" --socket "$WORK/cd.sock" get sa >"$WORK/nobody.out" 2>&1 || rc=$?
check "a user other than root cannot use the socket (exit status $rc: unreachable)" test "$rc" = 2
check "controld logged no key" bash -c "! grep -qE '$key|$auth|$gcm_key' '$WORK/cd.log'"

summary
