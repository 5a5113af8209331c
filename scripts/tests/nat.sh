#!/usr/bin/env bash
# NAT traversal through a real NAT: esprit (gw1) behind a masquerading
# router, strongSwan (IKEv1, kernel-libipsec) outside it.
#
#   h11 10.1.1.10 -- gw1 198.51.100.1 -- i1 [inet: NAT] i2 -- 203.0.113.2 gw2 -- h21 10.2.1.10
#                    (esprit, inside)      nftables masquerade     (strongSwan)
#                                          to 203.0.113.254, ports
#                                          fully random; from outside
#                                          only what conntrack knows
#
# esprit: `set ike gateway "swan" nat-traversal keepalive-frequency 2`,
# `dpd-liveness interval 2 retry 3`, one proxy-ID, child lifetime 30 s.
# strongSwan: remote_addrs = %any (it sees esprit as the NAT's address),
# DPD every 2 s. Checked, with a capture on the router's outside port:
#
#  1. on demand through the NAT: the first ping h11 -> h21 is answered;
#     esprit logs NAT-T on with itself behind the NAT (keepalive every
#     2 s), strongSwan logs the peer behind a NAT; ESP crosses the outside
#     as UDP 4500 only (no IP protocol 50), from the NAT's address;
#  2. traffic both ways (h11 -> h21 and h21 -> h11);
#  3. NAT-keepalives (one 0xFF octet, RFC 3948 §2.3) from the NAT's 4500
#     mapping: over a 10 s window under traffic, 4 to 6 of them, every
#     gap between two within 1.7-2.5 s; none from strongSwan (not behind
#     a NAT);
#  4. DPD through the NAT: strongSwan answers esprit's R-U-THERE;
#     keepalives sent to esprit pass fastpathd's XDP program to the kernel
#     (`pass-ike-natt`) and controld drops them, uncounted and unlogged;
#  5. child rekey through the NAT (85-90% of 30 s): a new SPI pair in
#     `get sa`, still ESP in UDP, pings answered on it;
#  6. the NAT's state flushed (`conntrack -F`) with pings running both
#     ways: esprit's next datagram makes a new mapping (a new random
#     port), strongSwan's datagrams to the old one are dropped by the NAT;
#     esprit's next R-U-THERE from the new mapping authenticates, and
#     strongSwan moves the ISAKMP SA to the new port (strongSwan IKEv1
#     takes the peer's address from every authenticated message) and
#     rekeys the child to it (kernel-libipsec cannot move an SA): both
#     directions pass again within 5 s, without a new phase 1. The flush
#     comes after the rekey's Delete, so that only DPD can be what moved
#     strongSwan.
#
# Ends with "N passed, M failed". Needs root. Bounded by $ESPRIT_TIMEOUT
# seconds (default 180). Cleans up (processes by PID, namespaces) on any
# exit. Binaries from $ESPRIT_BIN (default $CARGO_TARGET_DIR or target,
# /debug), built if missing. ESPRIT_KEEP=1 keeps the logs.
set -uo pipefail
ESPRIT_SCRIPT=nat
source "$(dirname "$0")/../lib/common.sh"
source "$ESPRIT_ROOT/scripts/lib/testlib.sh"
source "$ESPRIT_ROOT/scripts/lib/topo.sh"
source "$ESPRIT_ROOT/scripts/lib/strongswan.sh"
need_root

[ $# -eq 0 ] || die "usage: scripts/tests/nat.sh (no arguments; see the header)"
LIMIT=${ESPRIT_TIMEOUT:-180}
PSK="esprit-nat-psk-0123456789"
# The NAT's outside address.
PUBLIC=203.0.113.254
KEEPALIVE=2
RECOVER_SECS=5

swan_packages
apt_install tcpdump iproute2 iputils-ping nftables conntrack
esprit_bin_dir

lab_begin nat "$LIMIT"

esprit() { "$BIN/esprit" --socket "$WORK/cd.sock" "$@"; }
now() { date +%s.%N; }
# wait_for SECS COMMAND...: COMMAND succeeds within SECS (polled every 0.1 s).
wait_for() {
    local n=$(($1 * 10)) _
    shift
    for _ in $(seq "$n"); do "$@" && return 0; sleep 0.1; done
    return 1
}
# outside FILTER: the capture on the NAT's outside port, read with epoch
# timestamps, through a tcpdump FILTER.
outside() { tcpdump -tt -n -r "$WORK/outside.pcap" "$1" 2>/dev/null; }
# esprit's ESP (in UDP) on the outside: the NAT's port of it, per packet.
esprit_ports() { outside "udp and src host $PUBLIC and dst port 4500 and udp[4:2] > 9" | awk '{ print $1, $3 }'; }
keepalives() { outside "udp and src host $PUBLIC and dst host 203.0.113.2 and dst port 4500 and udp[4:2] = 9"; }

write_gw1_config() {
    cat >"$WORK/gw1.conf" <<EOF
set ike p2-proposal "p2-30s" no-pfs esp aes128gcm second 30
set interface ethernet0/1 zone Trust
set interface ethernet0/1 ip 10.1.1.1/24
set interface ethernet0/1 port lan1
set interface ethernet0/2 zone Untrust
set interface ethernet0/2 ip 198.51.100.1/24
set interface ethernet0/2 port wan0
set interface tunnel.1 zone Untrust
set interface tunnel.1 ip unnumbered interface ethernet0/2
set route 0.0.0.0/0 interface ethernet0/2 gateway 198.51.100.254
set ike gateway "swan" address 203.0.113.2 Main outgoing-interface "ethernet0/2" preshare "$PSK" proposal "pre-g14-aes128-sha"
set ike gateway "swan" nat-traversal keepalive-frequency $KEEPALIVE
set ike gateway "swan" dpd-liveness interval 2 retry 3
set vpn "vpn1" gateway "swan" replay tunnel idletime 0 proposal "p2-30s"
set vpn "vpn1" id 0x1 bind interface tunnel.1
set vpn "vpn1" proxy-id check
set vpn "vpn1" proxy-id local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 any
set route 10.2.1.0/24 interface tunnel.1
EOF
    chmod 600 "$WORK/gw1.conf"
}

write_swanctl() {
    cat >"$SWAN_DIR/swanctl.conf" <<EOC
connections {
  esprit {
    version = 1
    local_addrs = 203.0.113.2
    remote_addrs = %any
    proposals = aes128-sha1-modp2048
    aggressive = no
    keyingtries = 1
    dpd_delay = 2s
    local  { auth = psk
             id = 203.0.113.2 }
    remote { auth = psk
             id = 198.51.100.1 }
    children {
      p11 { local_ts = 10.2.1.0/24
            remote_ts = 10.1.1.0/24
            mode = tunnel
            esp_proposals = aes128gcm16
            life_time = 66m
            start_action = none }
    }
  }
}
secrets { ike-esprit { id-a = 198.51.100.1
                       id-b = 203.0.113.2
                       secret = "$PSK" } }
EOC
}

# The NAT: the router masquerades what goes out of i2 from the inside
# (ports fully random, as carrier-grade NATs do: a new mapping gets a new
# port) and lets in from outside only what its connection tracking knows.
nat_up() {
    nsx inet nft -f - <<'EOF'
table ip nat_lab {
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "i2" ip saddr 198.51.100.0/24 masquerade fully-random
  }
  chain forward {
    type filter hook forward priority filter; policy accept;
    iifname "i2" ct state established,related accept
    iifname "i2" drop
  }
}
EOF
}

# The topology, the NAT, strongSwan on gw2, esprit on gw1, the capture.
topo_up "nt$$"
nat_up || die "nftables NAT rules refused"
nsx gw2 sysctl -qw net.ipv4.ip_forward=1
nsx gw2 sysctl -qw net.ipv4.conf.all.rp_filter=0
swan_start "$TOPO-gw2" "$WORK/swan" || die "charon did not start"
write_swanctl
swan_ctl --load-all --clear --noprompt --file "$SWAN_DIR/swanctl.conf" >"$WORK/swan-load.log" 2>&1 ||
    { cat "$WORK/swan-load.log" >&2; die "swanctl --load-all failed"; }
write_gw1_config
check "controld --check accepts the configuration (nat-traversal keepalive-frequency $KEEPALIVE)" \
    "$BIN/controld" --check "$WORK/gw1.conf"
nsx_bg gw1 "$BIN/fastpathd" --port lan1 --port wan0 --xdp-mode "${XDP_MODE:-driver}" \
    --socket "$WORK/fp.sock" >"$WORK/fp.log" 2>&1
PID[fp]=$!
wait_socket "$WORK/fp.sock" "$WORK/fp.log" "fastpathd"
nsx_bg gw1 "$BIN/controld" --config "$WORK/gw1.conf" --fastpath "$WORK/fp.sock" \
    --socket "$WORK/cd.sock" --state-dir "$WORK/state" >"$WORK/cd.log" 2>&1
PID[cd]=$!
wait_socket "$WORK/cd.sock" "$WORK/cd.log" "controld"
nsx h11 ping -c 1 -W 2 10.1.1.1 >/dev/null 2>&1 || true
nsx h21 ping -c 1 -W 2 10.2.1.1 >/dev/null 2>&1 || true
nsx gw1 ping -c 1 -W 2 198.51.100.254 >/dev/null 2>&1 || true
nsx gw2 ping -c 1 -W 2 203.0.113.254 >/dev/null 2>&1 || true
nsx_bg inet tcpdump --immediate-mode -n -i i2 -w "$WORK/outside.pcap" -U 'udp port 500 or udp port 4500 or ip proto 50' >/dev/null 2>&1
PID[tcpdump]=$!
wait_for 5 test -s "$WORK/outside.pcap" || die "tcpdump did not start"

# 1. On demand through the NAT.
log "=== on-demand negotiation through the NAT"
first=$(nsx h11 ping -c 1 -W 8 10.2.1.10 2>&1)
check "the first ping h11 -> h21 is answered (Main Mode + Quick Mode through the NAT)" \
    grep -q " 0% packet loss" <<<"$first"
T_UP=$(now)
check "esprit: NAT-T on, esprit behind the NAT, keepalive every $KEEPALIVE s" \
    grep -q "phase 1 up .*NAT-T on: ESP in UDP 4500, we are behind a NAT: keepalive every $KEEPALIVE s" "$WORK/cd.log"
check "strongSwan: the peer is behind a NAT" grep -q "remote host is behind NAT" "$WORK/swan/charon.log"
check "esprit get sa: the pair is active" wait_for 5 bash -c "[ \"\$('$BIN/esprit' --socket '$WORK/cd.sock' get sa | grep -c ' A/U ')\" = 2 ]"

# 2. Traffic both ways.
check "10 pings h11 -> h21" ping_ok h11 10.2.1.10 10
check "10 pings h21 -> h11" ping_ok h21 10.1.1.10 10
esp_udp() { outside "udp port 4500 and udp[4:2] > 9" | grep -c 'spi=0x'; }
wait_for 5 bash -c "[ \$(tcpdump -n -r '$WORK/outside.pcap' 'udp port 4500' 2>/dev/null | grep -c 'spi=0x') -ge 40 ]"
esp_raw=$(outside "ip proto 50" | wc -l)
check "ESP on the outside is UDP 4500 only ($(esp_udp) ESP-in-UDP, $esp_raw IP protocol 50)" \
    test "$(esp_udp)" -ge 40 -a "$esp_raw" = 0
from_nat=$(esprit_ports | awk '{ print $2 }' | sed 's/\.[0-9]*$//' | sort -u | tr '\n' ' ')
check "esprit's ESP leaves the NAT from its address ($from_nat)" test "$from_nat" = "$PUBLIC "

# 3. Keepalives at the configured frequency, under traffic both ways.
log "=== NAT-keepalives every $KEEPALIVE s"
W0=$(now)
nsx h21 ping -q -c 50 -i 0.2 10.1.1.10 >"$WORK/window-h21.out" 2>&1 &
w1=$!
nsx h11 ping -q -c 50 -i 0.2 10.2.1.10 >"$WORK/window-h11.out" 2>&1
wait "$w1"
W1=$(awk -v w0="$W0" 'BEGIN { printf "%.6f", w0 + 10 }')
wait_for 3 bash -c "[ \"\$(date +%s.%N)\" \> $W1 ]"
keepalives | awk -v a="$W0" -v b="$W1" '$1 >= a && $1 < b { print $1 }' >"$WORK/keepalives.txt"
n=$(wc -l <"$WORK/keepalives.txt")
gaps=$(awk 'NR > 1 { printf "%.2f ", $1 - p } { p = $1 }' "$WORK/keepalives.txt")
log "    $n keepalives in 10 s; gaps (s): $gaps"
check "keepalives in a 10 s window: $n (4 to 6 at one every $KEEPALIVE s)" test "$n" -ge 4 -a "$n" -le 6
check "every gap between two keepalives is 1.7-2.5 s" \
    awk '{ if (NR > 1 && ($1 - p < 1.7 || $1 - p > 2.5)) bad = 1; p = $1 } END { exit bad }' "$WORK/keepalives.txt"
ports=$(keepalives | awk '{ print $3 }' | sort -u | tr '\n' ' ')
esp_port=$(esprit_ports | tail -1 | awk '{ print $2 }')
check "keepalives come from esprit's 4500 mapping ($ports= $esp_port)" test "$ports" = "$esp_port "
check "none from strongSwan (not behind a NAT)" \
    test "$(outside "udp and src host 203.0.113.2 and udp[4:2] = 9" | wc -l)" = 0
check "the pings of the window: none lost" grep -q " 0% packet loss" "$WORK/window-h21.out" "$WORK/window-h11.out"

# 4. DPD through the NAT.
check "DPD: strongSwan answers esprit's R-U-THERE through the NAT" \
    wait_for 6 bash -c "grep -q 'parsed INFORMATIONAL_V1 request .*N(DPD)' '$WORK/swan/charon.log' &&
        grep -q 'generating INFORMATIONAL_V1 request .*N(DPD_ACK)' '$WORK/swan/charon.log'"

# Keepalives received are no error: five from the router's inside address
# to esprit's 4500 reach the kernel through fastpathd's XDP program (its
# `pass-ike-natt` verdict), and controld drops them without a count or a
# log line.
xdp_verdict() {
    "$BIN/fpctl" --socket "$WORK/fp.sock" request '{"type":"stats"}' | python3 -c '
import json, sys
print(sum(n for p in json.load(sys.stdin)["ports"] if p["port"] == "wan0" for k, n in p["verdicts"] if k == sys.argv[1]))' "$1"
}
ike_counts() {
    esprit get counter --json | python3 -c '
import json, sys
d = json.load(sys.stdin)
print(json.dumps([d["ike_ingest_dropped"], d["ike_discards"]], sort_keys=True))'
}
natt_before=$(xdp_verdict pass-ike-natt)
ike_before=$(ike_counts)
log_before=$(wc -l <"$WORK/cd.log")
nsx inet python3 -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("198.51.100.254", 4500))
for _ in range(5):
    s.sendto(b"\xff", ("198.51.100.1", 4500))'
natt_5() { [ "$(xdp_verdict pass-ike-natt)" -ge $((natt_before + 5)) ]; }
wait_for 3 natt_5
natt_after=$(xdp_verdict pass-ike-natt)
check "5 keepalives received: fastpathd passes them to the kernel (pass-ike-natt $natt_before -> $natt_after)" \
    test "$natt_after" -ge $((natt_before + 5))
check "... and controld drops them uncounted (IKE ingest drops and discards unchanged)" test "$(ike_counts)" = "$ike_before"
check "... and unlogged" bash -c "! tail -n +$((log_before + 1)) '$WORK/cd.log' | grep -q '198.51.100.254'"

# 5. Child rekey through the NAT (esprit's lifetime 30 s: 25.5-27 s).
log "=== child rekey through the NAT"
spis_before=$(esprit get sa | awk '/ A\/U / { print $5 }' | sort | tr '\n' ' ')
check "esprit rekeys the child within 32 s of the first SA" \
    wait_for 30 grep -q "rekeyed: child SA .* superseded by" "$WORK/cd.log"
check "the new pair is active" wait_for 5 bash -c "'$BIN/esprit' --socket '$WORK/cd.sock' get sa | grep ' A/U ' | grep -vqE '$(echo "$spis_before" | sed 's/ $//; s/ /|/g')'"
check "10 pings h11 -> h21 after the rekey" ping_ok h11 10.2.1.10 10
check "10 pings h21 -> h11 after the rekey" ping_ok h21 10.1.1.10 10
check "the new child is ESP in UDP too" \
    test "$(grep -c "child SA up (we initiated.*ESP in UDP 4500/4500" "$WORK/cd.log")" -ge 2

# 6. The NAT forgets everything mid-traffic, once the rekey is over (the
# old pair deleted with strongSwan): from then on only DPD speaks IKE.
log "=== the NAT's state flushed under traffic"
check "the superseded pair is deleted with strongSwan (Delete)" \
    wait_for 8 grep -q "child SA down .*deleted by us" "$WORK/cd.log"
nsx h11 ping -D -i 0.1 -w 12 10.2.1.10 >"$WORK/flush-h11.out" 2>&1 &
PID[ping11]=$!
nsx h21 ping -D -i 0.1 -w 12 10.1.1.10 >"$WORK/flush-h21.out" 2>&1 &
PID[ping21]=$!
wait_for 5 bash -c "grep -q 'bytes from' '$WORK/flush-h11.out' && grep -q 'bytes from' '$WORK/flush-h21.out'"
old_port=$(esprit_ports | tail -1 | awk '{ print $2 }')
phase1_before=$(grep -c "phase 1 up" "$WORK/cd.log")
peer_children=$(grep -c "child SA up (the peer initiated" "$WORK/cd.log")
FLUSH=$(now)
nsx inet conntrack -F >/dev/null 2>&1
log "    conntrack flushed at $FLUSH (esprit was at $old_port)"
# answered_after FILE: seconds from the flush to the first reply that
# left after it (a reply 50 ms or more after the flush).
answered_after() { awk -v f="$FLUSH" -F'[][]' '/bytes from/ && $2 >= f + 0.05 { printf "%.2f", $2 - f; exit }' "$1"; }
recovered() { [ -n "$(answered_after "$WORK/flush-h11.out")" ] && [ -n "$(answered_after "$WORK/flush-h21.out")" ]; }
wait_for $((RECOVER_SECS + 2)) recovered
r11=$(answered_after "$WORK/flush-h11.out")
r21=$(answered_after "$WORK/flush-h21.out")
log "    pings answered again after: h11 -> h21 ${r11:-never} s, h21 -> h11 ${r21:-never} s"
check "h11 -> h21 passes again within $RECOVER_SECS s of the flush (${r11:-never} s)" \
    awk -v r="${r11:-999}" -v b="$RECOVER_SECS" 'BEGIN { exit !(r <= b) }'
check "h21 -> h11 passes again within $RECOVER_SECS s of the flush (${r21:-never} s)" \
    awk -v r="${r21:-999}" -v b="$RECOVER_SECS" 'BEGIN { exit !(r <= b) }'
new_port=$(esprit_ports | awk -v f="$FLUSH" '$1 > f { print $2 }' | tail -1)
check "the NAT mapped esprit anew (port ${old_port##*.} -> ${new_port##*.})" \
    test -n "$new_port" -a "$new_port" != "$old_port"
to_new() { outside "udp and src host 203.0.113.2 and src port 4500 and dst port ${new_port##*.} and udp[4:2] > 9" | grep -c 'spi=0x'; }
to_new_10() { [ "$(to_new)" -ge 10 ]; }
wait_for 3 to_new_10
check "strongSwan sends its ESP to the new mapping ($(to_new) packets)" to_new_10
moved="remote endpoint changed from $PUBLIC[${old_port##*.}] to $PUBLIC[${new_port##*.}]"
check "strongSwan took the new port from esprit's R-U-THERE ($moved)" \
    bash -c "grep -F -B1 '$moved' '$WORK/swan/charon.log' | grep -q 'parsed INFORMATIONAL_V1 request .*N(DPD)'"
check "no new phase 1: the ISAKMP SA moved" test "$(grep -c "phase 1 up" "$WORK/cd.log")" = "$phase1_before"
check "strongSwan moved the child by rekeying it to the new port (one Quick Mode it initiated)" \
    test "$(grep -c "child SA up (the peer initiated" "$WORK/cd.log")" = $((peer_children + 1))
for p in ping11 ping21; do wait "${PID[$p]}" 2>/dev/null; unset "PID[$p]"; done
check "pings after the recovery: 10 h21 -> h11" ping_ok h21 10.1.1.10 10
check "the peer was not declared dead" bash -c "! grep -q 'dead peer detection' '$WORK/cd.log'"

grep -E "phase 1|child SA|rekeyed|dead peer|error" "$WORK/cd.log" | sed 's/^/    /' >&2 || true
summary
