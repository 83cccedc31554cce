#!/usr/bin/env bash
# Fjord's one test command: installs what the tests need on a fresh Debian
# machine with Rust, then runs every test. README names it; .ci/run calls it.
#
#   bash compat-tests/run-all.sh
#
# Stages: lints (fmt, clippy), unit + integration tests (cargo test, which
# also runs each criterion benchmark once and a seeded fuzz test), cargo-fuzz
# on the request path for a bounded time,
# real-client compatibility tests (confluent-kafka / librdkafka 2.16, kcat /
# librdkafka 2.0.2, kafka-python) against real fjord processes (tiered
# storage against a local directory, Azurite and s3s-fs), and
# librdkafka's own regression suite (allowlisted tests).
#
# Environment: SKIP_LIBRDKAFKA=1 skips the regression suite (it builds
# librdkafka from source the first time, ~2 minutes on 2 cores);
# FUZZ_SECONDS (default 60) bounds the cargo-fuzz run.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export CARGO_TERM_COLOR=never
started=$(date +%s)
stage() { printf '\n=== %s (%ds)\n' "$1" "$(( $(date +%s) - started ))"; }

stage "install: Debian packages"
# kcat is librdkafka 2.0.2, the oldest client we test. The regression
# suite's build needs (zstd, lz4, zlib, rapidjson) are installed by its own
# script, compat-tests/librdkafka/run.sh.
need=()
command -v kcat >/dev/null || need+=(kcat)
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

stage "install: Python venv"
VENV=compat-tests/.venv
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check -r compat-tests/requirements.txt

stage "install: object stores for the tiered-storage tests"
# Azurite (Azure Blob Storage's emulator) from npm, pinned by
# compat-tests/package-lock.json; s3s-fs (an S3 server over a directory)
# built once into ~/.cargo/bin and reused by later runs on the machine.
[ -x compat-tests/node_modules/.bin/azurite-blob ] ||
  (cd compat-tests && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
command -v s3s-fs >/dev/null || [ -x "$HOME/.cargo/bin/s3s-fs" ] ||
  cargo install -q --locked s3s-fs --version 0.14.1 --features binary

stage "lint: rustfmt and clippy"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -q -- -D warnings

stage "unit and integration tests"
cargo build --workspace --all-targets -q
cargo test --workspace --all-targets -q 2>&1 | tail -n 200

stage "fuzz: cargo-fuzz on the request path, 60 s"
# cargo-fuzz wants nightly flags; RUSTC_BOOTSTRAP lets the stable toolchain
# accept them. A crash fails the run and leaves its input under
# compat-tests/fuzz/artifacts/.
command -v cargo-fuzz >/dev/null || cargo install -q --locked cargo-fuzz
mkdir -p compat-tests/.work
set +e
RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir compat-tests/fuzz request -- \
  -max_total_time="${FUZZ_SECONDS:-60}" >compat-tests/.work/fuzz.log 2>&1
fuzz_rc=$?
set -e
grep -E "^Done [0-9]+ runs" compat-tests/.work/fuzz.log || true
[ $fuzz_rc -eq 0 ] || tail -n 60 compat-tests/.work/fuzz.log

stage "real-client compatibility tests"
export FJORD_BIN="$ROOT/target/debug/fjord"
set +e
"$VENV/bin/python" -m pytest -q -p no:cacheprovider compat-tests
py_rc=$?
set -e

lib_rc=0
if [ "${SKIP_LIBRDKAFKA:-0}" != 1 ]; then
  stage "librdkafka regression suite"
  set +e
  bash compat-tests/librdkafka/run.sh
  lib_rc=$?
  set -e
fi

stage "done"
if [ $fuzz_rc -ne 0 ] || [ $py_rc -ne 0 ] || [ $lib_rc -ne 0 ]; then
  echo "FAILED: cargo-fuzz exit $fuzz_rc, pytest exit $py_rc, librdkafka suite exit $lib_rc"
  exit 1
fi
echo "all stages passed"
