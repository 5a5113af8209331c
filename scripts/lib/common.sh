# Shared shell helpers for esprit's scripts. Source it; it sets nothing global
# except ESPRIT_ROOT and the functions below.

ESPRIT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export ESPRIT_ROOT

log() { printf '%s [%s] %s\n' "$(date +%H:%M:%S)" "${ESPRIT_SCRIPT:-esprit}" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Where cargo puts what it builds: $CARGO_TARGET_DIR (relative to the
# workspace, as cargo reads it) or the workspace's target/. Every script
# finds binaries through esprit_target_dir or esprit_bin, never by
# spelling target/debug.
esprit_target_dir() {
    case "${CARGO_TARGET_DIR:-}" in
    "") echo "$ESPRIT_ROOT/target" ;;
    /*) echo "$CARGO_TARGET_DIR" ;;
    *) echo "$ESPRIT_ROOT/$CARGO_TARGET_DIR" ;;
    esac
}

# esprit_bin NAME [PROFILE]: the path of binary NAME of PROFILE (debug,
# release; default debug), e.g. esprit_bin examples/ike_peer.
esprit_bin() { echo "$(esprit_target_dir)/${2:-debug}/$1"; }

# wait_socket PATH LOG WHAT: waits up to 10 s for a daemon's socket; if it
# does not appear, prints the daemon's LOG and dies saying WHAT did not start.
wait_socket() { # wait_socket PATH LOG WHAT
    local _
    for _ in $(seq 100); do [ -S "$1" ] && return 0; sleep 0.1; done
    cat "$2" >&2
    die "$3 did not start"
}

need_root() {
    [ "$(id -u)" = 0 ] || die "this needs root (network namespaces, AF_XDP, XDP programs); run it with sudo"
}

# apt_install PKG...: installs the Debian packages that are missing, running
# 'apt-get update' at most once per script run. Idempotent and quiet when
# everything is already there.
_ESPRIT_APT_UPDATED=
apt_install() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "installing Debian packages: ${missing[*]}"
    if [ -z "$_ESPRIT_APT_UPDATED" ]; then
        apt-get update -qq || die "apt-get update failed"
        _ESPRIT_APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
        || die "apt-get install ${missing[*]} failed"
}

# The Debian packages every esprit build and test needs.
ESPRIT_BUILD_PACKAGES=(clang llvm libbpf-dev libelf-dev pkg-config)
ESPRIT_TEST_PACKAGES=(python3-scapy python3-cryptography iproute2 ethtool tcpdump tshark iputils-ping procps)
# strongSwan as the independent IKE/ESP peer (userspace ESP: kernel-libipsec).
ESPRIT_STRONGSWAN_PACKAGES=(strongswan-charon strongswan-swanctl libcharon-extra-plugins
    libstrongswan-standard-plugins libstrongswan-extra-plugins strongswan-pki)

need_cargo() {
    command -v cargo >/dev/null 2>&1 || [ -x "$HOME/.cargo/bin/cargo" ] || die "cargo not found: install Rust (rustup) first"
    command -v cargo >/dev/null 2>&1 || export PATH="$HOME/.cargo/bin:$PATH"
}
