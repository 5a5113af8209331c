#!/usr/bin/env bash
# Runs every esprit test: formatting and lints, unit and integration tests
# (scapy ESP cross-checks, network-namespace tests on AF_XDP), and a short
# fuzzing pass. Needs root on a Debian machine; installs what it needs.
#
#   scripts/test.sh            everything
#   ESPRIT_FUZZ_SECONDS=N      seconds per fuzz target (default 15; 0 = replay corpora only)
set -euo pipefail
ESPRIT_SCRIPT=test
source "$(dirname "$0")/lib/common.sh"
cd "$ESPRIT_ROOT"

need_root
need_cargo
apt_install "${ESPRIT_BUILD_PACKAGES[@]}" "${ESPRIT_TEST_PACKAGES[@]}" "${ESPRIT_STRONGSWAN_PACKAGES[@]}"

passed=0
failed=0
failed_names=()
failed_logs=()
# Each stage's output is also kept, so that the summary at the end (the
# part of a long CI log that is read first) repeats what failed.
STAGE_LOGS=$(mktemp -d /tmp/esprit-test.XXXXXX)
trap 'rm -rf "$STAGE_LOGS"' EXIT
stage() {
    local name=$1
    shift
    log "== $name"
    local t0=$SECONDS slog
    slog="$STAGE_LOGS/$((passed + failed + 1)).log"
    # Every stage is bounded; a hung one fails instead of eating CI's time.
    # tee runs as a process substitution, not a pipe: a daemon a stage
    # leaves holding its stdout cannot hold the stage open.
    local rc=0 tee_pid _
    # (The braces put the redirection in this shell, so $! is tee's.)
    { timeout --kill-after=10 "${ESPRIT_STAGE_TIMEOUT:-1200}" "$@"; } > >(tee "$slog") 2>&1 || rc=$?
    tee_pid=$!
    # tee ends when the stage's last writer does; bounded, in case a
    # daemon still holds it.
    for _ in $(seq 50); do kill -0 "$tee_pid" 2>/dev/null || break; sleep 0.1; done
    if [ "$rc" -eq 0 ]; then
        passed=$((passed + 1))
        log "== $name: ok ($((SECONDS - t0)) s)"
    else
        failed=$((failed + 1))
        failed_names+=("$name")
        failed_logs+=("$slog")
        log "== $name: FAILED ($((SECONDS - t0)) s)"
    fi
}

# failure_summary: for each failed stage, its failed checks and its last
# lines.
failure_summary() {
    local i
    for i in "${!failed_names[@]}"; do
        echo
        echo "---- failed stage: ${failed_names[$i]}"
        grep -E "FAIL|error|panicked|die|did not" "${failed_logs[$i]}" | tail -n 30 || true
        echo "---- its last lines:"
        tail -n 25 "${failed_logs[$i]}"
    done
}

# The tests must not skip what they exist to prove.
export ESPRIT_REQUIRE_SCAPY=1 ESPRIT_REQUIRE_ROOT=1
export CARGO_TERM_COLOR=never

# Unit, property, scapy cross-check and AF_XDP netns tests.
stage "format" cargo fmt --all -- --check
stage "clippy" cargo clippy --workspace --all-targets --locked -- -D warnings
stage "build" cargo build --workspace --bins --examples --locked
stage "cargo test" cargo test --workspace --locked
# Two fastpathd gateways in network namespaces (see the script's header).
stage "fastpath: 1 worker, native XDP, aes128gcm16" scripts/tests/fastpath-netns.sh 1 driver aes128gcm16
stage "fastpath: 2 workers x 2 queues, aes256-sha1, UDP-encapsulated, rings of 4096" \
    env ESPRIT_FP_RING=4096 scripts/tests/fastpath-netns.sh 2 driver aes256-sha1 encap
stage "fastpath: 1 worker, generic XDP, aes128-sha256" scripts/tests/fastpath-netns.sh 1 skb aes128-sha256
stage "attacks: data plane" scripts/tests/attacks-dataplane.sh
# controld programming two fastpathd gateways from ScreenOS configuration
# files (manual keys), with live set/unset and kill -9 restarts of both.
stage "controld: seed topology, manual-key VPNs, restarts" scripts/tests/controld-netns.sh driver
# TCP through the tunnel at WAN MTUs 1500 and 1400 with set flow tcp-mss on
# and off; non-DF UDP over the tunnel MTU fragmented before encryption.
stage "MTU: tcp-mss clamping, fragmentation before encryption, WAN MTU 1500 and 1400" scripts/tests/mtu.sh driver
# The interactive esprit shell in a pseudo-terminal (completion, history,
# errors, controld restarting) against controld and fastpathd; controld's
# Prometheus endpoint.
stage "esprit shell in a pseudo-terminal, controld --metrics" scripts/tests/cli-shell.sh
# scripts/install.sh into a staging root; the systemd units verified.
stage "install layout and systemd units" scripts/tests/install-layout.sh
# IKEv1 against strongSwan: the protocol core alone (both ways, 4 proxy-IDs),
# then the whole gateway (controld + fastpathd, on demand, ESP traffic).
stage "IKEv1 core vs strongSwan" env IKE_PEER="$(esprit_bin examples/ike_peer)" \
    scripts/tests/ike-core-strongswan.sh
stage "interop: esprit vs strongSwan, IKEv1, ESP through fastpathd" scripts/interop.sh strongswan ikev1
stage "interop: esprit vs strongSwan, IKEv2, ESP through fastpathd" scripts/interop.sh strongswan ikev2
stage "NAT traversal: esprit behind an nftables NAT vs strongSwan" scripts/tests/nat.sh
stage "attacks: IKE" scripts/tests/attacks-ike.sh
stage "IKE rekeys esprit vs esprit under traffic" scripts/tests/ike-netns.sh
stage "IKEv2 on demand and rekeys esprit vs esprit under traffic" scripts/tests/ike-netns.sh ikev2
stage "restart: controld kill -9 loses nothing" scripts/tests/restart.sh
stage "VPN monitor: tunnel.1 status esprit vs esprit" scripts/tests/monitor-netns.sh
stage "demo (peer esprit)" scripts/demo.sh
stage "demo (peer strongSwan)" scripts/demo.sh --peer strongswan
stage "throughput report, short: NDR search, latency, plots" env ESPRIT_BIN="$(esprit_target_dir)/debug" scripts/bench-throughput.sh --short
stage "fuzz smoke" scripts/fuzz.sh "${ESPRIT_FUZZ_SECONDS:-15}"

echo
if [ "$failed" -gt 0 ]; then
    failure_summary
    log "failed stages: ${failed_names[*]}"
fi
echo "stages: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
