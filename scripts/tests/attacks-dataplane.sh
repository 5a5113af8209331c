#!/usr/bin/env bash
# The data plane's attack suite: runs every scripts/tests/attacks/dp-*.sh
# in turn (each a standalone network-namespace test that ends with a line
# "N passed, M failed" and exits non-zero on a failure), prints each one's
# result, then the sums as "N passed, M failed"; exits non-zero if any test
# failed, or ended without its summary line.
#
#   scripts/tests/attacks-dataplane.sh [NAME...]   (dp-spoof-esp, ...; default all)
#
# Needs root; run it under flock /tmp/esprit-netns.lock like the other
# namespace tests. Each script keeps its own time bound ($ESPRIT_TIMEOUT).
set -uo pipefail
ESPRIT_SCRIPT=attacks-dataplane
source "$(dirname "$0")/../lib/common.sh"
need_root

dir="$ESPRIT_ROOT/scripts/tests/attacks"
scripts=()
if [ $# -gt 0 ]; then
    for name in "$@"; do scripts+=("$dir/${name%.sh}.sh"); done
else
    for s in "$dir"/dp-*.sh; do [ -e "$s" ] && scripts+=("$s"); done
fi
[ ${#scripts[@]} -gt 0 ] || die "no dp-*.sh in $dir"

passed=0
failed=0
broken=0
out=$(mktemp /tmp/esprit-attacks-dp.XXXXXX)
trap 'rm -f "$out"' EXIT
results=()
for s in "${scripts[@]}"; do
    name=$(basename "$s" .sh)
    [ -f "$s" ] || die "no such attack script: $s"
    log "=== $name"
    bash "$s" 2>&1 | tee "$out" >&2
    status=${PIPESTATUS[0]}
    # "N passed, M failed", with or without the script's name before it.
    line=$(grep -Eo '(^|: )[0-9]+ passed, [0-9]+ failed$' "$out" | tail -n 1)
    line=${line#: }
    if [ -z "$line" ]; then
        # Died before its summary (setup failed, timeout): one failure.
        broken=$((broken + 1))
        results+=("$name: no summary (exit $status)")
        continue
    fi
    p=${line%% passed*}
    f=${line#*passed, }
    f=${f%% failed}
    passed=$((passed + p))
    failed=$((failed + f))
    if [ "$status" != 0 ] && [ "$f" = 0 ]; then
        # A non-zero exit with nothing failed is still a failure.
        broken=$((broken + 1))
        results+=("$name: $line, exit $status")
    else
        results+=("$name: $line")
    fi
done

for r in "${results[@]}"; do log "$r"; done
failed=$((failed + broken))
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
