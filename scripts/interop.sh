#!/usr/bin/env bash
# Interoperability tests against an independent IKE/IPsec implementation:
#
#   scripts/interop.sh PEER VERSION      e.g. scripts/interop.sh strongswan ikev2
#
# runs scripts/tests/interop-PEER-VERSION.sh (see its header; the
# environment it reads passes through). PEER: strongswan; VERSION: ikev1
# or ikev2.
set -euo pipefail
ESPRIT_SCRIPT=interop
source "$(dirname "$0")/lib/common.sh"

usage="usage: scripts/interop.sh PEER VERSION (PEER: strongswan; VERSION: ikev1 or ikev2)"
[ $# -eq 2 ] || die "$usage"
case "$1" in strongswan) ;; *) die "unknown peer \"$1\": $usage" ;; esac
case "$2" in ikev1 | ikev2) ;; *) die "unknown IKE version \"$2\": $usage" ;; esac
exec "$ESPRIT_ROOT/scripts/tests/interop-$1-$2.sh"
