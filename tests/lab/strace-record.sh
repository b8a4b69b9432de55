#!/bin/bash
# What scwd's processes call after their pledge: `scwd -o` in the namespace
# lab under `strace -f`, one line per (process, system call), in the format
# of src/sandbox/syscalls.record.
#
# usage:
#   strace-record.sh                  bring a lab up, record, take it down
#                                     (regenerate the record:
#                                     tests/lab/strace-record.sh >src/sandbox/syscalls.record)
#   strace-record.sh run NS CONF [daemon]
#                                     record scwd -o -f CONF in namespace NS
#                                     (daemon: scwd -d, scwctl queries,
#                                     SIGHUP, SIGTERM)
#
# Each process is known by its promises: scwd runs with -v, and
# sandbox::pledge logs `pledge "PROMISES"` just before it installs the
# filter. Threads count for their process. A call counts once any thread
# of its process has installed the filter (seccomp
# SECCOMP_SET_MODE_FILTER = 0). A thread killed by SIGSYS adds
# "KILLED <call>" for its last call.
#
# Environment: SCWD, the scwd binary (default: target/release/scwd, and
# for the whole record target/debug/scwd as well).
# Needs root, iproute2 and strace.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
scwd=${SCWD:-$top/target/release/scwd}

# trace NS CONF OUT [daemon]: scwd -o, or scwd -d asked by scwctl, then
# sent SIGHUP and SIGTERM.
trace() {
	local ns=$1 conf=$2 out=$3 tracer pid i sock ctl
	# The lab's own control socket, never the default one.
	sock=$(dirname "$conf")/scwd.sock
	ctl=$(dirname "$scwd")/scwctl
	if [ "${4-}" != daemon ]; then
		# scwd's exit status is the lab's business, not the record's.
		ip netns exec "$ns" strace -f -qq -s 256 -o "$out" "$scwd" -v -o -f "$conf" \
		    -s "$sock" >/dev/null 2>&1 || true
		return
	fi
	ip netns exec "$ns" strace -f -qq -s 256 -o "$out" "$scwd" -v -d -f "$conf" \
	    -s "$sock" >/dev/null 2>&1 &
	tracer=$!
	pid=
	for i in $(seq 50); do
		pid=$(pgrep -P "$tracer" -x scwd || true)
		[ -z "$pid" ] || break
		sleep 0.1
	done
	[ -n "$pid" ] || { kill "$tracer"; wait "$tracer" || true; return; }
	sleep 2
	# The control process at work: answers, a refusal, a refresh.
	for q in show "get HOSTNAME" "ssh-keys root" "get NO_SUCH_KEY" refresh; do
		# shellcheck disable=SC2086
		"$ctl" -s "$sock" $q >/dev/null 2>&1 || true
	done
	sleep 1
	kill -HUP "$pid"
	sleep 1
	kill -TERM "$pid"
	wait "$tracer" || true
}

record() {
	local ns=$1 conf=$2 out
	out=$(mktemp)
	trace "$ns" "$conf" "$out" "${3-}"
	awk '
	# Pass 1: who made whom. "TID clone(...) = NEW", possibly split in
	# "<unfinished ...>" and "<... clone resumed> ... = NEW".
	function note(tid, flags, ret) {
		if (ret !~ /^[0-9]+$/)
			return
		parent[ret] = tid
		thread[ret] = (flags ~ /CLONE_THREAD/)
	}
	NR == FNR {
		tid = $1
		line = $0
		sub(/^[0-9]+ +/, "", line)
		ret = line
		sub(/.*= /, "", ret)
		sub(/ .*/, "", ret)
		if (line ~ /^(clone|clone3|fork|vfork)\(/) {
			if (line ~ /<unfinished \.\.\.>$/)
				pending[tid] = line
			else
				note(tid, line, ret)
		} else if (line ~ /^<\.\.\. (clone|clone3|fork|vfork) resumed>/) {
			note(tid, pending[tid] line, ret)
			delete pending[tid]
		}
		next
	}
	function proc(tid) {
		while (thread[tid])
			tid = parent[tid]
		return tid
	}
	function name(p) {
		return (p in promises) ? promises[p] : "unknown"
	}
	# Pass 2: calls after the pledge, per process.
	{
		tid = $1
		line = $0
		sub(/^[0-9]+ +/, "", line)
		p = proc(tid)
		if (line ~ /^\+\+\+ killed by SIGSYS/) {
			if (tid in last)
				print "call\t" name(p) "\tKILLED " last[tid]
			next
		}
		if (line ~ /^<\.\.\. seccomp resumed>.*= 0$/ && waiting[tid])
			pledged[p] = 1
		if (line ~ /^(---|\+\+\+|<\.\.\.)/)
			next
		if (!match(line, /^[a-z0-9_]+\(/))
			next
		call = substr(line, 1, RLENGTH - 1)
		last[tid] = call
		if (call == "write" && match(line, /pledge \\"[a-z ]*\\"/))
			promises[p] = substr(line, RSTART + 9, RLENGTH - 11)
		if (pledged[p])
			print "call\t" name(p) "\t" call
		if (call == "seccomp" && line ~ /SECCOMP_SET_MODE_FILTER/) {
			if (line ~ /= 0$/)
				pledged[p] = 1
			else if (line ~ /<unfinished \.\.\.>$/)
				waiting[tid] = 1
		}
	}
	' "$out" "$out" | sort -u
	rm -f "$out"
}

case ${1-} in
run)
	[ $# -eq 3 ] || [ $# -eq 4 ] || { sed -n 's/^#   //p' "$0" >&2; exit 1; }
	record "$2" "$3" "${4-}"
	;;
"")
	fixture=$top/tests/fixtures/scaleway/conf-json_talos-v4_routed_dual-stack_dhcp-v4_slaac-v6.json
	name=rec$$
	run=${SCWD_LAB_RUN:-/run/scwd-lab}
	trap '"$here/lab.sh" down "$name" >/dev/null 2>&1 || true' EXIT
	cat <<-EOF
	# What scwd's processes call after pledge(2) on Linux x86_64: scwd -o
	# (twice) and scwd -d with scwctl queries, SIGHUP and SIGTERM, release and debug
	# builds, in the namespace lab under strace -f, routed /64 fixture
	# (tests/lab/strace-record.sh). Beside the allow-lists in seccomp.rs,
	# one "call PROMISES NAME" a line: every call here must be allowed by
	# the promises of the process that made it (unit test there), and a
	# fresh record must hold no call missing here (tests/lab.rs,
	# strace_record_holds_every_call). Regenerate after a change of
	# dependency or code that adds a call, and extend the promise whose
	# OpenBSD rule allows it.
	EOF
	# A first run configures vio0, a second finds it done, a resident
	# one refreshes on SIGHUP and exits on SIGTERM; with the release and
	# the debug build (make test's lab runs the debug one).
	for scwd in ${SCWD:-$top/target/release/scwd $top/target/debug/scwd}; do
		[ -x "$scwd" ] || { echo "strace-record.sh: no $scwd" >&2; exit 1; }
		"$here/lab.sh" down "$name" >/dev/null 2>&1 || true
		"$here/lab.sh" up "$name" --gateway link-local --fixture "$fixture" >/dev/null
		record "scwd-$name" "$run/$name/scwd.conf"
		record "scwd-$name" "$run/$name/scwd.conf"
		record "scwd-$name" "$run/$name/scwd.conf" daemon
	done | sort -u
	;;
*)
	sed -n 's/^#   //p' "$0" >&2
	exit 1
	;;
esac
