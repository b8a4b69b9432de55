# scwd Makefile: portable make (OpenBSD make, bmake, GNU make).
# cargo does the building; this file names the jobs.

CARGO ?=	cargo

all:
	${CARGO} build --release --locked

# Everything CI runs.
# --workspace: the lab's metadata service (tests/lab/metad) too, which the
# namespace tests run.
test:
	${CARGO} fmt --all --check
	${CARGO} clippy --locked --workspace --all-targets -- -D warnings
	${CARGO} build --release --locked
	${CARGO} test --locked --workspace
	.ci/openbsd-check
	.ci/check-packaging

# The daemon in the namespace lab against the project's own metadata service.
demo:
	${CARGO} build --release --locked --workspace
	tests/lab/demo.sh

# scwd -o against the rc.local recipe it replaces and against a minimal
# Rust client (scwd's own cost), in the namespace lab: prints the medians,
# the ranges and the targets (tests/lab/bench.sh). Needs root.
bench:
	${CARGO} build --release --locked --workspace
	tests/lab/bench.sh

# Fuzz each target for FUZZ_SECONDS (fuzz/run.sh: cargo-fuzz on the
# stable toolchain, AddressSanitizer). Not part of test: it takes minutes.
FUZZ_SECONDS ?=	60

fuzz:
	fuzz/run.sh ${FUZZ_SECONDS}

# Install, OpenBSD layout, from an existing release build (run make first:
# building as root is not install's job).  The rc.d script goes to /etc/rc.d
# whatever the prefix, as packages put it there (@rcscript ${RCDIR});
# the sample goes to the examples directory and pkg_add's @sample copies it
# to /etc.  The daemon path in the rc.d script follows BINDIR.
PREFIX ?=	/usr/local
DESTDIR ?=
BINDIR ?=	${PREFIX}/sbin
MANDIR ?=	${PREFIX}/man
EXAMPLESDIR ?=	${PREFIX}/share/examples/scwd
RCDIR ?=	/etc/rc.d
INSTALL ?=	install
# The release build keeps its symbols (Cargo.toml); install strips, as
# bsd.prog.mk does.
INSTALL_STRIP ?=	-s

install:
	@for b in scwd scwctl; do test -f target/release/$$b || \
	    { echo "install: target/release/$$b missing, run make first" >&2; exit 1; }; \
	done
	${INSTALL} -d ${DESTDIR}${BINDIR} ${DESTDIR}${MANDIR}/man8 \
	    ${DESTDIR}${MANDIR}/man5 ${DESTDIR}${EXAMPLESDIR} ${DESTDIR}${RCDIR}
	${INSTALL} ${INSTALL_STRIP} -m 555 target/release/scwd ${DESTDIR}${BINDIR}/scwd
	${INSTALL} ${INSTALL_STRIP} -m 555 target/release/scwctl ${DESTDIR}${BINDIR}/scwctl
	${INSTALL} -m 444 man/scwd.8 ${DESTDIR}${MANDIR}/man8/scwd.8
	${INSTALL} -m 444 man/scwctl.8 ${DESTDIR}${MANDIR}/man8/scwctl.8
	${INSTALL} -m 444 man/scwd.conf.5 ${DESTDIR}${MANDIR}/man5/scwd.conf.5
	${INSTALL} -m 444 etc/scwd.conf ${DESTDIR}${EXAMPLESDIR}/scwd.conf
	sed 's|^daemon=.*|daemon="${BINDIR}/scwd"|' rc.d/scwd \
	    >${DESTDIR}${RCDIR}/scwd
	chmod 555 ${DESTDIR}${RCDIR}/scwd

# Type-check and lint the OpenBSD code from Linux with Debian's rustc-web
# (shared/openbsd-check.md): cfg(target_os = "openbsd") code is otherwise
# never compiled here.
check-openbsd:
	.ci/openbsd-check

clean:
	${CARGO} clean

.PHONY: all test demo check-openbsd clean install bench fuzz
