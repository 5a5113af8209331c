# strongSwan (charon + kernel-libipsec) as an interop peer inside a network
# namespace. Source it after common.sh. The recipe is the one of
# control/ike/tests/strongswan-ikev1.sh (FACTS.md, "strongSwan as a peer"):
#
# * ESP is userspace (kernel-libipsec, TUN ipsec0), listed before
#   kernel-netlink: this kernel has no ESP;
# * charon runs in its own netns AND its own mount namespace with a private
#   /run (its pid file path is compiled in), with its own STRONGSWAN_CONF
#   and vici socket, so several can run on one machine;
# * libipsec always encapsulates ESP in UDP 4500 (it fakes NAT-D);
# * libipsec installs a route for each SA's remote_ts into ipsec0 with a
#   source address from local_ts: the namespace needs such an address.
#
#   swan_start NETNS DIR      writes DIR/strongswan.conf, starts charon;
#                             sets SWAN_DIR and SWAN_PID
#   swan_ctl ARGS...          swanctl against that charon (bounded)
#   swan_stop                 stops charon by its PID (TERM, then KILL)

SWAN_DIR=""
SWAN_PID=""

swan_packages() { apt_install "${ESPRIT_STRONGSWAN_PACKAGES[@]}"; }

swan_ctl() { STRONGSWAN_CONF="$SWAN_DIR/strongswan.conf" timeout 30 swanctl "$@"; }

swan_start() { # swan_start NETNS DIR
    local ns=$1 _
    SWAN_DIR=$2
    mkdir -p "$SWAN_DIR/run"
    cat >"$SWAN_DIR/strongswan.conf" <<EOC
charon {
  load = random nonce openssl aes sha1 sha2 hmac gcm gmp kdf curve25519 pem pkcs1 x509 pubkey kernel-libipsec kernel-netlink socket-default vici updown
  spi_min = 0xc2000000
  spi_max = 0xc2ffffff
  plugins { vici { socket = unix://$SWAN_DIR/charon.vici } }
  filelog { f { path = $SWAN_DIR/charon.log
                time_format = %H:%M:%S
                default = 1
                ike = 2
                cfg = 2
                knl = 1 } }
  syslog { daemon { default = -1 } auth { default = -1 } }
}
swanctl { socket = unix://$SWAN_DIR/charon.vici }
EOC
    rm -f "$SWAN_DIR/run/charon.pid" "$SWAN_DIR/charon.vici"
    setsid ip netns exec "$ns" unshare -m --propagation private \
        sh -c "mount --bind $SWAN_DIR/run /run && exec env STRONGSWAN_CONF=$SWAN_DIR/strongswan.conf /usr/lib/ipsec/charon" \
        >"$SWAN_DIR/charon.stdout" 2>&1 </dev/null &
    for _ in $(seq 50); do [ -S "$SWAN_DIR/charon.vici" ] && [ -s "$SWAN_DIR/run/charon.pid" ] && break; sleep 0.2; done
    [ -S "$SWAN_DIR/charon.vici" ] || { cat "$SWAN_DIR/charon.stdout" >&2; return 1; }
    SWAN_PID=$(cat "$SWAN_DIR/run/charon.pid")
}

swan_stop() {
    local pid=$SWAN_PID _
    SWAN_PID=""
    [ -n "$pid" ] || return 0
    kill "$pid" 2>/dev/null || return 0
    for _ in $(seq 25); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null || true
}
