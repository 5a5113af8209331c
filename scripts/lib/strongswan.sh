# strongSwan (charon + kernel-libipsec) as an interop peer inside a network
# namespace. Source it after common.sh. The recipe (FACTS.md, "strongSwan
# as a peer"), used by scripts/tests/interop-strongswan-ikev1.sh, scripts/demo.sh and
# scripts/tests/ike-core-strongswan.sh:
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
#   swan_start NETNS DIR      writes DIR/strongswan.conf (plus the charon
#                             settings in $SWAN_EXTRA; DIR/charon.log's
#                             levels from $SWAN_LOG if set, its times with
#                             milliseconds if $SWAN_LOG_MS is), starts
#                             charon; sets SWAN_DIR and SWAN_PID
#   swan_ctl ARGS...          swanctl against that charon (bounded)
#   swan_stop                 stops charon by its PID (TERM, then KILL)

SWAN_DIR=""
SWAN_PID=""

swan_packages() { apt_install "${ESPRIT_STRONGSWAN_PACKAGES[@]}"; }

swan_ctl() { STRONGSWAN_CONF="$SWAN_DIR/strongswan.conf" timeout 30 swanctl "$@"; }

swan_start() { # swan_start NETNS DIR
    local ns=$1 _ levels=${SWAN_LOG:-$'default = 1\n  ike = 2\n  cfg = 2\n  knl = 1'}
    SWAN_DIR=$2
    mkdir -p "$SWAN_DIR/run"
    cat >"$SWAN_DIR/strongswan.conf" <<EOC
charon {
  load = random nonce openssl aes sha1 sha2 hmac gcm gmp kdf curve25519 pem pkcs1 x509 pubkey kernel-libipsec kernel-netlink socket-default vici updown
  spi_min = 0xc2000000
  spi_max = 0xc2ffffff
  ${SWAN_EXTRA:-}
  plugins { vici { socket = unix://$SWAN_DIR/charon.vici } }
  filelog { f { path = $SWAN_DIR/charon.log
                time_format = %H:%M:%S
                ${SWAN_LOG_MS:+time_add_ms = yes}
                flush_line = yes
                $levels } }
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

# Several charons at once (one per gateway): swan_start leaves the last
# one's SWAN_DIR/SWAN_PID; keep each pair and point SWAN_DIR at the one
# to talk to before swan_ctl, and stop each by its PID:
#
#   swan_stop_pid PID         TERM, then KILL after 5 s (no-op if gone)
#   swan_psk_tunnel FILE NAME LOCAL REMOTE LOCAL_TS REMOTE_TS ESP PSK
#                             writes a swanctl.conf: IKEv2, PSK (ids = the
#                             addresses), IKE aes128-sha256-x25519, one
#                             tunnel-mode child NAME, ESP proposal ESP,
#                             started by hand (swanctl --initiate)
#   swan_psk_conn NAME LOCAL REMOTE IKE_PROPOSALS PSK < CHILDREN
#                             the same connection on stdout with IKE
#                             proposals IKE_PROPOSALS and the children
#                             (swanctl.conf text) read from stdin

swan_stop_pid() {
    local pid=$1 _
    [ -n "$pid" ] || return 0
    kill "$pid" 2>/dev/null || return 0
    for _ in $(seq 25); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null || true
}

swan_psk_tunnel() {
    local file=$1 name=$2 local_addr=$3 remote_addr=$4 local_ts=$5 remote_ts=$6 esp=$7 psk=$8
    swan_psk_conn "$name" "$local_addr" "$remote_addr" aes128-sha256-x25519 "$psk" >"$file" <<EOC
      $name { local_ts = $local_ts
              remote_ts = $remote_ts
              mode = tunnel
              esp_proposals = $esp
              start_action = none }
EOC
}

swan_psk_conn() {
    local name=$1 local_addr=$2 remote_addr=$3 proposals=$4 psk=$5
    cat <<EOC
connections {
  $name {
    version = 2
    local_addrs = $local_addr
    remote_addrs = $remote_addr
    proposals = $proposals
    keyingtries = 1
    unique = never
    local  { auth = psk
             id = $local_addr }
    remote { auth = psk
             id = $remote_addr }
    children {
EOC
    cat
    cat <<EOC
    }
  }
}
secrets { ike-$name { id-a = $local_addr
                      id-b = $remote_addr
                      secret = "$psk" } }
EOC
}
