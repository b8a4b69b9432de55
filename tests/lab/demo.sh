#!/bin/bash
# make demo: scwd configures IPv6 on a lab instance, start to finish.
# Builds nothing (the Makefile builds first); uses target/release unless
# SCWD and SCWD_METAD name the binaries. Needs root.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
lab=$here/lab.sh
scwd=${SCWD:-$top/target/release/scwd}
export SCWD_METAD=${SCWD_METAD:-$top/target/release/scwd-metad}
fixture=$top/tests/fixtures/scaleway/conf-json_talos-v4_routed_dual-stack_dhcp-v4_slaac-v6.json
name=demo-$$

for b in "$scwd" "$SCWD_METAD"; do
	[ -x "$b" ] || { echo "demo: $b: not built (make demo builds it)" >&2; exit 1; }
done
[ "$(id -u)" -eq 0 ] || { echo "demo: needs root (network namespaces)" >&2; exit 1; }

step() { printf '\n== %s\n' "$*"; }

trap '"$lab" down "$name"' EXIT
step "a lab instance: vio0 in namespace scwd-$name; metadata service and gateway next door"
"$lab" up "$name" --gateway link-local --fixture "$fixture"
dir=$("$lab" dir "$name")
echo "metadata served: routed IPv6 2001:bc8:1234:5678:dc00:1ff:fe14:a73b/64 via fe80::dc00:ff:fe12:3456"
echo "vio0 before:"
"$lab" exec "$name" ip -6 addr show dev vio0 | sed 's/^/  /'

step "scwd -d -o -f $dir/scwd.conf   (once, in the foreground)"
sed 's/^/  /' "$dir/scwd.conf"
echo
status=0
"$lab" exec "$name" "$scwd" -d -o -f "$dir/scwd.conf" 2>&1 || status=$?
echo "scwd exited $status"

step "what the metadata service saw"
"$lab" log "$name" | sed 's/^/  /'

step "vio0 now"
echo "\$ ip -6 addr show dev vio0"
"$lab" exec "$name" ip -6 addr show dev vio0
echo "\$ ip -6 route show default     (proto 83: scwd's own routes)"
"$lab" exec "$name" ip -6 route show default
echo "\$ ip -6 route get 2001:db8:ffff::1"
if "$lab" exec "$name" ip -6 route get 2001:db8:ffff::1; then
	echo "=> traffic to the IPv6 internet leaves vio0 through the gateway"
else
	echo "=> no IPv6 default route on vio0"
	[ "$status" -ne 0 ] || status=1
fi

step "tearing the lab down"
exit "$status"
