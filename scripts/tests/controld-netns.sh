#!/usr/bin/env bash
# Two gateways of the seed topology (scripts/lib/topo.sh), each a fastpathd
# programmed by a controld from a configuration file in ScreenOS syntax:
# four manual-key VPNs (the seed's four subnet pairs; p11 and p22
# AES-256-CBC/HMAC-SHA-256, p12 and p21 AES-CBC/HMAC-SHA1: manual keys never
# use GCM, RFC 4106 §8.1) bound to tunnel.1, each with its one
# proxy-ID (esprit's extension, control/config/REFERENCE.md §6.2-6.3);
# p11 with `replay window 1024 esn` at both ends, the others with the
# default window of 64 and 32-bit sequence numbers.
#  - controld --check refuses a window out of range, naming line and word;
#  - the configured window and ESN reach fastpathd's SAs (fpctl stats) and
#    `get sa id`;
#  - every pair pings, and crosses the WAN on its own SPIs (tcpdump on the
#    router's i1);
#  - `esprit unset vpn p22` under continuous traffic of the other three
#    pairs leaves them loss-free; `esprit set` brings p22 back;
#  - kill -9 of controld under traffic loses nothing, and the restarted
#    controld adopts the SAs (none re-installed: fastpathd's SA counters
#    keep counting);
#  - kill -9 of fastpathd: restarted, it is re-programmed by controld and
#    traffic resumes (the peer's anti-replay windows accept the resumed
#    sequence numbers); the gap is reported;
#  - ESN end to end: p11's sequence records are moved to 2^22 + 20 below
#    2^32 in both state files and both fastpathds restart; controld
#    resumes p11's SAs there and traffic crosses 2^32 both ways;
#  - exec reload of an unchanged file sends nothing; save writes a file
#    that controld --check accepts.
#
#   scripts/tests/controld-netns.sh [XDP_MODE]
# Needs root. Binaries from $ESPRIT_BIN (default $CARGO_TARGET_DIR or target, /debug), built if
# missing. Bounded by $ESPRIT_TIMEOUT seconds (default 300).
set -uo pipefail
ESPRIT_SCRIPT=controld-netns
source "$(dirname "$0")/../lib/common.sh"
source "$ESPRIT_ROOT/scripts/lib/testlib.sh"
source "$ESPRIT_ROOT/scripts/lib/topo.sh"
need_root

MODE=${1:-driver}
LIMIT=${ESPRIT_TIMEOUT:-300}
BIN=${ESPRIT_BIN:-$(esprit_target_dir)/debug}
for b in fastpathd fpctl controld esprit; do
    [ -x "$BIN/$b" ] || { (cd "$ESPRIT_ROOT" && cargo build -q -p esprit-controld -p esprit-fastpathd); break; }
done

lab_begin ctl "$LIMIT"


topo_up "ectl$$"
log "topology $TOPO: xdp=$MODE, work directory $WORK"

PAIRS="11 12 21 22"
# SPIs say who sends: 0x1000 + 0x10*l + r from gw1, 0x2000 + ... from gw2.
spi() { printf '%x' $((${1} + 16 * ${2:0:1} + ${2:1:1})); }
key() { printf 'esprit-lab %s %s' "$1" "$2" | sha256sum | cut -c1-"$3"; }

# vpn_lines G PAIR: the three lines of the manual-key VPN of PAIR on gateway G.
vpn_lines() {
    local g=$1 p=$2 l=${2:0:1} r=${2:1:1} in out peer local remote esp
    if [ "$g" = 1 ]; then
        in=$(spi 0x2000 "$p") out=$(spi 0x1000 "$p") peer=$(gw_wan 2) local=10.1.$l.0/24 remote=10.2.$r.0/24
    else
        in=$(spi 0x1000 "$p") out=$(spi 0x2000 "$p") peer=$(gw_wan 1) local=10.2.$r.0/24 remote=10.1.$l.0/24
    fi
    if [ "$l" = "$r" ]; then
        esp="esp aes256 key $(key "$p" encr 64) auth sha2-256 key $(key "$p" auth 64)"
    else
        esp="esp aes128 key $(key "$p" encr 32) auth sha-1 key $(key "$p" auth 40)"
    fi
    [ "$p" = 11 ] && esp="$esp replay window 1024 esn"
    echo "set vpn \"p$p\" manual $in $out gateway $peer outgoing-interface \"ethernet0/2\" $esp"
    echo "set vpn \"p$p\" proxy-id local-ip $local remote-ip $remote any"
    echo "set vpn \"p$p\" id 0x$p bind interface tunnel.1"
}

# gw1 names its Linux devices in the file; gw2 gets them from --port-map.
write_config() {
    local g=$1 peer=$((3 - $1)) p
    {
        echo "# gateway $g of the seed topology: four manual-key VPNs on tunnel.1"
        echo "set interface ethernet0/1 zone Trust"
        echo "set interface ethernet0/1 ip 10.$g.1.1/24"
        echo "set interface ethernet0/3 zone Trust"
        echo "set interface ethernet0/3 ip 10.$g.2.1/24"
        echo "set interface ethernet0/2 zone Untrust"
        echo "set interface ethernet0/2 ip $(gw_wan "$g")/24"
        if [ "$g" = 1 ]; then
            echo "set interface ethernet0/1 port lan1"
            echo "set interface ethernet0/3 port lan2"
            echo "set interface ethernet0/2 port wan0"
        fi
        echo "set interface tunnel.1 zone Untrust"
        echo "set interface tunnel.1 ip unnumbered interface ethernet0/2"
        echo "set route 0.0.0.0/0 interface ethernet0/2 gateway $([ "$g" = 1 ] && echo 198.51.100.254 || echo 203.0.113.254)"
        for p in $PAIRS; do vpn_lines "$g" "$p"; done
        echo "set route 10.$peer.1.0/24 interface tunnel.1"
        echo "set route 10.$peer.2.0/24 interface tunnel.1"
    } >"$WORK/gw$g.conf"
    chmod 600 "$WORK/gw$g.conf"
}

start_fastpathd() {
    rm -f "$WORK/fp$1.sock"
    nsx_bg "gw$1" "$BIN/fastpathd" --port lan1 --port lan2 --port wan0 --xdp-mode "$MODE" \
        --socket "$WORK/fp$1.sock" >>"$WORK/fp$1.log" 2>&1
    PID[fp$1]=$!
    wait_socket "$WORK/fp$1.sock" "$WORK/fp$1.log" "fastpathd gw$1"
}
start_controld() {
    local map=()
    [ "$1" = 2 ] && map=(--port-map ethernet0/1=lan1 --port-map ethernet0/3=lan2 --port-map ethernet0/2=wan0)
    rm -f "$WORK/cd$1.sock"
    nsx_bg "gw$1" "$BIN/controld" --config "$WORK/gw$1.conf" --fastpath "$WORK/fp$1.sock" \
        --socket "$WORK/cd$1.sock" --state-dir "$WORK/state$1" "${map[@]}" >>"$WORK/cd$1.log" 2>&1
    PID[cd$1]=$!
    wait_socket "$WORK/cd$1.sock" "$WORK/cd$1.log" "controld gw$1"
}
esprit() { local g=$1; shift; "$BIN/esprit" --socket "$WORK/cd$g.sock" "$@"; }
fpctl() { local g=$1; shift; "$BIN/fpctl" --socket "$WORK/fp$g.sock" "$@"; }
# active G N: controld of G reports N active SAs (A/-) within 10 s.
active() {
    local _
    for _ in $(seq 100); do
        [ "$(esprit "$1" get sa 2>/dev/null | grep -c ' A/- ')" = "$2" ] && return 0
        sleep 0.1
    done
    esprit "$1" get sa >&2 || true
    return 1
}
# Loss is judged with a deadline (-w): iputils ping otherwise waits only two
# round-trip times for outstanding replies once some have come, and counts a
# reply delayed on a loaded machine as lost.
ping_fails() { ! nsx "$1" ping -q -c 3 -i 0.1 -W 1 "$2" >/dev/null 2>&1; }
# Source host and destination of pair lr: h1l -> 10.2.r.10.
src() { echo "h1${1:0:1}"; }
dst() { echo "10.2.${1:1:1}.10"; }

# --- start: fastpathd, then controld, on both gateways ---
for g in 1 2; do
    write_config "$g"
    check "controld --check accepts gw$g.conf" "$BIN/controld" --check "$WORK/gw$g.conf" \
        $([ "$g" = 2 ] && echo --port-map ethernet0/1=lan1 --port-map ethernet0/3=lan2 --port-map ethernet0/2=wan0)
    start_fastpathd "$g"
    start_controld "$g"
done
# A window outside 32..4096 is refused with the line and the word.
sed 's/replay window 1024 esn/replay window 8192 esn/' "$WORK/gw1.conf" >"$WORK/bad.conf"
chmod 600 "$WORK/bad.conf"
bad_window() {
    local line
    line=$(grep -n 'replay window 8192' "$WORK/bad.conf" | cut -d: -f1)
    ! "$BIN/controld" --check "$WORK/bad.conf" 2>"$WORK/bad.err" \
        && grep -q "line $line: .*replay window 8192 esn\": bad replay window in packets \"8192\": expected a number from 32 to 4096" "$WORK/bad.err" \
        && ! grep -q "$(key 11 encr 64)" "$WORK/bad.err"
}
check "controld --check refuses replay window 8192 (line and word named, no key shown)" bad_window
four_pairs() { active 1 8 && esprit 1 get sa | grep -q 'total configured sa: 4'; }
check "gw1: get sa shows 4 configured SA pairs, 8 SAs active" four_pairs
check "gw2: 8 SAs active (devices from --port-map)" active 2 8
esprit 1 get sa | sed 's/^/    /' >&2
# sa_view G SPI: "window esn" of gateway G's SA with SPI, as fastpathd's
# workers hold it.
sa_view() {
    fpctl "$1" request '{"type":"stats"}' | python3 -c '
import json, sys
s = [x for x in json.load(sys.stdin)["sas"] if x["spi"] == int(sys.argv[1], 16)]
print(" ".join("%d %s" % (x["replay_window"], str(x["esn"]).lower()) for x in s))' "$2"
}
check "gw1: inbound SA of p11 holds window 1024 with ESN" test "$(sa_view 1 2011)" = "1024 true"
check "gw1: outbound SA of p11 uses ESN" test "$(sa_view 1 1011)" = "0 true"
check "gw2: inbound SA of p11 holds window 1024 with ESN" test "$(sa_view 2 1011)" = "1024 true"
check "gw1: inbound SA of p12 holds the default window 64, no ESN" test "$(sa_view 1 2012)" = "64 false"
check "gw1: get sa id 0x11 shows the window and ESN" \
    bash -c "'$BIN/esprit' --socket '$WORK/cd1.sock' get sa id 0x11 | grep -q 'anti-replay window 1024 packets, ESN,'"
check "gw1: get sa id 0x12 shows the default window" \
    bash -c "'$BIN/esprit' --socket '$WORK/cd1.sock' get sa id 0x12 | grep -q 'anti-replay window 64 packets, lifetime'"
topo_arp_warm

nsx_bg inet tcpdump -n -i i1 -w "$WORK/wan.pcap" -U esp >/dev/null 2>&1
PID[tcpdump]=$!
for _ in $(seq 50); do [ -s "$WORK/wan.pcap" ] && break; sleep 0.1; done

# --- 1. every pair, both ways ---
for p in $PAIRS; do
    check "pair $p: $(src "$p") -> $(dst "$p")" ping_ok "$(src "$p")" "$(dst "$p")" 10 0.05
done
check "pair 11 from gw2's side: h21 -> 10.1.1.10" ping_ok h21 10.1.1.10 5 0.05

# --- 2. unset / set of one VPN under continuous traffic of the others ---
traffic() { # traffic PAIR: bursts of 20 pings until $WORK/traffic.on goes away
    local n=0 bad=0
    while [ -e "$WORK/traffic.on" ]; do
        if ! nsx "$(src "$1")" ping -q -c 20 -i 0.01 -w 10 "$(dst "$1")" >"$WORK/burst-$1.out" 2>&1 \
            || ! grep -q " 0% packet loss" "$WORK/burst-$1.out"; then
            bad=$((bad + 1))
            grep loss "$WORK/burst-$1.out" >&2 || true
        fi
        n=$((n + 1))
    done
    echo "$n $bad" >"$WORK/traffic-$1"
}
traffic_start() { touch "$WORK/traffic.on"; T=(); for p in "$@"; do traffic "$p" & T+=($!); EXTRA+=($!); done; }
traffic_stop() { # traffic_stop WHAT PAIRS...: every burst of every pair loss-free
    local what=$1 p n bad
    shift
    rm -f "$WORK/traffic.on"
    wait "${T[@]}" 2>/dev/null || true
    for p in "$@"; do
        read -r n bad <"$WORK/traffic-$p"
        check "$what: pair $p: $n ping bursts, $bad with loss" test "$bad" -eq 0 -a "$n" -gt 0
    done
}

# The control: the same bursts with nothing changing. Loss here is the
# machine's (CPU starvation of the poll-mode workers on shared cores), not
# controld's.
traffic_start 11 12 21 22
sleep 3
traffic_stop "steady traffic, no change (control measurement)" 11 12 21 22

traffic_start 11 12 21
sleep 1
for g in 1 2; do
    check "gw$g: esprit unset vpn p22" esprit "$g" unset vpn p22
done
check "gw1: 6 SAs active after the unset" active 1 6
check "pair 22 no longer passes" ping_fails h12 10.2.2.10
sleep 1
for g in 1 2; do
    vpn_lines "$g" 22 >"$WORK/p22-$g.lines"
    ok=1
    while read -r line; do
        eval "set -- $line"
        esprit "$g" "$@" >/dev/null || ok=0
    done <"$WORK/p22-$g.lines"
    check "gw$g: esprit set brings vpn p22 back (3 lines)" test "$ok" = 1
    # gw1 reads its counters (every second) before gw2's outbound SA comes
    # back 2^22 above its last number: that jump must not count as gw1's
    # busiest second, or gw1's window resumes 2^22 above after the
    # fastpathd restart below and pair 22 stays black-holed.
    [ "$g" = 1 ] && sleep 1.5
done
check "gw1: 8 SAs active again" active 1 8
check "pair 22 passes again" ping_ok h12 10.2.2.10 10 0.05
sleep 1
traffic_stop "during unset/set of p22" 11 12 21
config_error() {
    local out
    out=$(esprit 1 unset vpn nothere 2>&1) && return 1
    [ "$out" = 'esprit: "unset vpn nothere": vpn "nothere" does not exist' ]
}
check "a set/unset error is the configuration crate's" config_error

# --- 3. kill -9 controld under traffic: nothing lost, SAs adopted ---
sa_packets() { # sa_packets G -> "id packets" per SA
    fpctl "$1" request '{"type":"stats"}' | python3 -c '
import json, sys
for s in json.load(sys.stdin)["sas"]:
    print(s["id"], s["packets"])'
}
traffic_start 11 12 21 22
sleep 1
sa_packets 1 >"$WORK/sa-before"
kill -9 "${PID[cd1]}"
wait "${PID[cd1]}" 2>/dev/null || true
sleep 1
start_controld 1
check "restarted controld: 8 SAs active" active 1 8
sleep 1
sa_packets 1 >"$WORK/sa-after"
traffic_stop "controld killed and restarted" 11 12 21 22
check "restarted controld adopted all 8 SAs, installed none" \
    grep -q "fastpathd synchronised: [0-9]* request(s), 8 SA(s) adopted, 0 installed" <(tail -n 20 "$WORK/cd1.log")
counters_kept() { # every SA's packet counter only grew (a re-installed SA would start at 0)
    python3 - "$WORK/sa-before" "$WORK/sa-after" <<'PY'
import sys
before = dict(l.split() for l in open(sys.argv[1]))
after = dict(l.split() for l in open(sys.argv[2]))
bad = [i for i in before if int(after.get(i, -1)) < int(before[i]) or int(before[i]) == 0]
print("SA packet counters before/after:", {i: (before[i], after.get(i)) for i in before}, file=sys.stderr)
sys.exit(1 if bad or len(before) != 8 else 0)
PY
}
check "fastpathd's SA counters were not reset (no SA re-installed)" counters_kept

# --- 4. kill -9 fastpathd: re-programmed by controld, traffic resumes ---
kill -9 "${PID[fp1]}"
wait "${PID[fp1]}" 2>/dev/null || true
sleep 1
t0=$(date +%s.%N)
start_fastpathd 1
t_sock=$(date +%s.%N)
# gw1's inbound windows resume above what they had accepted plus a margin
# (nothing accepted before a restart is accepted again;
# control/controld/README.md): gw2's packets stay below it, and are dropped
# as replays, until gw2's sequence numbers pass it. advance pushes the
# gw2 -> gw1 direction of the pairs named forward (400 echo requests from
# gw2's side each); each round advances only the pairs that do not answer
# yet, until every pair does (bounded: 60 rounds), so a starved machine
# takes more rounds rather than failing.
advance() {
    local p a=()
    for p in "$@"; do
        nsx "h2${p:1:1}" ping -q -c 400 -i 0.002 -W 0.2 "10.1.${p:0:1}.10" >/dev/null 2>&1 &
        a+=($!)
    done
    wait "${a[@]}" 2>/dev/null || true
}
pending=$PAIRS
for _ in $(seq 60); do
    left=()
    for p in $pending; do
        nsx "$(src "$p")" ping -c 1 -W 0.2 "$(dst "$p")" >/dev/null 2>&1 || left+=("$p")
    done
    pending=${left[*]:-}
    [ -z "$pending" ] && break
    advance $pending
done
got=0
[ -z "$pending" ] && got=1
check "gw1 dropped gw2's packets below its resumed windows as replays" \
    bash -c "'$BIN/esprit' --socket '$WORK/cd1.sock' get counter | grep -q replay-too-old"
t1=$(date +%s.%N)
gap=$(python3 -c "print(f'{$t1 - $t0:.2f} s (fastpathd socket up after {$t_sock - $t0:.2f} s)')")
log "restart gap, fastpathd restart to a reply on every pair (gw2 pushed past gw1's resumed windows): $gap"
check "traffic resumes on every pair after fastpathd's restart (gap $gap; not yet: ${pending:-none})" test "$got" = 1
check "controld re-installed all 8 SAs" \
    grep -q "fastpathd synchronised: [0-9]* request(s), 0 SA(s) adopted, 8 installed" <(tail -n 20 "$WORK/cd1.log")
for p in $PAIRS; do
    check "pair $p after fastpathd's restart (peer accepts the resumed sequence numbers)" ping_ok "$(src "$p")" "$(dst "$p")" 5 0.05
done
check "pair 11 from gw2's side after the restart" ping_ok h21 10.1.1.10 5 0.05

# --- 4b. ESN across 2^32, driven by controld ---
# As if 2^32 - 2^22 - 20 packets had crossed p11's SAs: both controlds are
# stopped, p11's records in their state files moved there, both fastpathds
# restarted. controld resumes p11's outbound SAs 2^22 above the record
# (2^32 - 20) and its inbound windows at most that far above it
# (control/controld/README.md), so the first packets are accepted and the
# next 40 echo requests and replies cross 2^32 on both SAs.
ESN_MARK=$(((1 << 32) - (1 << 22) - 20))
for g in 1 2; do
    kill -9 "${PID[cd$g]}"
    wait "${PID[cd$g]}" 2>/dev/null || true
done
move_p11() { # move_p11 STATEDIR: p11's sequence records to $ESN_MARK
    # controld.json is a snapshot and controld.journal what changed since
    # (control/controld/src/core/state.rs): fold the journal's whole
    # appends into the snapshot, move the marks, write the snapshot and an
    # empty journal of its generation.
    python3 - "$1" "$ESN_MARK" <<'PY'
import hashlib, json, os, struct, sys
d, mark = sys.argv[1], int(sys.argv[2])
st = json.load(open(os.path.join(d, "controld.json")))
data = open(os.path.join(d, "controld.journal"), "rb").read()
at, append, gen = 0, [], None
while at + 21 <= len(data):
    n, kind = struct.unpack(">IB", data[at:at + 5])
    payload = data[at + 21:at + 21 + n]
    if len(payload) < n or hashlib.sha256(data[at:at + 5] + payload).digest()[:16] != data[at + 5:at + 21]:
        break
    r = json.loads(payload)
    if "begin" in r:
        gen = r["begin"]["generation"]
    else:
        append.append(r)
    at += 21 + n
    if kind == 1:
        if gen == st.get("generation", 0):
            for r in append:
                if "sa" in r:
                    k = str(r["sa"]["id"])
                    if r["sa"]["record"] is None:
                        st["sas"].pop(k, None)
                    else:
                        st["sas"][k] = r["sa"]["record"]
                elif "seq" in r:
                    if r["seq"]["mark"] is None:
                        st["seqs"].pop(r["seq"]["keys"], None)
                    else:
                        st["seqs"][r["seq"]["keys"]] = r["seq"]["mark"]
                elif "ids" in r:
                    st.update(r["ids"])
        append = []
moved = 0
for sa_id, rec in st["sas"].items():
    if int(sa_id) >> 32 == 0x11 and rec.get("keys") in st["seqs"]:
        st["seqs"][rec["keys"]]["seq"] = mark
        moved += 1
def write(name, data):
    tmp = os.path.join(d, name + ".tmp")
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as f:
        f.write(data)
    os.rename(tmp, os.path.join(d, name))
write("controld.json", json.dumps(st).encode())
begin = json.dumps({"begin": {"version": 2, "generation": st.get("generation", 0)}}, separators=(",", ":")).encode()
head = struct.pack(">IB", len(begin), 1)
write("controld.journal", head + hashlib.sha256(head + begin).digest()[:16] + begin)
sys.exit(0 if moved == 2 else 1)
PY
}
for g in 1 2; do check "gw$g: p11's two sequence records moved below 2^32" move_p11 "$WORK/state$g"; done
for g in 1 2; do
    kill -9 "${PID[fp$g]}"
    wait "${PID[fp$g]}" 2>/dev/null || true
done
for g in 1 2; do
    start_fastpathd "$g"
    start_controld "$g"
done
check "gw1: 8 SAs active after both restarts" active 1 8
check "gw2: 8 SAs active after both restarts" active 2 8
check "pair 11 across 2^32 with ESN: 40 pings" ping_ok h11 10.2.1.10 40 0.02
esn_seq() { # esn_seq G SPI -> "seq esn" of gateway G's SA with SPI
    fpctl "$1" request '{"type":"stats"}' | python3 -c '
import json, sys
s = [x for x in json.load(sys.stdin)["sas"] if x["spi"] == int(sys.argv[1], 16)]
print(" ".join("%d %s" % (x["seq"], str(x["esn"]).lower()) for x in s))' "$2"
}
crossed() { # crossed G SPI: the SA's sequence number passed 2^32 + 10, with ESN
    local seq e
    read -r seq e <<<"$(esn_seq "$1" "$2")"
    log "gw$1 SA $2: sequence $seq, esn $e"
    [ "${seq:-0}" -gt $(((1 << 32) + 10)) ] && [ "$e" = true ]
}
check "gw1 sent p11 past 2^32 (SPI 1011)" crossed 1 1011
check "gw2 accepted p11 past 2^32 (SPI 1011)" crossed 2 1011
check "gw2 sent p11 past 2^32 (SPI 2011)" crossed 2 2011
check "gw1 accepted p11 past 2^32 (SPI 2011)" crossed 1 2011
# The other pairs resume as after any restart of both fastpathds: a few
# packets may fall inside the peer's resumed window first (each side's
# last reading of the counters is up to a second old).
both_back() {
    local p _
    for p in 12 21 22; do
        for _ in 1 2 3 4 5; do ping_ok "$(src "$p")" "$(dst "$p")" 5 0.05 && continue 2; done
        return 1
    done
}
check "pairs 12, 21, 22 carry traffic again after both restarts" both_back

# --- 5. reload and save ---
reload_noop() { local out; out=$(esprit 1 exec reload) && ! grep -q request <<<"$out"; }
check "exec reload of the unchanged file sends nothing" reload_noop
cp "$WORK/gw1.conf" "$WORK/gw1.conf.orig"
check "save writes the running configuration" esprit 1 save
check "controld --check accepts the saved file" "$BIN/controld" --check "$WORK/gw1.conf"

# --- 6. the WAN capture: every pair on its own SPIs ---
kill "${PID[tcpdump]}" 2>/dev/null || true
wait "${PID[tcpdump]}" 2>/dev/null || true
unset 'PID[tcpdump]'
tcpdump -n -r "$WORK/wan.pcap" 2>/dev/null | grep -o 'spi=0x[0-9a-f]*' | sort | uniq -c >"$WORK/spis.txt"
sed 's/^/    /' "$WORK/spis.txt" >&2
spi_seen() { grep -q "spi=0x$(printf %08x "$1")\$" "$WORK/spis.txt"; }
for p in $PAIRS; do
    check "pair $p: gw1->gw2 on SPI 0x$(spi 0x1000 "$p")" spi_seen "0x$(spi 0x1000 "$p")"
    check "pair $p: gw2->gw1 on SPI 0x$(spi 0x2000 "$p")" spi_seen "0x$(spi 0x2000 "$p")"
done
check "no other SPI on the wire" test "$(wc -l <"$WORK/spis.txt")" -eq 8

for g in 1 2; do
    fpctl "$g" request '{"type":"stats"}' >"$WORK/stats$g.json"
    log "gw$g drops: $(python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); print([w["drops"] for w in s["workers"]])' "$WORK/stats$g.json")"
done

echo "controld-netns ($MODE): $pass passed, $fail failed"
[ "$fail" -eq 0 ]
