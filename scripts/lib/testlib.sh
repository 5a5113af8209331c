# What esprit's test scripts share. Source it after common.sh.
#
# Every test script under scripts/tests/ runs under `set -uo pipefail`, not
# -e: a failed check is counted and the run goes on to the summary, so one
# report lists every failure; a step the rest cannot do without says
# `|| die` (wait_socket, in common.sh, dies by itself).
#
#   check DESCRIPTION COMMAND...   runs COMMAND, counts and logs ok/FAIL
#                                  (CHECK_STYLE=plain, for a script people
#                                  read: "  [ok]   WHAT" on stdout, the
#                                  command's own output hidden)
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
#   lab_begin NAME SECONDS         the script's lab: WORK (a fresh directory
#                                  /tmp/esprit-NAME.XXXXXX), PID (named
#                                  processes, PID[cd]=...) and EXTRA (helpers
#                                  such as captures and pingers), the EXIT
#                                  trap lab_cleanup, and the watchdog
#   lab_on_exit FUNCTION           lab_cleanup runs FUNCTION first (a summary
#                                  of a run cut short, processes that are not
#                                  this shell's children, ...)
#   lab_stop_pids                  ends every process in PID and empties it
#                                  (between scenarios)
#   lab_cleanup                    on exit: the hooks, then every process in
#                                  PID, the gateways (gw_stop) and strongSwan
#                                  (swan_stop) if their libraries are loaded,
#                                  EXTRA, the namespaces (topo_down); WORK is
#                                  removed unless ESPRIT_KEEP is set

pass=0
fail=0
check() { # check DESCRIPTION COMMAND...
    local what=$1 ok=1
    shift
    if [ "${CHECK_STYLE:-log}" = plain ]; then
        "$@" >/dev/null 2>&1 || ok=0
    else
        "$@" || ok=0
    fi
    if [ "$ok" = 1 ]; then pass=$((pass + 1)); else fail=$((fail + 1)); fi
    if [ "${CHECK_STYLE:-log}" = plain ]; then
        if [ "$ok" = 1 ]; then echo "  [ok]   $what"; else echo "  [FAIL] $what"; fi
    elif [ "$ok" = 1 ]; then
        log "ok   $what"
    else
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

lab_begin() {
    WORK=$(mktemp -d "/tmp/esprit-$1.XXXXXX")
    declare -gA PID=()
    EXTRA=()
    LAB_HOOKS=()
    trap lab_cleanup EXIT
    watchdog "$2"
}

lab_on_exit() { LAB_HOOKS+=("$1"); }

# lab_end_pids PID...: TERM each, then reap each (children of this shell).
lab_end_pids() {
    local p
    for p in "$@"; do kill "$p" 2>/dev/null || true; done
    for p in "$@"; do wait "$p" 2>/dev/null || true; done
}

lab_stop_pids() {
    lab_end_pids "${PID[@]}"
    PID=()
}

lab_cleanup() {
    local h
    for h in "${LAB_HOOKS[@]}"; do "$h" || true; done
    lab_stop_pids
    if declare -F gw_stop >/dev/null; then gw_stop; fi
    if declare -F swan_stop >/dev/null; then swan_stop; fi
    lab_end_pids "${EXTRA[@]}"
    if declare -F topo_down >/dev/null; then topo_down; fi
    if [ -n "${ESPRIT_KEEP:-}" ]; then log "logs kept in $WORK"; else rm -rf "$WORK"; fi
}
