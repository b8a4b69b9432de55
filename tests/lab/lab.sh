#!/bin/bash
# scwd namespace lab: a Scaleway instance's link, made of network namespaces.
#
# The instance namespace scwd-NAME has one interface, vio0 (a veth end,
# 169.254.42.1/16), as on an OpenBSD guest. Its peer namespace scwd-NAME-md
# plays Scaleway's side of the link: the metadata service at 169.254.42.42
# (scwd-metad, serving the lab's copy of a fixture) and the IPv6 gateway:
#   global      2001:bc8:4700:2100::302c/127  (legacy "ipv6" object, /127)
#   link-local  fe80::dc00:ff:fe12:3456       (routed IPs, default)
#   none        no IPv6 gateway
# DAD is off in both namespaces so addresses are usable at once and
# `ip -6 addr` does not change under a test's feet (no "tentative").
#
# usage:
#   lab.sh up NAME [--gateway global|link-local|none] [--fixture FILE]
#             [-- SCWD-METAD-FLAGS...]
#   lab.sh exec NAME CMD [ARG...]   run CMD in the instance namespace
#   lab.sh fixture NAME FILE        serve FILE from now on (atomic switch)
#   lab.sh log NAME                 the metadata service's request log
#   lab.sh dir NAME                 the lab's directory: scwd.conf, metad.log,
#                                   conf.json (served), empty/ (chroot)
#   lab.sh down NAME                stop everything in the lab, delete it
#   lab.sh list
#
# Environment: SCWD_METAD, the scwd-metad binary (default: target/release,
# then target/debug); SCWD_LAB_RUN, where lab directories live (default
# /run/scwd-lab). Needs root and iproute2.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
run=${SCWD_LAB_RUN:-/run/scwd-lab}

LL_GATEWAY=fe80::dc00:ff:fe12:3456
GLOBAL_GATEWAY=2001:bc8:4700:2100::302c/127
# MACs whose EUI-64 identifiers are those of the routed fixture's address
# (…:dc00:1ff:fe14:a73b) and gateway (fe80::dc00:ff:fe12:3456).
INSTANCE_MAC=de:00:01:14:a7:3b
GATEWAY_MAC=de:00:00:12:34:56

usage() {
	sed -n 's/^#   //p' "$0" | sed -n '/^lab.sh/,$p' >&2
	exit 1
}

die() {
	echo "lab.sh: $*" >&2
	exit 1
}

check_name() {
	[[ ${1-} =~ ^[A-Za-z0-9_.-]{1,40}$ ]] || die "bad lab name \"${1-}\""
	name=$1
	inst=scwd-$name
	peer=scwd-$name-md
	dir=$run/$name
}

find_metad() {
	if [ -n "${SCWD_METAD-}" ]; then
		echo "$SCWD_METAD"
		return
	fi
	for b in "$top/target/release/scwd-metad" "$top/target/debug/scwd-metad"; do
		if [ -x "$b" ]; then
			echo "$b"
			return
		fi
	done
	die "scwd-metad not built (cargo build -p scwd-metad), or set SCWD_METAD"
}

# Writes sysctls in a namespace: /proc/sys/net is per namespace.
ns_sysctl() {
	ip netns exec "$1" sh -c "echo $3 > /proc/sys/net/ipv6/conf/$2"
}

cmd_up() {
	check_name "${1-}"
	shift
	local gateway=link-local fixture=""
	while [ $# -gt 0 ]; do
		case $1 in
		--gateway) gateway=${2-}; shift 2 || usage ;;
		--fixture) fixture=${2-}; shift 2 || usage ;;
		--) shift; break ;;
		*) usage ;;
		esac
	done
	local fixtures=$top/tests/fixtures
	case $gateway in
	global) : "${fixture:=$fixtures/lab/legacy-127.json}" ;;
	link-local) : "${fixture:=$fixtures/scaleway/conf-json_talos-v4_routed_dual-stack_dhcp-v4_slaac-v6.json}" ;;
	none) : "${fixture:=$fixtures/scaleway/conf-json_legacy-nat_no-ipv6_vc1s-par1.json}" ;;
	*) die "--gateway: expected global, link-local or none, got \"$gateway\"" ;;
	esac
	[ -r "$fixture" ] || die "$fixture: cannot read"
	local metad
	metad=$(find_metad)
	if [ -e "/run/netns/$inst" ] || [ -e "/run/netns/$peer" ] || [ -e "$dir" ]; then
		die "lab $name is already up (lab.sh down $name)"
	fi

	# A lab half made is a lab to delete.
	trap 'cmd_down "$name" >/dev/null 2>&1' ERR
	mkdir -p "$dir/empty"
	cp "$fixture" "$dir/conf.json"

	ip netns add "$inst"
	ip netns add "$peer"
	for ns in "$inst" "$peer"; do
		ns_sysctl "$ns" all/accept_dad 0
		ns_sysctl "$ns" default/accept_dad 0
		ns_sysctl "$ns" default/accept_ra 0
		ip -n "$ns" link set lo up
	done
	ip -n "$inst" link add vio0 address "$INSTANCE_MAC" type veth \
		peer name md0 address "$GATEWAY_MAC" netns "$peer"
	ip -n "$inst" addr add 169.254.42.1/16 dev vio0
	ip -n "$peer" addr add 169.254.42.42/16 dev md0
	case $gateway in
	global)
		ip -n "$peer" -6 addr add "$GLOBAL_GATEWAY" dev md0 nodad
		;;
	link-local)
		# Exactly the gateway the routed fixtures name, not whatever
		# the kernel would derive.
		ip -n "$peer" link set md0 addrgenmode none
		ip -n "$peer" -6 addr add "$LL_GATEWAY/64" dev md0 nodad
		;;
	esac
	ip -n "$peer" link set md0 up
	ip -n "$inst" link set vio0 up
	# Even without DAD, link-local addresses stay tentative until the
	# kernel has seen the carrier (linkwatch, up to a second): hand over
	# a link that no longer changes by itself.
	local i settled=""
	for i in $(seq 100); do
		if [ -n "$(ip -n "$inst" -6 addr show dev vio0 scope link)" ] &&
			[ -z "$(ip -n "$inst" -6 addr show dev vio0 tentative)" ] &&
			[ -z "$(ip -n "$peer" -6 addr show dev md0 tentative)" ]; then
			settled=yes
			break
		fi
		sleep 0.05
	done
	[ -n "$settled" ] || die "vio0: link-local address still tentative after 5 s"

	cat >"$dir/scwd.conf" <<-EOF
		# scwd lab "$name" (tests/lab/lab.sh): vio0 is in namespace $inst,
		# the metadata service in $peer.
		interface vio0
		metadata-url "http://169.254.42.42"
		user nobody
		chroot "$dir/empty"
	EOF

	# stdin/stdout/stderr away from the caller: a test that reads
	# lab.sh's output must see EOF when lab.sh exits.
	ip netns exec "$peer" "$metad" -a 169.254.42.42:80 -f "$dir/conf.json" \
		-l "$dir/metad.log" "$@" </dev/null >"$dir/metad.err" 2>&1 &
	echo $! >"$dir/metad.pid"
	# metad: wait for it to listen (or to say it is down on purpose).
	for i in $(seq 100); do
		if grep -q -e 'listening on' -e 'down for' "$dir/metad.log" 2>/dev/null; then
			break
		fi
		if ! kill -0 "$(cat "$dir/metad.pid")" 2>/dev/null; then
			cat "$dir/metad.err" >&2
			false
		fi
		sleep 0.05
	done
	trap - ERR
	echo "lab $name up: vio0 in $inst; 169.254.42.42 and gateway ($gateway) in $peer"
	echo "lab $name: config $dir/scwd.conf, metadata log $dir/metad.log"
}

cmd_down() {
	check_name "${1-}"
	# Everything running in the lab's namespaces was started in the lab:
	# scwd-metad, scwd and its fetcher, commands given to exec.
	local pids="" ns i
	for i in 1 2 3 4 5 6 7 8 9 10 11; do
		pids=""
		for ns in "$inst" "$peer"; do
			if [ -e "/run/netns/$ns" ]; then
				pids="$pids $(ip netns pids "$ns" 2>/dev/null || true)"
			fi
		done
		pids=$(echo $pids)
		[ -n "$pids" ] || break
		if [ "$i" -eq 11 ]; then
			kill -KILL $pids 2>/dev/null || true
			sleep 0.1
		elif [ "$i" -eq 1 ]; then
			kill -TERM $pids 2>/dev/null || true
		fi
		sleep 0.1
	done
	for ns in "$inst" "$peer"; do
		if [ -e "/run/netns/$ns" ]; then
			ip netns del "$ns"
		fi
	done
	rm -rf "$dir"
}

cmd_exec() {
	check_name "${1-}"
	shift
	[ $# -gt 0 ] || usage
	exec ip netns exec "$inst" "$@"
}

cmd_fixture() {
	check_name "${1-}"
	[ -n "${2-}" ] || usage
	[ -d "$dir" ] || die "lab $name is not up"
	cp "$2" "$dir/conf.json.new"
	mv -f "$dir/conf.json.new" "$dir/conf.json"
}

cmd=${1-}
[ $# -gt 0 ] && shift
case $cmd in
up) cmd_up "$@" ;;
down) cmd_down "$@" ;;
exec) cmd_exec "$@" ;;
fixture) cmd_fixture "$@" ;;
log) check_name "${1-}"; cat "$dir/metad.log" ;;
dir) check_name "${1-}"; echo "$dir" ;;
list) [ -d "$run" ] && ls -1 "$run" ;;
*) usage ;;
esac
