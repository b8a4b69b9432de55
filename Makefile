# scwd Makefile: portable make (OpenBSD make, bmake, GNU make).
# cargo does the building; this file names the jobs.

CARGO ?=	cargo

all:
	${CARGO} build --release --locked

# Everything CI runs.
test:
	${CARGO} fmt --check
	${CARGO} clippy --locked --all-targets -- -D warnings
	${CARGO} test --locked

# The daemon in the namespace lab against the project's own metadata service.
demo:
	${CARGO} build --release --locked
	tests/lab/demo.sh

clean:
	${CARGO} clean

.PHONY: all test demo clean
