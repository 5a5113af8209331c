#!/usr/bin/env bash
# The interactive esprit shell through a pseudo-terminal, against a real
# controld programming a real fastpathd (one veth port in a network
# namespace this script creates): Tab completion (`get s<Tab>` -> `get sa`,
# VPN names), history recall with the up arrow, an error that leaves the
# shell usable, `?`, controld stopping and coming back, `exit` with status 0,
# the history file (scripts/lib/pty_shell.py does the typing and checking).
# Also: one-shot mode's exit statuses, commands from a pipe, and
# controld's --metrics endpoint (Prometheus text, scraped in the namespace);
# a ScreenOS-saved configuration (zones, addresses, policies, the seed's
# VPN: control/config/tests/data/screenos-saved.conf) pasted into the shell
# as a terminal pastes, saved, loaded by controld --check, its zone,
# address and policy lines saved back in the same words
# (scripts/lib/pty_paste.py).
#
#   scripts/tests/cli-shell.sh
# Needs root. Binaries from $ESPRIT_BIN (default $CARGO_TARGET_DIR or target, /debug), built if
# missing. Bounded by $ESPRIT_TIMEOUT seconds (default 120).
set -uo pipefail
ESPRIT_SCRIPT=cli-shell
source "$(dirname "$0")/../lib/common.sh"
source "$ESPRIT_ROOT/scripts/lib/testlib.sh"
need_root

LIMIT=${ESPRIT_TIMEOUT:-120}
esprit_bin_dir

lab_begin shell "$LIMIT"
NS="esprit-sh$$"
# On exit, after the processes this shell started: the controld restarted
# by the shell (not a child of this script: polled until gone), then the
# namespace.
shell_exit() {
    local p _
    lab_stop_pids
    if [ -s "$WORK/controld-2.pid" ]; then
        p=$(cat "$WORK/controld-2.pid")
        kill "$p" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    fi
    ip netns del "$NS" 2>/dev/null || true
}
lab_on_exit shell_exit

# One gateway port: wan0, its veth peer in the same namespace.
ip netns add "$NS"
ip -n "$NS" link set lo up
ip -n "$NS" link add wan0 type veth peer name wan0-peer
ip -n "$NS" link set wan0 up
ip -n "$NS" link set wan0-peer up
ip -n "$NS" addr add 198.51.100.1/24 dev wan0
ip -n "$NS" addr add 198.51.100.2/24 dev wan0-peer

key=$(printf 'esprit-lab shell' | sha256sum | cut -c1-32)
auth=$(printf 'esprit-lab shell auth' | sha256sum | cut -c1-40)
cat >"$WORK/gw.conf" <<EOF
# one manual-key VPN, enough for get sa and name completion
set interface ethernet0/2 zone Untrust
set interface ethernet0/2 ip 198.51.100.1/24
set interface ethernet0/2 port wan0
set interface tunnel.1 zone Untrust
set interface tunnel.1 ip unnumbered interface ethernet0/2
set vpn "lab-vpn" manual 2011 1011 gateway 198.51.100.2 outgoing-interface "ethernet0/2" esp aes128 key $key auth sha-1 key $auth
set vpn "lab-vpn" proxy-id local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 any
set vpn "lab-vpn" id 0x11 bind interface tunnel.1
set route 10.2.1.0/24 interface tunnel.1
EOF
chmod 600 "$WORK/gw.conf"

ip netns exec "$NS" "$BIN/fastpathd" --port wan0 --xdp-mode skb --socket "$WORK/fp.sock" >"$WORK/fp.log" 2>&1 &
PID[fp]=$!
wait_socket "$WORK/fp.sock" "$WORK/fp.log" fastpathd
CONTROLD=(ip netns exec "$NS" "$BIN/controld" --config "$WORK/gw.conf" --fastpath "$WORK/fp.sock"
    --socket "$WORK/cd.sock" --state-dir "$WORK/state" --metrics 127.0.0.1:9425)
"${CONTROLD[@]}" >"$WORK/cd.log" 2>&1 &
cd_pid=$!
PID[cd]=$cd_pid
wait_socket "$WORK/cd.sock" "$WORK/cd.log" controld
for _ in $(seq 50); do "$BIN/esprit" --socket "$WORK/cd.sock" get sa 2>/dev/null | grep -q ' A/- ' && break; sleep 0.1; done

# One-shot mode is unchanged: exit status 1 on a refused command, 2 when
# controld cannot be reached.
status_is() { local want=$1; shift; local rc=0; "$@" >/dev/null 2>&1 || rc=$?; [ "$rc" = "$want" ]; }
check "one-shot: get sa succeeds" status_is 0 "$BIN/esprit" --socket "$WORK/cd.sock" get sa
check "one-shot: a bad command exits 1" status_is 1 "$BIN/esprit" --socket "$WORK/cd.sock" get nonsense
check "one-shot: no controld exits 2" status_is 2 "$BIN/esprit" --socket "$WORK/none.sock" get sa
batch() { printf 'get sa\nget nonsense\n' | "$BIN/esprit" --socket "$WORK/cd.sock" >"$WORK/batch.out" 2>&1; }
check "without a terminal, commands are read from stdin (status 1: one failed)" status_is 1 batch

# The Prometheus endpoint of that controld (loopback of the namespace).
scrape() {
    ip netns exec "$NS" python3 -c '
import sys, urllib.request, urllib.error
print(urllib.request.urlopen("http://127.0.0.1:9425/metrics", timeout=5).read().decode())
try:
    urllib.request.urlopen("http://127.0.0.1:9425/", timeout=5)
except urllib.error.HTTPError as e:
    print("status of /:", e.code)' >"$WORK/metrics.txt"
}
metrics_ok() {
    local _
    for _ in $(seq 30); do
        scrape && grep -q '^esprit_fastpath_up 1$' "$WORK/metrics.txt" && break
        sleep 0.2
    done
    grep -q '^esprit_fastpath_up 1$' "$WORK/metrics.txt" \
        && grep -q '^esprit_sa_packets_total{sa="0x0000001180000000",spi="0x00001011",direction="outbound",vpn="lab-vpn"} ' "$WORK/metrics.txt" \
        && grep -q '^esprit_worker_rx_packets_total{worker="0"} ' "$WORK/metrics.txt" \
        && grep -q '^esprit_ike_events_total{event="phase1-up"} 0$' "$WORK/metrics.txt" \
        && grep -q '^esprit_proxy_id_status{vpn="lab-vpn",proxy_id="local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 ANY",status="up"} 1$' "$WORK/metrics.txt" \
        && grep -q '^esprit_proxy_id_routes_withdrawn{vpn="lab-vpn",proxy_id="local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 ANY"} 0$' "$WORK/metrics.txt" \
        && grep -q '^status of /: 404$' "$WORK/metrics.txt" \
        && ! grep -qi "$key" "$WORK/metrics.txt" \
        || { cat "$WORK/metrics.txt" >&2; return 1; }
}
check "controld --metrics: the SA, worker and IKE counters at GET /metrics, 404 elsewhere, no key" metrics_ok

shell_run() {
    timeout --kill-after=5 60 python3 "$ESPRIT_ROOT/scripts/lib/pty_shell.py" "$BIN/esprit" "$WORK/cd.sock" \
        "$WORK" "$cd_pid" "$WORK/controld-2.pid" -- "${CONTROLD[@]}" >"$WORK/pty.out" || { cat "$WORK/pty.out"; return 1; }
    sed 's/^/    /' "$WORK/pty.out" >&2
}
check "the interactive shell in a pseudo-terminal" shell_run

# A ScreenOS-saved configuration pasted into the shell of a controld that
# starts empty (no fastpathd: the configuration is what is checked).
SAVED="$ESPRIT_ROOT/control/config/tests/data/screenos-saved.conf"
: >"$WORK/paste.conf"
chmod 600 "$WORK/paste.conf"
ip netns exec "$NS" "$BIN/controld" --config "$WORK/paste.conf" --fastpath "$WORK/no-fastpathd.sock" \
    --socket "$WORK/paste.sock" --state-dir "$WORK/paste-state" --port-map ethernet0/2=wan0 --no-syslog \
    >"$WORK/paste-cd.log" 2>&1 &
PID[paste]=$!
wait_socket "$WORK/paste.sock" "$WORK/paste-cd.log" controld
paste_run() {
    timeout --kill-after=5 90 python3 "$ESPRIT_ROOT/scripts/lib/pty_paste.py" "$BIN/esprit" "$WORK/paste.sock" \
        "$WORK" "$SAVED" >"$WORK/paste.out" || { cat "$WORK/paste.out"; return 1; }
    sed 's/^/    /' "$WORK/paste.out" >&2
}
check "a ScreenOS-saved configuration pasted into the shell (bracketed paste), then saved" paste_run
saved_loads() {
    "$BIN/controld" --check "$WORK/paste.conf" --port-map ethernet0/2=wan0 >"$WORK/check.out" 2>&1 \
        && grep -q 'configuration OK: 1 VPN(s), 1 tunnel interface(s), .* 4 AutoKey proxy-ID(s)' "$WORK/check.out" \
        || { cat "$WORK/check.out" >&2; return 1; }
}
check "controld --check loads what save wrote" saved_loads
# The kept lines, blanks made one: the same, in the same order.
kept_lines() { grep -E '^(un)?set (zone|address|group|policy|clock|hostname|src-address|dst-address) ' "$1" | tr -s ' '; }
same_words() { diff <(kept_lines "$SAVED") <(kept_lines "$WORK/paste.conf") >&2; }
check "its zone, address, group and policy lines are saved back in the same words and order" same_words

echo "cli-shell: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
