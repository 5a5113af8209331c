#!/usr/bin/env bash
# Installs esprit: the release binaries, the systemd units, the environment
# file and an example configuration. Starts nothing unless --enable.
#
#   scripts/install.sh [--prefix /usr/local] [--unit-dir /etc/systemd/system]
#                      [--bin-from DIR] [--enable]
#   DESTDIR=/tmp/pkg scripts/install.sh     # stage into a package root
#
#   PREFIX/sbin/{fastpathd,controld,esprit,fpctl}     binaries
#   PREFIX/share/doc/esprit/operations.md              this layout, how to run
#   UNIT_DIR/esprit-{fastpathd,controld}.service       units (binary paths under PREFIX)
#   /etc/default/esprit                                ports and options (kept if present)
#   /etc/esprit/esprit.conf                            example configuration, 0600 (kept if present)
#
# The binaries come from $CARGO_TARGET_DIR (or target)/release (built here if missing) or from
# --bin-from DIR. --enable (only without DESTDIR) reloads systemd and enables
# and starts both services. Needs no root with DESTDIR.
set -euo pipefail
ESPRIT_SCRIPT=install
source "$(dirname "$0")/lib/common.sh"

PREFIX=/usr/local
UNIT_DIR=/etc/systemd/system
BIN_FROM=""
ENABLE=0
DESTDIR=${DESTDIR:-}
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) PREFIX=${2:?--prefix needs a directory}; shift 2 ;;
        --unit-dir) UNIT_DIR=${2:?--unit-dir needs a directory}; shift 2 ;;
        --bin-from) BIN_FROM=${2:?--bin-from needs a directory}; shift 2 ;;
        --enable) ENABLE=1; shift ;;
        -h | --help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument $1 (see --help)" ;;
    esac
done
case "$PREFIX" in /*) ;; *) die "--prefix must be an absolute path, not $PREFIX" ;; esac
case "$UNIT_DIR" in /*) ;; *) die "--unit-dir must be an absolute path, not $UNIT_DIR" ;; esac
[ "$ENABLE" = 1 ] && [ -n "$DESTDIR" ] && die "--enable starts the services: not with DESTDIR=$DESTDIR"
[ -z "$DESTDIR" ] && need_root

BINS=(fastpathd controld esprit fpctl)
if [ -z "$BIN_FROM" ]; then
    BIN_FROM=$(esprit_target_dir)/release
    for b in "${BINS[@]}"; do
        if [ ! -x "$BIN_FROM/$b" ]; then
            need_cargo
            log "building the release binaries"
            (cd "$ESPRIT_ROOT" && cargo build --release --locked -p esprit-fastpathd -p esprit-controld)
            break
        fi
    done
fi
for b in "${BINS[@]}"; do [ -x "$BIN_FROM/$b" ] || die "$BIN_FROM/$b: missing (build it, or give --bin-from)"; done

SBIN=$DESTDIR$PREFIX/sbin
DOC=$DESTDIR$PREFIX/share/doc/esprit
install -d -m 0755 "$SBIN" "$DOC" "$DESTDIR$UNIT_DIR" "$DESTDIR/etc/default"
install -d -m 0700 "$DESTDIR/etc/esprit"
for b in "${BINS[@]}"; do install -m 0755 "$BIN_FROM/$b" "$SBIN/$b"; done
install -m 0644 "$ESPRIT_ROOT/docs/operations.md" "$DOC/operations.md"
for u in esprit-fastpathd.service esprit-controld.service; do
    # The units name /usr/local; another prefix is written into them.
    sed "s|/usr/local/|$PREFIX/|g" "$ESPRIT_ROOT/dist/systemd/$u" >"$DESTDIR$UNIT_DIR/$u"
    chmod 0644 "$DESTDIR$UNIT_DIR/$u"
done
# The operator's own files are never overwritten.
keep_or_install() { # keep_or_install MODE SOURCE TARGET
    if [ -e "$3" ]; then
        log "kept $3 (exists); the shipped version is $2"
    else
        install -m "$1" "$2" "$3"
    fi
}
keep_or_install 0644 "$ESPRIT_ROOT/dist/esprit.default" "$DESTDIR/etc/default/esprit"
keep_or_install 0600 "$ESPRIT_ROOT/dist/esprit.conf.example" "$DESTDIR/etc/esprit/esprit.conf"
log "installed under ${DESTDIR:-/}: $PREFIX/sbin/{${BINS[*]}}, $UNIT_DIR/esprit-{fastpathd,controld}.service, /etc/default/esprit, /etc/esprit/esprit.conf"

if [ "$ENABLE" = 1 ]; then
    systemctl daemon-reload
    systemctl enable --now esprit-fastpathd.service esprit-controld.service
    log "started: journalctl -u esprit-fastpathd -u esprit-controld -f; esprit get sa"
else
    log "next: set FASTPATHD_PORTS in /etc/default/esprit, edit /etc/esprit/esprit.conf, then"
    log "      systemctl daemon-reload && systemctl enable --now esprit-fastpathd esprit-controld"
fi
