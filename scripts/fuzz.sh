#!/usr/bin/env bash
# Fuzzes every target in fuzz/ for SECONDS each (default 15).
#   scripts/fuzz.sh [SECONDS] [TARGET...]
# Long campaigns: scripts/fuzz.sh 3600 esp_decapsulate
# Needs the nightly toolchain (libFuzzer's -Z flags). Without it this says
# so and exits 0: the corpora are still replayed by 'cargo test' on stable.
set -euo pipefail
ESPRIT_SCRIPT=fuzz
source "$(dirname "$0")/lib/common.sh"
cd "$ESPRIT_ROOT/fuzz"
need_cargo

seconds=${1:-15}
shift || true
if [ "$seconds" = 0 ]; then
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
status=0
for t in "${targets[@]}"; do
    mkdir -p "$work/$t" "corpus/$t"
    log "fuzzing $t for ${seconds}s"
    # New inputs go to the scratch dir; the kept corpus seeds the run.
    if ! cargo +nightly fuzz run --fuzz-dir "$PWD" "$t" "$work/$t" "corpus/$t" -- \
        -max_total_time="$seconds" -print_final_stats=1 >"$work/$t.log" 2>&1; then
        log "$t FAILED; the crashing input is under fuzz/artifacts/$t/"
        tail -n 40 "$work/$t.log" >&2
        status=1
    else
        grep -E '^stat::number_of_executed_units' "$work/$t.log" | sed "s/^/$t /" >&2 || true
    fi
done
exit $status
