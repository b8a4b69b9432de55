#!/bin/sh
#
# Print the OpenBSD port's crates.inc for a Cargo.lock: one
# "MODCARGO_CRATES +=<TAB>name<TAB>version" line per crates.io package, in
# Cargo.lock order, as the ports tree's "make modcargo-gen-crates" prints
# them.  The workspace's own package has no source and is skipped; any
# other source (git, another registry) cannot be fetched by the ports
# framework and is an error.
#
# usage: port/gen-crates.sh [Cargo.lock] >port/sysutils/scwd/crates.inc

lock=${1:-Cargo.lock}
[ -r "$lock" ] || { echo "gen-crates: $lock: cannot read" >&2; exit 1; }

echo "# Generated from Cargo.lock by port/gen-crates.sh; do not edit."
awk -v lock="$lock" '
function flush() {
	if (name == "")
		return
	if (source == "registry+https://github.com/rust-lang/crates.io-index")
		printf("MODCARGO_CRATES +=\t%s\t%s\n", name, version)
	else if (source != "") {
		printf("gen-crates: %s: %s %s: source %s is not crates.io\n",
		    lock, name, version, source) > "/dev/stderr"
		bad = 1
	}
	name = version = source = ""
}
/^\[\[package\]\]$/	{ flush(); next }
/^name = "/		{ name = $3; gsub("\"", "", name); next }
/^version = "/		{ version = $3; gsub("\"", "", version); next }
/^source = "/		{ source = $3; gsub("\"", "", source); next }
END			{ flush(); exit bad }
' "$lock"
