# esprit gateways (fastpathd + controld) in the seed topology of topo.sh,
# configured from the seed's own sample configuration. Source it after
# common.sh and topo.sh; set BIN (the directory of the binaries) and WORK
# (a scratch directory) first.
#
#   gw_config G [P2_LIFE P1_SECS] > FILE   the configuration of gateway G
#   gw_start G                             fastpathd, then controld, in gwG
#   gw_stop                                stops every process gw_start started
#   gw_cli G WORDS...                      the esprit CLI of gateway G

GW_PIDS=()
SEED_DATA="$ESPRIT_ROOT/control/config/tests/data"

# gw_config G [P2_LIFE P1_SECS]: the seed's sample for gateway G line for
# line (control/config/tests/data), then what the seed leaves out: the
# second LAN, and a route into tunnel.1 that no proxy-ID covers (to show
# the proxy-ID check at work). With lifetimes (P2_LIFE: "second 24",
# "kbyte 300", ...), the sample's `sec-level standard` becomes custom
# proposals with those lifetimes (AES-128-GCM, no PFS). With
# ESPRIT_IKE_VERSION=2 the gateway is an IKEv2 one (`set ike gateway ikev2
# "test" ...`, no phase-1 mode).
gw_config() {
    local g=$1 other
    other=$((3 - g))
    if [ "${ESPRIT_IKE_VERSION:-1}" = 2 ]; then
        ESPRIT_IKE_VERSION=1 gw_config "$@" |
            sed -e '/^set ike gateway/s/^set ike gateway /set ike gateway ikev2 /' \
                -e '/^set ike gateway/s/ Main outgoing-interface/ outgoing-interface/'
        return
    fi
    if [ -n "${2:-}" ]; then
        echo "set ike p1-proposal \"p1-short\" preshare group14 esp aes128 sha-1 second $3"
        echo "set ike p2-proposal \"p2-short\" no-pfs esp aes128gcm $2"
        sed -e '/^set ike gateway/s/sec-level standard/proposal "p1-short"/' \
            -e '/^set vpn "test" gateway/s/sec-level standard/proposal "p2-short"/' \
            "$SEED_DATA/seed-gateway$g.conf"
    else
        cat "$SEED_DATA/seed-gateway$g.conf"
    fi
    cat <<EOF

# Added for the seed topology of scripts/lib/topo.sh: the second LAN, and a
# route into tunnel.1 that no proxy-ID covers.
set interface ethernet0/3 zone Trust
set interface ethernet0/3 ip 10.$g.2.1/24
set interface ethernet0/3 port lan2
set route 10.$other.3.0/24 interface tunnel.1
EOF
}

# gw_start G: fastpathd on lan1, lan2, wan0 of gwG, then controld with
# $WORK/gwG.conf (the seed names the first LAN port lan0: mapped to lan1).
gw_start() {
    local g=$1
    nsx_bg "gw$g" "$BIN/fastpathd" --port lan1 --port lan2 --port wan0 --xdp-mode "${XDP_MODE:-driver}" \
        --socket "$WORK/fp$g.sock" >"$WORK/fp$g.log" 2>&1
    GW_PIDS+=($!)
    wait_socket "$WORK/fp$g.sock" "$WORK/fp$g.log" "fastpathd on gw$g"
    nsx_bg "gw$g" "$BIN/controld" --config "$WORK/gw$g.conf" --fastpath "$WORK/fp$g.sock" \
        --socket "$WORK/cd$g.sock" --state-dir "$WORK/state$g" --port-map ethernet0/1=lan1 \
        >"$WORK/cd$g.log" 2>&1
    GW_PIDS+=($!)
    wait_socket "$WORK/cd$g.sock" "$WORK/cd$g.log" "controld on gw$g"
}

gw_stop() {
    local p
    for p in "${GW_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${GW_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    GW_PIDS=()
}

gw_cli() { local g=$1; shift; "$BIN/esprit" --socket "$WORK/cd$g.sock" "$@"; }

# gw_active G N: controld of gateway G shows N SAs active (A/U) within 15 s.
gw_active() {
    local _
    for _ in $(seq 150); do
        [ "$(gw_cli "$1" get sa 2>/dev/null | grep -c ' A/U ')" = "$2" ] && return 0
        sleep 0.1
    done
    gw_cli "$1" get sa >&2 || true
    return 1
}

# gw_diag: both gateways' counters and the end of their controld logs (on
# stderr), when a check failed.
gw_diag() {
    local g
    for g in 1 2; do
        log "gw$g get counter:"
        gw_cli "$g" get counter 2>&1 | sed 's/^/    /' >&2 || true
        log "gw$g controld log (end):"
        tail -n 15 "$WORK/cd$g.log" | sed 's/^/    /' >&2 || true
    done
}

# gw_spis G: the SPIs gateway G shows active, sorted, on one line.
gw_spis() { gw_cli "$1" get sa | awk '/ A\/U / { print $5 }' | sort | tr '\n' ' '; }
