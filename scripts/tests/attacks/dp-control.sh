#!/usr/bin/env bash
# fastpathd's side of the secrets: its control socket (which carries SA keys).
#  - it exists with mode 0600 (0660 and the group with --socket-group) as
#    soon as it exists: bound in a private 0700 directory and renamed;
#  - a peer that is neither root nor in the --socket-group is refused by
#    its credentials (SO_PEERCRED) even where the file mode would let it
#    connect (a socket chmod-ed 0666 by mistake), and counted;
#  - a member of the --socket-group (nobody, primary group nogroup) is
#    served;
#  - a request line over 1 MiB gets a clear error and the connection is
#    closed, counted; fastpathd's memory does not grow with the line.
#
#   flock /tmp/esprit-netns.lock bash scripts/tests/attacks/dp-control.sh
# Needs root; builds the binaries (debug) if missing. Ends with
# "N passed, M failed" and exits non-zero on a failure.
set -uo pipefail
ESPRIT_SCRIPT=dp-control
source "$(dirname "$0")/../../lib/common.sh"
source "$ESPRIT_ROOT/scripts/lib/testlib.sh"
need_root
esprit_bin_dir
PY=/usr/bin/python3

NS="dpc$$"
WORK=$(mktemp -d /tmp/esprit-dpc.XXXXXX)
chmod 0755 "$WORK" # nobody must reach the socket's directory
PIDS=()
EXTRA=()
cleanup() {
    local p
    for p in "${PIDS[@]}" "${EXTRA[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    ip netns del "$NS" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
watchdog 120

ip netns add "$NS"
ip -n "$NS" link add p0 type veth peer name p1
ip -n "$NS" link set p0 up
ip -n "$NS" link set p1 up

# A client in Python (readable by any user, unlike the build tree): sends
# LINE (or N bytes of padding without a newline) and prints the reply.
cat >"$WORK/client.py" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    s.connect(sys.argv[1])
except OSError as e:
    print(f"connect: {e.strerror}")
    sys.exit(0)
s.settimeout(10)
what = sys.argv[2]
try:
    if what.startswith("pad:"):
        n = int(what[4:])
        chunk = b" " * 65536
        sent = 0
        while sent < n:
            sent += s.send(chunk[: min(len(chunk), n - sent)])
    else:
        s.sendall(what.encode() + b"\n")
except OSError as e:
    pass
data = b""
while not data.endswith(b"\n"):
    try:
        b = s.recv(65536)
    except OSError:
        break
    if not b:
        break
    data += b
print(data.decode().strip())
PY
client() { $PY "$WORK/client.py" "$@"; }
as_nobody() { setpriv --reuid nobody --regid nogroup --clear-groups $PY "$WORK/client.py" "$@"; }
# The protocol version fastpathd speaks, from the one place it is defined.
PROTO=$(sed -n 's/^pub const PROTOCOL_VERSION: u32 = \([0-9]*\);/\1/p' "$ESPRIT_ROOT/fastpath/api/src/lib.rs")
[ -n "$PROTO" ] || die "PROTOCOL_VERSION not found in fastpath/api/src/lib.rs"
HELLO='{"id":1,"request":{"type":"hello","version":'"$PROTO"',"client":"dp-control"}}'
counter() { # counter NAME: fastpathd's own counter
    "$BIN/fpctl" --socket "$SOCK" request '{"type":"stats"}' | $PY -c '
import json, sys
print(sum(v for k, v in json.load(sys.stdin).get("daemon", []) if k == sys.argv[1]))' "$1"
}
start() { # start SOCKET ARGS...
    SOCK=$1
    shift
    ip netns exec "$NS" "$BIN/fastpathd" --port p0 --xdp-mode driver --socket "$SOCK" "$@" >"$WORK/fp.log" 2>&1 &
    FP=$!
    PIDS+=("$FP")
    # Watch the path from the first moment: any mode but the final one
    # seen there is a window.
    local _ modes=""
    for _ in $(seq 2000); do
        [ -e "$SOCK" ] && { modes=$(stat -c '%a %G' "$SOCK"); break; }
        sleep 0.005
    done
    FIRST_MODE=$modes
    [ -S "$SOCK" ] || { cat "$WORK/fp.log" >&2; die "fastpathd did not start"; }
}
stop() {
    kill -TERM "$FP" 2>/dev/null
    wait "$FP" 2>/dev/null
}

# 1. Root only.
start "$WORK/sock/fp.sock"
check "the socket's first observed mode is 0600 ($FIRST_MODE)" test "$FIRST_MODE" = "600 root"
check "nothing but the socket in its directory (no private directory left)" \
    test "$(ls -A "$WORK/sock")" = "fp.sock"
check "root is served" bash -c "$PY $WORK/client.py $SOCK '$HELLO' | grep -q '\"kind\":\"hello\"'"
check "nobody cannot even connect (mode 0600)" \
    bash -c "setpriv --reuid nobody --regid nogroup --clear-groups $PY $WORK/client.py $SOCK '$HELLO' | grep -q 'connect: Permission denied'"
# A mistaken chmod opens the file: the credentials still refuse.
chmod 0666 "$SOCK"
chmod 0755 "$WORK/sock"
reply=$(as_nobody "$SOCK" "$HELLO")
log "    nobody through a 0666 socket: $reply"
check "a stranger passing the file mode is refused by its credentials" \
    test "$reply" = '{"type":"reply","id":0,"result":{"Err":"refused: peer is neither root nor a member of fastpathd'"'"'s --socket-group"}}'
check "counted (control-refused-peer 1)" test "$(counter control-refused-peer)" = 1

# 2. Request lines are bounded.
rss0=$(awk '/VmRSS/ { print $2 }' "/proc/$FP/status")
reply=$(client "$SOCK" "pad:$((8 << 20))")
rss1=$(awk '/VmRSS/ { print $2 }' "/proc/$FP/status")
log "    8 MiB without a newline: $reply; fastpathd RSS $rss0 -> $rss1 kB"
check "a line over 1 MiB: error reply, connection closed" \
    test "$reply" = '{"type":"reply","id":0,"result":{"Err":"request line longer than 1048576 bytes: connection closed"}}'
check "counted (control-line-too-long 1)" test "$(counter control-line-too-long)" = 1
check "fastpathd's memory did not take the line (RSS +$((rss1 - rss0)) kB < 2048)" test $((rss1 - rss0)) -lt 2048
reply=$(client "$SOCK" '{"id":7,"request":{"type":"add-sa","encr_key":"00112233445566778899aabbccddeeff"}}')
log "    malformed add-sa: $reply"
check "a malformed request is answered without echoing its key" \
    bash -c "[[ '$reply' == *'malformed request: not a request of this protocol'* && '$reply' != *00112233* ]]"
stop

# 3. A group may be admitted.
start "$WORK/sock2/fp.sock" --socket-group nogroup
check "with --socket-group nogroup: first observed mode 0660, group nogroup ($FIRST_MODE)" \
    test "$FIRST_MODE" = "660 nogroup"
chmod 0755 "$WORK/sock2"
check "nobody (group nogroup) is served" bash -c "setpriv --reuid nobody --regid nogroup --clear-groups $PY $WORK/client.py $SOCK '$HELLO' | grep -q '\"kind\":\"hello\"'"
check "nothing refused" test "$(counter control-refused-peer)" = 0
stop

echo -n "dp-control: "
summary
