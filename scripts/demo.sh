#!/usr/bin/env bash
# The seed's scenario (KB16008, "Multiple Proxy ID support on a Route-Based
# VPN") end to end in network namespaces:
#
#   h11 10.1.1.10 -\                                   /- h21 10.2.1.10
#                   gw1 -- 198.51.100.0/24 -- 203.0.113.0/24 -- gw2
#   h12 10.1.2.10 -/   (esprit)                     (esprit | strongSwan)  \- h22 10.2.2.10
#
# Each gateway runs fastpathd and controld, configured from the seed's own
# sample (control/config/tests/data/seed-gateway*.conf: tunnel.1, four
# proxy-IDs, `proxy-id check`, IKEv1 Main Mode with a pre-shared key). The
# first packet between each subnet pair makes the fast path hold it and ask
# controld, which negotiates that proxy-ID's SA pair (Main Mode once, then a
# Quick Mode per proxy-ID); the held packet is then delivered. Every pair
# crosses the WAN on its own SPIs; traffic routed into tunnel.1 that
# matches no proxy-ID is dropped and counted. Each pair has its own HEX ID:
# `clear sa N` deletes one pair with the peer while the others carry on, and
# traffic negotiates it again.
#
#   scripts/demo.sh [--peer esprit|strongswan]
#
# Prints what an operator would look at, checks it (the last line is
# "demo: N checks passed, M failed"; exit status 1 if any failed), and
# tears everything down. Needs root. Binaries from $ESPRIT_BIN (default
# $CARGO_TARGET_DIR or target, /debug), built if missing. Bounded by
# $ESPRIT_TIMEOUT seconds (default 600).
set -uo pipefail
ESPRIT_SCRIPT=demo
source "$(dirname "$0")/lib/common.sh"
source "$ESPRIT_ROOT/scripts/lib/testlib.sh"
source "$ESPRIT_ROOT/scripts/lib/topo.sh"
source "$ESPRIT_ROOT/scripts/lib/gateway.sh"
source "$ESPRIT_ROOT/scripts/lib/strongswan.sh"
need_root

PEER=esprit
while [ $# -gt 0 ]; do
    case $1 in
    --peer) PEER=${2:-}; shift 2 ;;
    --peer=*) PEER=${1#--peer=}; shift ;;
    *) die "usage: scripts/demo.sh [--peer esprit|strongswan]" ;;
    esac
done
case $PEER in esprit | strongswan) ;; *) die "--peer: esprit or strongswan, not '$PEER'" ;; esac

apt_install "${ESPRIT_BUILD_PACKAGES[@]}" "${ESPRIT_TEST_PACKAGES[@]}"
[ "$PEER" = strongswan ] && swan_packages
esprit_bin_dir
lab_begin demo "${ESPRIT_TIMEOUT:-600}"

CHECK_STYLE=plain
section() { printf '\n== %s\n' "$*"; }

# strongSwan as gateway 2: the seed's GATEWAY-2 (a non-Juniper peer that
# builds one SA per proxy-ID), with the proposals `sec-level standard`
# stands for in esprit (AES-128, SHA-1, DH group 2, PFS group 2).
swan_gw2() {
    local l r
    nsx gw2 sysctl -qw net.ipv4.ip_forward=1
    nsx gw2 sysctl -qw net.ipv4.conf.all.rp_filter=0
    swan_start "$TOPO-gw2" "$WORK/swan" || die "charon did not start"
    {
        echo 'connections { test { version = 1
    local_addrs = 203.0.113.2
    remote_addrs = 198.51.100.1
    proposals = aes128-sha1-modp1024
    local { auth = psk
            id = 203.0.113.2 }
    remote { auth = psk
             id = 198.51.100.1 }
    children {'
        for l in 1 2; do
            for r in 1 2; do
                echo "      p$r$l { local_ts = 10.2.$l.0/24
              remote_ts = 10.1.$r.0/24
              esp_proposals = aes128-sha1-modp1024
              start_action = none }"
            done
        done
        echo '} } }
secrets { ike-test { id-a = 198.51.100.1
                     id-b = 203.0.113.2
                     secret = "#ABC123" } }'
    } >"$WORK/swanctl.conf"
    swan_ctl --load-all --clear --noprompt --file "$WORK/swanctl.conf" >"$WORK/swan-load.log" 2>&1 ||
        { cat "$WORK/swan-load.log" >&2; die "swanctl --load-all failed"; }
}

section "the seed's topology in network namespaces; gateway 2 is $PEER"
topo_up "demo$$"
for g in 1 2; do gw_config "$g" >"$WORK/gw$g.conf"; chmod 600 "$WORK/gw$g.conf"; done
# strongSwan's kernel-libipsec encapsulates ESP in UDP: NAT-T on.
if [ "$PEER" = strongswan ]; then echo 'set ike gateway "test" nat-traversal' >>"$WORK/gw1.conf"; fi
added="a second LAN and a route to 10.2.3.0/24 into tunnel.1"
[ "$PEER" = strongswan ] && added="$added, and nat-traversal"
echo "gateway 1 configuration ($WORK/gw1.conf: the seed's sample, plus $added), its VPN part:"
grep -E '^set (ike gateway|vpn|route 10)' "$WORK/gw1.conf" | sed 's/preshare "[^"]*"/preshare "********"/; s/^/  /'
check "controld --check accepts gateway 1's configuration" "$BIN/controld" --check "$WORK/gw1.conf"
gw_start 1
if [ "$PEER" = esprit ]; then
    check "controld --check accepts gateway 2's configuration" "$BIN/controld" --check "$WORK/gw2.conf"
    gw_start 2
else
    swan_gw2
fi
topo_arp_warm
nsx_bg inet tcpdump -n -i i1 -w "$WORK/wan.pcap" -U 'esp or udp port 4500' >/dev/null 2>&1
EXTRA+=($!)
for _ in $(seq 50); do [ -s "$WORK/wan.pcap" ] && break; sleep 0.1; done

section "traffic between every subnet pair: the first packet negotiates that proxy-ID's SA"
first_ping() { # first_ping FROM DST: one echo, held while IKE runs, answered
    nsx "$1" ping -c 1 -W 8 "$2" >"$WORK/first-$1-$2.out" 2>&1
}
pings() { # pings FROM DST N: N echoes, all answered
    nsx "$1" ping -q -c "$3" -i 0.1 -w 10 "$2" >"$WORK/ping-$1-$2.out" 2>&1 &&
        grep -q " 0% packet loss" "$WORK/ping-$1-$2.out"
}
for p in 11 12 21 22; do
    h=h1${p:0:1}
    dst=10.2.${p:1:1}.10
    check "$h 10.1.${p:0:1}.10 -> $dst: the first packet is answered" first_ping "$h" "$dst"
    echo "         round trip $(grep -o 'time=[0-9.]* ms' "$WORK/first-$h-$dst.out" || echo '(none)') (IKE included)"
    check "$h -> $dst: 10 more pings, all answered" pings "$h" "$dst" 10
done
echo "what controld logged (first packet to SA up):"
grep -o 'proxy-id .*: child SA up.*after the acquire' "$WORK/cd1.log" |
    sed -E 's/: child SA up \(([^,]*), Quick Mode [0-9a-f]*\): /: \1: /; s/, ESP.*, lifetime [0-9]* s, / ... /; s/^/  /'
check "h11 -> 10.2.3.10 (routed into tunnel.1, matches no proxy-ID): nothing answered" \
    bash -c "! ip netns exec $TOPO-h11 ping -c 3 -i 0.1 -W 1 10.2.3.10"
sleep 0.3
kill "${EXTRA[0]}" 2>/dev/null
wait "${EXTRA[0]}" 2>/dev/null
EXTRA=()

section "ESP on the WAN, packets per SPI (each subnet pair on its own SA pair)"
tcpdump -n -r "$WORK/wan.pcap" 2>/dev/null | grep -o 'spi=0x[0-9a-f]*' | sed 's/spi=0x//' | sort | uniq -c |
    tee "$WORK/spis.txt" | awk '{ printf "  %s  %5d packets\n", $2, $1 }'
wan=$(awk '$1 >= 10 { print $2 }' "$WORK/spis.txt" | sort | tr '\n' ' ')
check "8 SAs active on gateway 1" gw_active 1 8
sa1=$(gw_spis 1)
check "the WAN carried 8 SPIs (>= 10 packets each), exactly those of gateway 1's get sa" \
    test "$(echo "$wan" | wc -w)" = 8 -a "$wan" = "$sa1"
if [ "$PEER" = esprit ]; then
    check "gateway 2 has the same 8 SAs" test "$(gw_spis 2)" = "$sa1"
else
    check "strongSwan has 4 CHILD_SAs INSTALLED" \
        bash -c "[ \"\$(STRONGSWAN_CONF=$SWAN_DIR/strongswan.conf swanctl --list-sas | grep -c INSTALLED)\" = 4 ]"
fi

section "gw1-> get sa"
gw_cli 1 get sa | sed 's/^/  /'
section "gw1-> get interface tunnel.1"
gw_cli 1 get interface tunnel.1 | tee "$WORK/interface.txt" | sed 's/^/  /'
check "tunnel.1 is UP with its 4 SA pairs active (the seed's status rule)" \
    grep -q "status UP: 4 of 4 SA pair(s) active" "$WORK/interface.txt"
section "gw1-> get vpn test   (a status per proxy-ID: beyond ScreenOS)"
gw_cli 1 get vpn test | tee "$WORK/vpn.txt" | sed 's/^/  /'
check "each of the 4 proxy-IDs is UP" test "$(grep -c ' ANY UP ' "$WORK/vpn.txt")" = 4
section "gw1-> get counter   (the fast path's workers: packets, and drops by reason)"
gw_cli 1 get counter | tee "$WORK/counter.txt" | sed 's/^/  /'
check "the unmatched flow is counted as proxy-id-mismatch (3 packets)" \
    bash -c "awk '\$1 == \"proxy-id-mismatch\" { n = \$2 } END { exit !(n == 3) }' $WORK/counter.txt"
section "gw1-> clear sa N   (one proxy-ID's SA pair: its own HEX ID, as ScreenOS)"
# The HEX ID of proxy-ID 10.1.1.0/24 <-> 10.2.2.0/24, from get sa stat.
pid12='local-ip 10.1.1.0/24 remote-ip 10.2.2.0/24 ANY'
hex=$(gw_cli 1 get sa stat | awk -v p="$pid12" 'index($0, p) { print $1; exit }')
# The pair's SPIs, and those of the three others, before the clear.
pair_spis() { gw_cli 1 get sa | awk -v h="$1" '/ A\/U / && substr($1, 1, 8) == h { print $5 }' | sort | tr '\n' ' '; }
other_spis() { gw_cli 1 get sa | awk -v h="$1" '/ A\/U / && substr($1, 1, 8) != h { print $5 }' | sort | tr '\n' ' '; }
cleared=$(pair_spis "$hex")
others=$(other_spis "$hex")
check "proxy-id $pid12 has its own HEX ID ($hex) with one SA pair" \
    test -n "$hex" -a "$(echo "$cleared" | wc -w)" = 2
gw_cli 1 clear sa "$hex" | tee "$WORK/clear.txt" | sed 's/^/  /'
check "clear sa $hex clears that proxy-ID's pair only" \
    grep -q "HEX ID $hex (vpn \"test\" proxy-id $pid12): clearing its IKE SA pair" "$WORK/clear.txt"
check "gateway 1 deletes it (6 SAs active left)" gw_active 1 6
if [ "$PEER" = esprit ]; then
    check "... and so does gateway 2, told by a Delete (6 SAs active)" gw_active 2 6
fi
check "h11 -> 10.2.1.10 (another pair): 10 pings, all answered" pings h11 10.2.1.10 10
check "the 3 other pairs kept their SAs throughout" test "$(other_spis "$hex")" = "$others"
gw_cli 1 get sa id "$hex" | tee "$WORK/cleared.txt" | sed 's/^/  /'
check "the cleared proxy-ID is DOWN (lost) in get sa id $hex" grep -q "proxy-id $pid12: DOWN" "$WORK/cleared.txt"
check "h11 -> 10.2.2.10: traffic renegotiates the cleared pair on demand" first_ping h11 10.2.2.10
check "... 8 SAs active again" gw_active 1 8
renewed=$(pair_spis "$hex")
check "the new pair ($renewed) is not the cleared one ($cleared)" \
    test -n "$renewed" -a "$renewed" != "$cleared"

section "gw1-> get event   (newest first; the negotiations the traffic started)"
gw_cli 1 get event | head -12 | sed 's/^/  /'

echo
echo "demo: $pass checks passed, $fail failed"
[ "$fail" = 0 ]
