#!/bin/sh
# make fuzz: build the fuzz targets and run each for a bounded time.
#
# usage: fuzz/run.sh [SECONDS [TARGET...]]     (default 60, all targets)
#
# cargo-fuzz needs nightly compiler flags; the stable toolchain accepts
# them with RUSTC_BOOTSTRAP=1, and ships the AddressSanitizer runtime
# (FUZZ_SANITIZER=none to do without). The corpus grows in
# fuzz/corpus/TARGET (not committed); seeds are the hostile corpus and
# the fixtures for metadata_plan, the golden kernel messages for
# wire_decode. A crash stops the run with the input in
# fuzz/artifacts/TARGET/: fix it, then copy the input to
# fuzz/regressions/TARGET/ so tests/fuzz_regressions.rs replays it.
set -eu

cd "$(dirname "$0")/.."
seconds=${1:-60}
[ $# -gt 0 ] && shift
targets=${*:-metadata_plan wire_decode}
sanitizer=${FUZZ_SANITIZER:-address}
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
	echo "fuzz: installing cargo-fuzz" >&2
	cargo install --locked cargo-fuzz
fi
cargo fuzz build -s "$sanitizer"

status=0
for t in $targets; do
	case $t in
	metadata_plan)
		seeds="tests/hostile tests/fixtures/scaleway tests/fixtures/lab"
		opts="-max_len=65536 -dict=fuzz/metadata_plan.dict"
		;;
	wire_decode)
		seeds="fuzz/seeds/wire_decode"
		opts="-max_len=2048"
		;;
	*)
		echo "fuzz: unknown target $t" >&2
		exit 1
		;;
	esac
	mkdir -p "fuzz/corpus/$t" "fuzz/regressions/$t"
	log=fuzz/artifacts/$t.log
	mkdir -p fuzz/artifacts
	echo "== $t: $seconds s"
	# Regressions first: an old crash that comes back is found at once.
	if cargo fuzz run -s "$sanitizer" "$t" "fuzz/corpus/$t" \
		"fuzz/regressions/$t" $seeds -- \
		-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
		-print_final_stats=1 $opts >"$log" 2>&1; then
		grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1
		grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' "$log"
	else
		status=1
		grep -E 'ERROR|panicked|SUMMARY|Test unit written|^artifact_prefix' "$log" || tail -20 "$log"
		echo "fuzz: $t: FAILED, full log in $log" >&2
	fi
done
exit $status
