#!/usr/bin/env bash
# scripts/install.sh into a staging root (DESTDIR), as a package build would:
# the files and their modes, the operator's files kept on a second run,
# --prefix written into the units, the example configuration accepted by
# controld --check, and the units checked by systemd-analyze verify (where
# systemd is installed). Starts nothing; needs no root.
#
#   scripts/tests/install-layout.sh
# Binaries from $ESPRIT_BIN (default $CARGO_TARGET_DIR or target, /debug), built if missing.
set -uo pipefail
ESPRIT_SCRIPT=install-layout
source "$(dirname "$0")/../lib/common.sh"
source "$ESPRIT_ROOT/scripts/lib/testlib.sh"

BIN=${ESPRIT_BIN:-$(esprit_target_dir)/debug}
for b in fastpathd fpctl controld esprit; do
    [ -x "$BIN/$b" ] || { need_cargo; (cd "$ESPRIT_ROOT" && cargo build -q -p esprit-controld -p esprit-fastpathd); break; }
done
D=$(mktemp -d /tmp/esprit-install.XXXXXX)
trap 'rm -rf "$D"' EXIT

mode_is() { [ "$(stat -c %a "$2")" = "$1" ] || { log "$2: mode $(stat -c %a "$2"), expected $1"; return 1; }; }

DESTDIR=$D/a "$ESPRIT_ROOT/scripts/install.sh" --bin-from "$BIN" 2>"$D/a.log"
R=$D/a
for b in fastpathd controld esprit fpctl; do
    check "sbin/$b installed, mode 755" mode_is 755 "$R/usr/local/sbin/$b"
done
check "units installed" test -f "$R/etc/systemd/system/esprit-fastpathd.service" -a -f "$R/etc/systemd/system/esprit-controld.service"
check "/etc/esprit is 700" mode_is 700 "$R/etc/esprit"
check "/etc/esprit/esprit.conf is 600" mode_is 600 "$R/etc/esprit/esprit.conf"
check "/etc/default/esprit installed" test -f "$R/etc/default/esprit"
check "operations.md installed" test -s "$R/usr/local/share/doc/esprit/operations.md"
check "the example configuration passes controld --check" "$BIN/controld" --check "$R/etc/esprit/esprit.conf"
check "nothing outside the staging root's own folders" \
    test "$(cd "$R" && find . -mindepth 1 -maxdepth 1 | sort | tr '\n' ' ')" = "./etc ./usr "

# A second run keeps what the operator changed.
echo "# edited" >>"$R/etc/esprit/esprit.conf"
echo "# edited" >>"$R/etc/default/esprit"
DESTDIR=$R "$ESPRIT_ROOT/scripts/install.sh" --bin-from "$BIN" 2>"$D/a2.log"
check "a second install keeps the edited configuration" grep -q "^# edited" "$R/etc/esprit/esprit.conf"
check "a second install keeps the edited /etc/default/esprit" grep -q "^# edited" "$R/etc/default/esprit"

DESTDIR=$D/b "$ESPRIT_ROOT/scripts/install.sh" --bin-from "$BIN" --prefix /opt/esprit --unit-dir /usr/lib/systemd/system 2>"$D/b.log"
check "--prefix: binaries under /opt/esprit/sbin" test -x "$D/b/opt/esprit/sbin/controld"
check "--prefix: the units run /opt/esprit/sbin" \
    grep -q "^ExecStart=/opt/esprit/sbin/fastpathd " "$D/b/usr/lib/systemd/system/esprit-fastpathd.service"
check "--prefix: no /usr/local left in the units" \
    test -z "$(grep -l /usr/local "$D/b/usr/lib/systemd/system/"*.service || true)"
refuses() { ! DESTDIR=$D/c "$ESPRIT_ROOT/scripts/install.sh" --bin-from "$BIN" "$@" 2>/dev/null; }
check "--enable is refused with DESTDIR (it would start services)" refuses --enable
check "a relative --prefix is refused" refuses --prefix usr

if command -v systemd-analyze >/dev/null 2>&1; then
    # verify wants the binaries at the paths the units name: point the
    # units at the staged ones.
    mkdir "$D/verify"
    for u in "$R"/etc/systemd/system/*.service; do
        sed "s|/usr/local/sbin/|$R/usr/local/sbin/|g" "$u" >"$D/verify/$(basename "$u")"
    done
    verify() { systemd-analyze verify "$D"/verify/*.service >"$D/verify.log" 2>&1 || { cat "$D/verify.log" >&2; return 1; }; [ ! -s "$D/verify.log" ] || { cat "$D/verify.log" >&2; return 1; }; }
    check "systemd-analyze verify: both units, no warning" verify
else
    log "systemd-analyze not installed: the units are not verified"
fi

echo "install-layout: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
