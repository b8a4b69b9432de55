#!/bin/bash
# make bench: scwd -o against the rc.local recipe it replaces
# (tests/lab/old/) and against the floor, a minimal Rust client
# (tests/lab/minclient.rs: connect, PATCH, read) built here with rustc -O,
# the toolchain and C library scwd is built with. The lab serves the
# legacy /127 fixture, the one the recipe can read (IPV6_* keys in the
# text /conf).
#
# Runs the variants in turn, rotating which goes first, BENCH_RUNS rounds
# (default 30) after one warm-up round, resetting vio0 between runs, and
# prints the median and the range of each figure:
#   booted      exec -> the service logs the PATCH /state (scwd-metad -T
#               logs wall-clock microseconds; exec time is bash's
#               $EPOCHREALTIME in the instance namespace just before it
#               forks the command)
#   own cost    scwd's booted minus the minimal client's in the same
#               round: what scwd itself spends before the boot signal
#   configured  exec -> the address and the default route exist, both
#               (timestamps of `ip -ts monitor` in the instance namespace)
#   requests    HTTP requests the service logged during the run
#   peak RSS    largest ru_maxrss of any process of the run, collected by
#               a child subreaper (tests/lab/peak-rss.py), since scwd's
#               parent exits without waiting for its fetcher
#   binary      size of the stripped release binaries (scwd, and scwctl
#               when built)
# Where the x86_64-unknown-linux-musl target is installed (rustup target
# list --installed), static musl builds of scwd and of the client run too,
# as rows of their own: the figures without glibc's start-up. They are
# built under target/bench; the product's build does not change.
# Builds only the client and the musl rows (the Makefile builds scwd);
# SCWD and SCWD_METAD name other binaries. Needs root, iproute2, curl,
# python3, rustc, strip(1).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
lab=$here/lab.sh
scwd=${SCWD:-$top/target/release/scwd}
export SCWD_METAD=${SCWD_METAD:-$top/target/release/scwd-metad}
scwctl=$(dirname "$scwd")/scwctl
bench=$top/target/bench
minclient=$bench/minclient
musl=x86_64-unknown-linux-musl
runs=${BENCH_RUNS:-30}
rss_runs=${BENCH_RSS_RUNS:-5}
fixture=$top/tests/fixtures/lab/legacy-127.json
# What the fixture says, for the reset and the checks.
address=2001:bc8:4700:2100::302d/127
gateway=2001:bc8:4700:2100::302c

die() {
	echo "bench: $*" >&2
	exit 1
}

# Inside the instance namespace: puts vio0 back as the lab made it.
reset_vio0() {
	ip -6 route del default 2>/dev/null || true
	ip -6 addr flush dev vio0 scope global
}

# Inside the instance namespace: one run of VARIANT in ROUND, appending
# "VARIANT T0 T_END STATUS ROUND" to the runs file.
run_one() {
	local variant=$1 out=$2 round=$3 t0 t1 status=0
	local -a cmd
	case $variant in
	old) cmd=(/bin/sh "$here/old/rc.local") ;;
	scwd) cmd=("$scwd" -o -f "$dir/scwd.conf") ;;
	min) cmd=("$minclient") ;;
	scwd-musl) cmd=("$bench/$musl/release/scwd" -o -f "$dir/scwd.conf") ;;
	min-musl) cmd=("$bench/minclient-musl") ;;
	esac
	t0=$EPOCHREALTIME
	"${cmd[@]}" >>"$out.log" 2>&1 || status=$?
	t1=$EPOCHREALTIME
	echo "$variant $t0 $t1 $status $round" >>"$out"
	sleep 0.2
	reset_vio0
	sleep 0.1
}

inner() {
	dir=$1
	shift
	local out=$dir/bench/runs i j n=$#
	local -a variants=("$@")
	export PATH=$here/old:$PATH
	reset_vio0
	for i in $(seq 0 "$runs"); do
		# Round i starts with variant i mod n; round 0 is the warm-up.
		for j in $(seq 0 $((n - 1))); do
			run_one "${variants[$(((i + j) % n))]}" "$out" "$i"
		done
	done
}

# Inside the instance namespace: peak RSS of each variant, appending
# "VARIANT FIELD KB" lines (peak-rss.py's, and "scwd time" for what
# /usr/bin/time says of scwd alone).
inner_rss() {
	dir=$1
	local rss=$dir/bench/rss i
	export PATH=$here/old:$PATH
	for i in $(seq 1 "$rss_runs"); do
		reset_vio0
		python3 "$here/peak-rss.py" /bin/sh "$here/old/rc.local" | sed 's/^/old /' >>"$rss"
		reset_vio0
		python3 "$here/peak-rss.py" "$scwd" -o -f "$dir/scwd.conf" | sed 's/^/scwd /' >>"$rss"
		reset_vio0
		/usr/bin/time -f "scwd time %M" -a -o "$rss" \
			"$scwd" -o -f "$dir/scwd.conf" >/dev/null 2>&1
	done
	reset_vio0
}

case ${1-} in
--inner) shift; inner "$@"; exit ;;
--inner-rss) shift; inner_rss "$@"; exit ;;
esac

for b in "$scwd" "$SCWD_METAD"; do
	[ -x "$b" ] || die "$b: not built (make bench builds it)"
done
[ "$(id -u)" -eq 0 ] || die "needs root (network namespaces)"
command -v curl >/dev/null || die "needs curl (the old recipe's client)"
command -v python3 >/dev/null || die "needs python3 (peak RSS)"
command -v "${RUSTC:-rustc}" >/dev/null || die "needs rustc (the minimal client)"

# The floor, with the toolchain cargo uses and its default C library.
mkdir -p "$bench"
"${RUSTC:-rustc}" -O -C strip=symbols -o "$minclient" "$here/minclient.rs" ||
	die "cannot build the minimal client"
variants=(old scwd min)
# Static musl rows, only where the target is there; a failed build says
# why and leaves them out.
musl_note="musl rows: none ($musl not installed: rustup target list --installed)"
if command -v rustup >/dev/null && rustup target list --installed 2>/dev/null | grep -qx "$musl"; then
	if "${RUSTC:-rustc}" -O -C strip=symbols --target "$musl" -o "$bench/minclient-musl" \
		"$here/minclient.rs" >"$bench/musl.log" 2>&1 &&
		(cd "$top" && cargo build --release --locked --bin scwd --target "$musl" \
			--target-dir "$bench") >>"$bench/musl.log" 2>&1; then
		variants+=(scwd-musl min-musl)
		musl_note=
	else
		musl_note="musl rows: none (build failed, see $bench/musl.log)"
	fi
fi

name=bench-$$
trap '"$lab" down "$name" >/dev/null 2>&1 || true' EXIT
"$lab" up "$name" --gateway global --fixture "$fixture" -- -T >/dev/null
dir=$("$lab" dir "$name")
mkdir "$dir/bench"
ip netns exec "scwd-$name" ip -ts monitor address route >"$dir/bench/monitor" 2>&1 &
monitor=$!
sleep 0.3

echo "bench: $runs rounds of ${variants[*]}, each round in another order, in lab $name"
echo "bench: $(nproc) cores; before: $(uptime)"
"$lab" exec "$name" "$0" --inner "$dir" "${variants[@]}"
"$lab" exec "$name" "$0" --inner-rss "$dir"
kill "$monitor" 2>/dev/null || true
echo "bench: after:  $(uptime)"

# Monitor lines to "EPOCH KIND": kind addr for our address (settled, not
# tentative), route for a default route via the gateway; deletions dropped.
grep -v Deleted "$dir/bench/monitor" | awk -v a="inet6 $address " -v g="default via $gateway " '
	/^\[/ && index($0, a) && !/tentative/ { print substr($1, 2, 26), "addr" }
	/^\[/ && index($0, g) { print substr($1, 2, 26), "route" }' >"$dir/bench/events.raw"
paste -d' ' <(cut -d' ' -f1 "$dir/bench/events.raw" | date -f - +%s.%6N) \
	<(cut -d' ' -f2 "$dir/bench/events.raw") >"$dir/bench/events"
# Service log to "EPOCH KIND": patch for the boot signal, req for any request.
awk '/^t=[0-9]/ && !/listening on/ {
	t = substr($1, 3); print t, ($2 == "PATCH" && $3 == "/state") ? "patch" : "req" }' \
	"$dir/metad.log" >"$dir/bench/requests"

# One line per measured run:
# variant booted_ms configured_ms requests status round.
awk '
	FILENAME ~ /events$/ { ev[++ne] = $1; evk[ne] = $2; next }
	FILENAME ~ /requests$/ { rq[++nr] = $1; rqk[nr] = $2; next }
	$5 == 0 { next }            # the warm-up round
	{
		t0 = $2; t1 = $3 + 0.2  # the run, and the pause before the reset
		boot = ""; addr = ""; route = ""; req = 0
		for (i = 1; i <= nr; i++) if (rq[i] >= t0 && rq[i] < t1) {
			req++; if (rqk[i] == "patch" && boot == "") boot = rq[i] - t0
		}
		for (i = 1; i <= ne; i++) if (ev[i] >= t0 && ev[i] < t1) {
			if (evk[i] == "addr" && addr == "") addr = ev[i] - t0
			if (evk[i] == "route" && route == "") route = ev[i] - t0
		}
		conf = (addr == "" || route == "") ? "-" : (addr > route ? addr : route) * 1000
		printf "%s %s %s %d %d %d\n", $1, boot == "" ? "-" : boot * 1000, conf, req, $4, $5
	}' "$dir/bench/events" "$dir/bench/requests" "$dir/bench/runs" >"$dir/bench/results"

# The minimal clients configure nothing: only their boot signal counts.
failed=$(awk '$5 != 0 || $2 == "-" || ($3 == "-" && $1 !~ /^min/)' "$dir/bench/results")
if [ -n "$failed" ]; then
	echo "bench: runs that failed or were not seen (variant booted configured requests status round):" >&2
	echo "$failed" >&2
	sed 's/^/  /' "$dir/bench/runs.log" | tail -20 >&2
	exit 1
fi

# Median, then min and max, of numbers one a line: "MEDIAN MIN MAX".
stats() {
	sort -g | awk '{ x[NR] = $1 } END {
		if (NR == 0) { print "- - -"; exit }
		m = (NR % 2) ? x[(NR + 1) / 2] : (x[NR / 2] + x[NR / 2 + 1]) / 2
		print m, x[1], x[NR] }'
}
column() { # variant column
	awk -v v="$1" -v c="$2" '$1 == v { print $c }' "$dir/bench/results"
}
median() { # variant column
	column "$1" "$2" | stats | cut -d' ' -f1
}
# Per round, A's booted minus B's: both ran within the same second or so.
round_diff() { # variant_a variant_b
	awk -v a="$1" -v b="$2" '
		$1 == a { ta[$6] = $2 } $1 == b { tb[$6] = $2 }
		END { for (r in ta) if (r in tb) print ta[r] - tb[r] }' "$dir/bench/results"
}
rss_median() { # variant field
	awk -v v="$1" -v f="$2" '$1 == v && $2 == f { print $3 }' "$dir/bench/rss" | sort -g |
		awk '{ x[NR] = $1 } END { if (NR == 0) print "-"; else print x[int((NR + 1) / 2)] }'
}

old_boot=$(median old 2) new_boot=$(median scwd 2)
old_conf=$(median old 3) new_conf=$(median scwd 3)
old_req=$(median old 4) new_req=$(median scwd 4)
old_rss=$(rss_median old max) new_rss=$(rss_median scwd max)

row() { # figure old new ratio target verdict
	printf '%-34s %12s %12s %9s   %-10s %s\n' "$@"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }'; }
ms() { awk -v t="$1" 'BEGIN { printf "%.2f ms", t }'; }
range() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f-%.2f", a, b }'; }
verdict() { awk -v x="$1" -v op="$2" -v t="$3" 'BEGIN {
	ok = (op == ">=") ? x >= t : x <= t; print ok ? "met" : "MISSED" }'; }
kb() { awk -v k="$1" 'BEGIN { printf "%.2f MB", k / 1000 }'; }
mb() { awk -v s="$1" 'BEGIN { printf "%.2f MB", s / 1e6 }'; }

echo
row "median of $runs runs" "rc.local" "scwd -o" "ratio" "target" ""
row "exec -> booted PATCH received" "$(ms "$old_boot")" "$(ms "$new_boot")" \
	"$(ratio "$old_boot" "$new_boot")" ">= 5x" \
	"$(verdict "$(awk -v a="$old_boot" -v b="$new_boot" 'BEGIN{print a/b}')" ">=" 5)"
row "exec -> address and route present" "$(ms "$old_conf")" "$(ms "$new_conf")" \
	"$(ratio "$old_conf" "$new_conf")" ">= 10x" \
	"$(verdict "$(awk -v a="$old_conf" -v b="$new_conf" 'BEGIN{print a/b}')" ">=" 10)"
row "HTTP requests per boot" "$old_req" "$new_req" "" "2" \
	"$(verdict "$new_req" "<=" 2)"
row "peak RSS, largest process" "$(kb "$old_rss")" "$(kb "$new_rss")" "" "<= 4 MB" \
	"$(verdict "$new_rss" "<=" 4000)"
row "  scwd parent / fetcher" "" "$(kb "$(rss_median scwd parent)") / $(kb "$(rss_median scwd child)")" "" "" ""
row "  /usr/bin/time -f %M scwd -o" "" "$(kb "$(rss_median scwd time)")" "" "" ""
# The release build is not stripped (install strips): measure stripped copies.
stripped() { # binary
	strip -o "$dir/bench/$(basename "$1").stripped" "$1"
	stat -c %s "$dir/bench/$(basename "$1").stripped"
}
for b in "$scwd" "$scwctl"; do
	[ -f "$b" ] || continue
	size=$(stripped "$b")
	row "stripped binary, $(basename "$b")" "-" "$(mb "$size")" "" "<= 3 MB" \
		"$(verdict "$size" "<=" 3000000)"
done

# scwd's own cost: exec -> PATCH above the minimal client's, per libc.
cost() { # label scwd_variant client_variant
	local s s_lo s_hi c c_lo c_hi d d_lo d_hi
	read -r s s_lo s_hi < <(column "$2" 2 | stats)
	read -r c c_lo c_hi < <(column "$3" 2 | stats)
	read -r d d_lo d_hi < <(round_diff "$2" "$3" | stats)
	echo
	printf '%-34s %12s %13s   %-10s %s\n' "exec -> booted PATCH, $1" "median" "min-max" "target" ""
	printf '%-34s %12s %13s\n' "  minimal client" "$(ms "$c")" "$(range "$c_lo" "$c_hi")"
	printf '%-34s %12s %13s\n' "  scwd -o" "$(ms "$s")" "$(range "$s_lo" "$s_hi")"
	printf '%-34s %12s %13s   %-10s %s\n' "  scwd - client, same round" "$(ms "$d")" \
		"$(range "$d_lo" "$d_hi")" "<= 0.6 ms" "$(verdict "$d" "<=" 0.6)"
	printf '%-34s %12s\n' "  scwd - client, of the medians" "$(awk -v a="$s" -v b="$c" 'BEGIN { printf "%.2f ms", a - b }')"
	printf '%-34s %12s\n' "  scwd / client" "$(ratio "$s" "$c")"
}
cost "glibc" scwd min
if [ -z "$musl_note" ]; then
	cost "static musl" scwd-musl min-musl
	cp "$bench/$musl/release/scwd" "$dir/bench/scwd-musl"
	row "stripped binary, scwd (musl)" "-" "$(mb "$(stripped "$dir/bench/scwd-musl")")" "" "" ""
else
	echo
	echo "$musl_note"
fi
echo
echo "booted and configured: medians of per-run times in ms; min-max in ms; RSS: median"
echo "of $rss_runs runs, KB/1000 as ru_maxrss gives it. /usr/bin/time sees only what it"
echo "waits for: scwd's parent (and the fetcher only when the parent has reaped it)."
echo "The machine's load (above) moves every figure: compare rows of one run."
