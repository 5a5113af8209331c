# What esprit's test scripts share. Source it after common.sh.
#
# Every test script under scripts/tests/ runs under `set -uo pipefail`, not
# -e: a failed check is counted and the run goes on to the summary, so one
# report lists every failure; a step the rest cannot do without says
# `|| die` (wait_socket, in common.sh, dies by itself).
#
#   check DESCRIPTION COMMAND...   runs COMMAND, counts and logs ok/FAIL
#   ping_ok NS DST COUNT [INTERVAL]  COUNT pings from namespace NS to DST,
#                                  INTERVAL s apart (default 0.1), within 10 s:
#                                  true only if none was lost
#   summary                        prints "N passed, M failed"; false if any failed
#   esprit_bin_dir                 sets BIN: $ESPRIT_BIN, or $CARGO_TARGET_DIR
#                                  (or target)/debug, building fastpathd,
#                                  fpctl, controld and esprit if missing
#   watchdog SECONDS               the script is sent TERM after SECONDS (its
#                                  EXIT trap still cleans up); the timer's PID
#                                  is added to EXTRA, which cleanup must kill

pass=0
fail=0
check() { # check DESCRIPTION COMMAND...
    local what=$1
    shift
    if "$@"; then
        pass=$((pass + 1))
        log "ok   $what"
    else
        fail=$((fail + 1))
        log "FAIL $what"
    fi
}

ping_ok() {
    local out
    out=$(nsx "$1" ping -q -c "$3" -i "${4:-0.1}" -w 10 "$2" 2>&1) && grep -q " 0% packet loss" <<<"$out"
}

summary() {
    echo "$pass passed, $fail failed"
    [ "$fail" = 0 ]
}

esprit_bin_dir() {
    local b
    BIN=${ESPRIT_BIN:-$(esprit_target_dir)/debug}
    for b in fastpathd fpctl controld esprit; do
        [ -x "$BIN/$b" ] || {
            need_cargo
            (cd "$ESPRIT_ROOT" && cargo build -q -p esprit-controld -p esprit-fastpathd) || die "build failed"
            BIN=$(esprit_target_dir)/debug
            return 0
        }
    done
}

watchdog() {
    local limit=$1
    (
        trap 'kill "$sp" 2>/dev/null; exit 0' TERM
        sleep "$limit" &
        sp=$!
        wait "$sp" && log "timeout after $limit s" && kill -TERM $$
    ) 2>/dev/null &
    EXTRA+=($!)
    trap 'exit 124' TERM INT
}
