#!/usr/bin/env bash
# Fuzzes every target in fuzz/ for SECONDS each (default 15).
#   scripts/fuzz.sh [SECONDS] [TARGET...]
# Long campaigns: scripts/fuzz.sh 3600 esp_decapsulate
# Campaigns by run count, and options (before SECONDS / TARGET):
#   --runs N         stop after N runs (libFuzzer -runs=) instead of a time;
#                    with --jobs J each of the J workers does N/J of them
#   --sanitizer S    address (default) or none: cargo fuzz -s. 'none' is for
#                    targets whose code has no `unsafe` (everything but
#                    esprit-xdp): ASan finds nothing there and costs a
#                    factor of several in runs per second
#   --jobs J         J libFuzzer workers at once (-jobs=J -workers=J); only
#                    on an otherwise idle machine
#   --log-dir DIR    keep each target's libFuzzer logs and new corpus
#                    entries under DIR/TARGET (default: a scratch dir)
#   e.g. nice -n 19 scripts/fuzz.sh --runs 10000000 --sanitizer none --jobs 2 ike_dispatch
# Needs the nightly toolchain (libFuzzer's -Z flags). Without it this says
# so and exits 0: the corpora are still replayed by 'cargo test' on stable.
set -euo pipefail
ESPRIT_SCRIPT=fuzz
source "$(dirname "$0")/lib/common.sh"
cd "$ESPRIT_ROOT/fuzz"
need_cargo

runs=
sanitizer=address
jobs=1
log_dir=
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) runs=$2; shift 2 ;;
        --sanitizer) sanitizer=$2; shift 2 ;;
        --jobs) jobs=$2; shift 2 ;;
        --log-dir) log_dir=$2; shift 2 ;;
        *) break ;;
    esac
done
case "$sanitizer" in address | none) ;; *) die "--sanitizer: address or none, not '$sanitizer'" ;; esac
case "$runs$jobs" in *[!0-9]*) die "--runs and --jobs take a number" ;; esac
if [ -n "$runs" ]; then
    seconds=
    case "${1:-}" in '' | *[!0-9]*) ;; *) die "--runs replaces SECONDS: give one of them" ;; esac
else
    seconds=${1:-15}
    shift || true
fi
if [ "$seconds" = 0 ] && [ -z "$runs" ]; then
    log "fuzzing off (0 s): corpora are replayed by cargo test"
    exit 0
fi
if ! cargo +nightly --version >/dev/null 2>&1; then
    log "no nightly toolchain: skipping libFuzzer runs (corpora are replayed by cargo test)"
    exit 0
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    log "installing cargo-fuzz"
    cargo install cargo-fuzz --locked --quiet
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo +nightly fuzz list --fuzz-dir "$PWD")
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Each sanitizer builds into its own target dir, so switching is no rebuild.
fuzz_dir=$PWD
build=(--fuzz-dir "$fuzz_dir" -s "$sanitizer")
[ "$sanitizer" = address ] || build+=(--target-dir "$fuzz_dir/target/$sanitizer")
if [ -n "$runs" ]; then
    limit=(-runs=$(((runs + jobs - 1) / jobs)))
else
    limit=(-max_total_time="$seconds")
fi
[ "$jobs" = 1 ] || limit+=(-jobs="$jobs" -workers="$jobs")
status=0
for t in "${targets[@]}"; do
    out=$work/$t
    [ -z "$log_dir" ] || out=$log_dir/$t
    mkdir -p "$out/new" "corpus/$t" "artifacts/$t"
    touch "$out/started"
    log "fuzzing $t for ${runs:+$runs runs}${seconds:+${seconds}s} (sanitizer $sanitizer, $jobs job(s))"
    # New inputs go to the scratch dir; the kept corpus seeds the run. With
    # -jobs, libFuzzer writes fuzz-N.log in the working directory.
    if ! (cd "$out" && cargo +nightly fuzz run "${build[@]}" "$t" "$out/new" "$fuzz_dir/corpus/$t" -- \
        "${limit[@]}" -print_final_stats=1 -artifact_prefix="$fuzz_dir/artifacts/$t/" >"$out/run.log" 2>&1) ||
        # With -jobs the driver may exit 0 after a worker crashed.
        [ -n "$(find "artifacts/$t" -type f -newer "$out/started")" ]; then
        log "$t FAILED; the crashing input is under fuzz/artifacts/$t/"
        tail -n 40 "$out/run.log" "$out"/fuzz-*.log 2>/dev/null >&2
        status=1
    else
        grep -hE '^stat::number_of_executed_units' "$out/run.log" "$out"/fuzz-*.log 2>/dev/null | sed "s/^/$t /" >&2 || true
    fi
done
exit $status
