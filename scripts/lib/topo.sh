# The seed's topology (KB16008 §III) in network namespaces, for tests, the
# demo and benchmarks. Source it after common.sh.
#
#   h11 10.1.1.10 --lan1-\                                  /-lan1-- h21 10.2.1.10
#                         gw1 -wan0--- inet ---wan0- gw2
#   h12 10.1.2.10 --lan2-/  198.51.100.1   203.0.113.2      \-lan2-- h22 10.2.2.10
#
# "inet" is a plain kernel router (198.51.100.254 / 203.0.113.254) where the
# WAN traffic can be captured. Every namespace name starts with $TOPO (set by
# topo_up), so concurrent runs do not collide; topo_down removes them all.

TOPO=""

nsx() {
    local ns=$1
    shift
    ip netns exec "$TOPO-$ns" "$@"
}

# nsx_bg NS CMD...: starts CMD in NS in the background; $! is CMD's own PID
# (ip netns exec execs it), so it can be stopped by that PID.
nsx_bg() {
    local ns=$1
    shift
    ip netns exec "$TOPO-$ns" "$@" &
}

# veth_pair NS_A IF_A NS_B IF_B [QUEUES]
veth_pair() {
    local q=${5:-1}
    ip link add "$TOPO-tmp-a" numrxqueues "$q" numtxqueues "$q" type veth peer name "$TOPO-tmp-b" numrxqueues "$q" numtxqueues "$q"
    ip link set "$TOPO-tmp-a" netns "$TOPO-$1" name "$2"
    ip link set "$TOPO-tmp-b" netns "$TOPO-$3" name "$4"
    nsx "$1" ip link set "$2" up
    nsx "$3" ip link set "$4" up
}

# topo_up NAME [QUEUES]: QUEUES receive/transmit queues on the gateways' ports.
topo_up() {
    TOPO=$1
    local q=${2:-1} ns
    for ns in h11 h12 gw1 inet gw2 h21 h22; do
        ip netns add "$TOPO-$ns"
        nsx "$ns" ip link set lo up
    done
    veth_pair h11 eth0 gw1 lan1 "$q"
    veth_pair h12 eth0 gw1 lan2 "$q"
    veth_pair gw1 wan0 inet i1 "$q"
    veth_pair gw2 wan0 inet i2 "$q"
    veth_pair h21 eth0 gw2 lan1 "$q"
    veth_pair h22 eth0 gw2 lan2 "$q"
    nsx inet ip addr add 198.51.100.254/24 dev i1
    nsx inet ip addr add 203.0.113.254/24 dev i2
    nsx inet sysctl -qw net.ipv4.ip_forward=1
    nsx gw1 ip addr add 198.51.100.1/24 dev wan0
    nsx gw2 ip addr add 203.0.113.2/24 dev wan0
    local g s
    for g in 1 2; do
        # The kernel of a gateway never forwards: transit is the fast path's.
        nsx "gw$g" sysctl -qw net.ipv4.ip_forward=0
        for s in 1 2; do
            nsx "gw$g" ip addr add "10.$g.$s.1/24" dev "lan$s"
            nsx "h$g$s" ip addr add "10.$g.$s.10/24" dev eth0
            nsx "h$g$s" ip route add default via "10.$g.$s.1"
            # veth leaves UDP/TCP checksums partial when offloaded (FACTS.md).
            nsx "h$g$s" ethtool -K eth0 tx off >/dev/null 2>&1 || true
        done
    done
    nsx gw1 ip route add default via 198.51.100.254
    nsx gw2 ip route add default via 203.0.113.254
}

# topo_arp_warm: every host and gateway pings its next hop once, so that
# the kernels (whose ARP tables the fast path mirrors) know each other, as
# on a network that has been up for a while. Call it once the gateways'
# fast paths run (their kernels still answer for their own addresses).
topo_arp_warm() {
    local g s
    for g in 1 2; do
        for s in 1 2; do
            nsx "h$g$s" ping -c 1 -W 2 "10.$g.$s.1" >/dev/null 2>&1 || true
        done
    done
    nsx gw1 ping -c 1 -W 2 198.51.100.254 >/dev/null 2>&1 || true
    nsx gw2 ping -c 1 -W 2 203.0.113.254 >/dev/null 2>&1 || true
}

topo_down() {
    [ -n "$TOPO" ] || return 0
    local ns
    for ns in h11 h12 gw1 inet gw2 h21 h22; do
        ip netns del "$TOPO-$ns" 2>/dev/null || true
    done
}

# The WAN address of gateway N and of its peer.
gw_wan() { if [ "$1" = 1 ]; then echo 198.51.100.1; else echo 203.0.113.2; fi; }
