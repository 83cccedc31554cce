#!/usr/bin/env bash
# Run librdkafka's own regression tests (tests/NNNN-*.c, driven by its
# test-runner) against a real fjord broker.
#
#   compat-tests/librdkafka/run.sh [--build-only] [--list FILE] [TESTNUM ...]
#
# --list FILE reads the tests from FILE (default allowlist.txt; candidates.txt
# holds every test considered, passing or not). One test a line:
#
#   NNNN [subtests=SUBSTRING] [scenario=noautocreate|consumer]   # comment
#
# subtests= runs only the sub-tests whose name contains SUBSTRING (the
# runner's SUBTESTS); scenario=noautocreate runs a test that needs a broker
# without topic auto-creation (fjord gets --auto-create-topics false);
# scenario=consumer runs it with the KIP-848 consumer group protocol
# (TEST_CONSUMER_GROUP_PROTOCOL=consumer, TEST_KAFKA_VERSION=4.0.0).
#
# 1. Fetches librdkafka's source with `cargo fetch` of the rdkafka-sys crate
#    (it vendors librdkafka with tests/ and examples/), caches it under
#    compat-tests/.work/ (gitignored) and builds librdkafka, the test-runner
#    and examples/rdkafka_performance. Each step is skipped when its result
#    is already cached, so a second run starts testing at once.
# 2. For every test number in allowlist.txt (or the numbers given on the
#    command line) starts a fresh fjord broker on a free port with its own
#    data directory, runs `TESTS=NNNN ./test-runner` under a timeout, and
#    stops the broker by PID.
# 3. Prints one PASS/FAIL line per test and a final `N passed, M failed`;
#    exits non-zero if any test failed.
#
# Environment:
#   FJORD_BIN         broker binary (default: <repo>/target/debug/fjord)
#   TEST_TIMEOUT      seconds per test (default 120)
#   JOBS              make parallelism (default 2)
#   PARALLEL          tests run at once, each against its own broker (default 2)
#   KEEP_LOGS=1       keep each test's broker data dir (logs are always kept)
#   RDKAFKA_DEBUG     passed as the test-runner's debug contexts (e.g. "broker,protocol")
#
# CI=true (as CI sets it) makes the test-runner more forgiving: its timeout
# multiplier goes up by 2 and a few timing checks only warn.
#
# Logs: compat-tests/.work/librdkafka-logs/NAME.{test.log,broker.log,test.conf},
# NAME being NNNN plus any subtests/scenario. librdkafka's load generator is
# built too: compat-tests/.work/rdkafka-sys-*/librdkafka/examples/rdkafka_performance
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
WORK="$REPO/compat-tests/.work"
FJORD_BIN="${FJORD_BIN:-$REPO/target/debug/fjord}"
TEST_TIMEOUT="${TEST_TIMEOUT:-120}"
JOBS="${JOBS:-2}"
PARALLEL="${PARALLEL:-2}"

CRATE=rdkafka-sys
CRATE_VER="4.10.0+2.12.1"            # vendors librdkafka 2.12.1
SRC="$WORK/$CRATE-$CRATE_VER/librdkafka"
LOGDIR="$WORK/librdkafka-logs"

log() { printf '[librdkafka-compat] %s\n' "$*" >&2; }

# ---------------------------------------------------------------- fetch ----
fetch() {
    mkdir -p "$WORK"
    if [[ -f "$SRC/configure" ]]; then
        return 0
    fi
    # cargo is the registry's ordinary client: fetch the crate through a
    # throwaway manifest, then copy its vendored librdkafka out of cargo's
    # source cache.
    local proj="$WORK/fetch-$CRATE"
    mkdir -p "$proj/src"
    printf '[package]\nname = "fetch-rdkafka-sys"\nversion = "0.0.0"\nedition = "2021"\n[workspace]\n[dependencies]\n%s = "=%s"\n' \
        "$CRATE" "$CRATE_VER" >"$proj/Cargo.toml"
    : >"$proj/src/lib.rs"
    log "fetching $CRATE $CRATE_VER with cargo"
    (cd "$proj" && cargo fetch -q) || { log "cargo fetch of $CRATE failed"; exit 2; }
    local cached
    cached=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"$CRATE-$CRATE_VER" 2>/dev/null | head -1)
    [[ -n "$cached" && -f "$cached/librdkafka/configure" ]] || { log "$CRATE $CRATE_VER not found in cargo's cache"; exit 2; }
    rm -rf "$WORK/$CRATE-$CRATE_VER"
    cp -a "$cached" "$WORK/$CRATE-$CRATE_VER"
    chmod +x "$SRC/configure" "$SRC"/mk* 2>/dev/null || true
}

# ---------------------------------------------------------------- build ----
need_apt() {
    # Headers the build needs. Installed with apt-get when missing (we run as root
    # on CI); without zstd the compression tests would skip their zstd cases.
    local missing=()
    [[ -f /usr/include/zstd.h ]] || missing+=(libzstd-dev)
    [[ -f /usr/include/lz4.h ]] || missing+=(liblz4-dev)
    [[ -f /usr/include/zlib.h ]] || missing+=(zlib1g-dev)
    [[ -d /usr/include/rapidjson ]] || missing+=(rapidjson-dev)
    command -v pkg-config >/dev/null || missing+=(pkg-config)
    command -v g++ >/dev/null || missing+=(g++)
    command -v python3 >/dev/null || missing+=(python3)
    if ((${#missing[@]})); then
        log "installing ${missing[*]}"
        if [[ $(id -u) -eq 0 ]]; then
            (apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
                apt-get install -y -qq "${missing[@]}") >"$WORK/apt.log" 2>&1 \
                || { tail -20 "$WORK/apt.log" >&2; exit 2; }
        else
            log "not root: install ${missing[*]} yourself"; exit 2
        fi
    fi
}

build() {
    local stamp="$WORK/.librdkafka-$CRATE_VER.built"
    if [[ -f "$stamp" && -x "$SRC/tests/test-runner" ]]; then
        return 0
    fi
    need_apt
    local t0=$SECONDS
    cd "$SRC"
    if [[ ! -f Makefile.config ]]; then
        log "configuring librdkafka"
        # No TLS/SASL/OAUTH: fjord speaks PLAINTEXT only, and leaving them out
        # keeps the build short and its dependencies few.
        nice -n 19 ./configure --disable-ssl --disable-gssapi --disable-curl \
            --enable-zlib --enable-zstd --enable-lz4-ext >"$WORK/librdkafka-configure.log" 2>&1 \
            || { tail -30 "$WORK/librdkafka-configure.log" >&2; exit 2; }
    fi
    log "building librdkafka (src, src-cpp) with -j$JOBS"
    nice -n 19 make -j"$JOBS" libs >"$WORK/librdkafka-build.log" 2>&1 \
        || { tail -40 "$WORK/librdkafka-build.log" >&2; exit 2; }
    log "building tests/test-runner"
    nice -n 19 make -j"$JOBS" -C tests build >>"$WORK/librdkafka-build.log" 2>&1 \
        || { tail -40 "$WORK/librdkafka-build.log" >&2; exit 2; }
    log "building examples/rdkafka_performance"
    nice -n 19 make -j"$JOBS" -C examples rdkafka_performance >>"$WORK/librdkafka-build.log" 2>&1 \
        || { tail -40 "$WORK/librdkafka-build.log" >&2; exit 2; }
    touch "$stamp"
    log "built in $((SECONDS - t0)) s"
}

# ------------------------------------------------------------------ run ----
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

BROKER_PID=""
BROKER_DIR=""
stop_broker() {
    if [[ -n "$BROKER_PID" ]]; then
        if kill -0 "$BROKER_PID" 2>/dev/null; then
            kill "$BROKER_PID" 2>/dev/null || true
            for _ in $(seq 1 100); do
                kill -0 "$BROKER_PID" 2>/dev/null || break
                sleep 0.1
            done
            kill -9 "$BROKER_PID" 2>/dev/null || true
        fi
        wait "$BROKER_PID" 2>/dev/null || true
        BROKER_PID=""
    fi
    if [[ -n "$BROKER_DIR" && -z "${KEEP_LOGS:-}" ]]; then
        rm -rf "$BROKER_DIR"
    fi
    BROKER_DIR=""
}
trap stop_broker EXIT
trap 'stop_broker; kill $(jobs -p) 2>/dev/null; exit 130' INT TERM

# start_broker LOGFILE [EXTRA FLAGS...] -> sets BROKER_PID, PORT
start_broker() {
    local blog="$1"; shift
    local try
    for try in 1 2 3; do
        PORT="$(free_port)"
        BROKER_DIR="$(mktemp -d "$WORK/fjord-data.XXXXXX")"
        "$FJORD_BIN" --data-dir "$BROKER_DIR" \
            --listen "127.0.0.1:$PORT" --advertise "127.0.0.1:$PORT" \
            --num-partitions 4 --registry-listen off --admin-listen off "$@" >"$blog" 2>&1 </dev/null &
        BROKER_PID=$!
        local i
        for i in $(seq 1 300); do
            if ! kill -0 "$BROKER_PID" 2>/dev/null; then
                break
            fi
            # Our own process must be the one listening on PORT.
            if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
                if kill -0 "$BROKER_PID" 2>/dev/null; then
                    return 0
                fi
            fi
            sleep 0.1
        done
        log "fjord did not start on port $PORT (try $try); see $blog"
        stop_broker
    done
    return 1
}

# run_one NNNN [SUBTESTS] [SCENARIO]
run_one() {
    local num="$1" subtests="${2:-}" scenario="${3:-}"
    local name="$num" flags=() kafka_version=3.9.0 group_protocol=classic
    [[ -n "$subtests" ]] && name="$num-${subtests//[^A-Za-z0-9_.-]/_}"
    [[ -n "$scenario" ]] && name="$name-$scenario"
    case "$scenario" in
        "") ;;
        noautocreate) flags+=(--auto-create-topics false) ;;
        # KIP-848: the runner opens its Kafka 4.x gates and consumers use
        # group.protocol=consumer.
        consumer) kafka_version=4.0.0; group_protocol=consumer; scenario="" ;;
        *) echo "FAIL $name (unknown scenario $scenario)"; return 1 ;;
    esac
    local tlog="$LOGDIR/$name.test.log" blog="$LOGDIR/$name.broker.log"
    if ! start_broker "$blog" "${flags[@]}"; then
        echo "FAIL $name (broker did not start)"
        return 1
    fi
    local rc=0 t0=$SECONDS
    { (
        ulimit -c 0
        cd "$SRC/tests"
        # The runner reads its client config from $RDKAFKA_TEST_CONF (default
        # ./test.conf); one file per test keeps concurrent runs apart and
        # leaves a record of what each test was pointed at.
        {
            echo "bootstrap.servers=127.0.0.1:$PORT"
            [[ -n "${RDKAFKA_DEBUG:-}" ]] && echo "debug=$RDKAFKA_DEBUG"
            true
        } >"$LOGDIR/$name.test.conf"
        export RDKAFKA_TEST_CONF="$LOGDIR/$name.test.conf"
        export LD_LIBRARY_PATH="$SRC/src:$SRC/src-cpp${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
        export TEST_KAFKA_VERSION="$kafka_version"
        export TEST_CONSUMER_GROUP_PROTOCOL="$group_protocol"
        export TESTS="$num"
        if [[ -n "$subtests" ]]; then export SUBTESTS="$subtests"; else unset SUBTESTS; fi
        if [[ -n "$scenario" ]]; then export TEST_SCENARIO="$scenario"; else unset TEST_SCENARIO; fi
        # The runner has its own per-test timeouts (which fail the test with
        # a message); ours is only the hard wall-clock limit for hangs.
        export TEST_LEVEL="${TEST_LEVEL:-2}"
        exec timeout -k 10 "$TEST_TIMEOUT" ./test-runner
    ) >"$tlog" 2>&1; } 2>/dev/null || rc=$?
    local dt=$((SECONDS - t0))
    if ! kill -0 "$BROKER_PID" 2>/dev/null; then
        echo "    (fjord exited during test $name; see $blog)" >&2
        [[ $rc -eq 0 ]] && rc=99
    fi
    stop_broker
    # The runner's closing summary has one row per test: "| NAME | STATUS | TIME |".
    # TESTS=NNNN also runs the broker-less NNNN_*_local/_mock siblings.
    # A pass needs no FAILED row and at least one broker-facing test PASSED;
    # a SKIPPED broker-facing test did nothing and does not count.
    local rows broker_rows skipped
    rows="$(sed 's/\x1b\[[0-9;]*m//g' "$tlog" | grep -E '^\| +[0-9]{4}_' || true)"
    broker_rows="$(grep -vE '^\| +[0-9]{4}_[A-Za-z0-9_]*_(local|mock) ' <<<"$rows" || true)"
    skipped="$(grep -E '\| +SKIPPED +\|' <<<"$rows" | awk '{print $2}' | tr '\n' ' ' || true)"
    if [[ $rc -eq 0 && -n "$broker_rows" ]] \
        && ! grep -qvE '\| +PASSED +\|' <<<"$broker_rows" \
        && ! grep -qE '\| +FAILED +\|' <<<"$rows"; then
        echo "PASS $name (${dt}s${skipped:+; skipped: ${skipped% }})"
        return 0
    fi
    local why="exit $rc"
    ((dt >= TEST_TIMEOUT)) && why="$why, killed after ${TEST_TIMEOUT}s"
    [[ -z "$rows" ]] && why="$why, no summary"
    [[ -n "$skipped" ]] && why="$why, skipped: ${skipped% }"
    echo "FAIL $name ($why, ${dt}s; log $tlog)"
    # The first failure the runner reported, to show why.
    sed 's/\x1b\[[0-9;]*m//g' "$tlog" | grep -A1 -m1 '^### Test' | sed 's/^/    /' | cut -c1-300 || true
    return 1
}

main() {
    local build_only=0 tests=() list="$HERE/allowlist.txt"
    while (($#)); do
        case "$1" in
            --build-only) build_only=1 ;;
            --list) list="$2"; shift ;;
            -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
            *) tests+=("$(printf '%04d' "$((10#$1))")||") ;;
        esac
        shift
    done

    fetch
    build
    ((build_only)) && exit 0

    if [[ ! -x "$FJORD_BIN" ]]; then
        log "no fjord binary at $FJORD_BIN (set FJORD_BIN or build the broker first)"
        exit 2
    fi

    if ((${#tests[@]} == 0)); then
        local line num opts opt subtests scenario
        while read -r line; do
            line="${line%%#*}"
            read -r num opts <<<"$line" || true
            [[ -z "$num" ]] && continue
            subtests="" scenario=""
            for opt in $opts; do
                case "$opt" in
                    subtests=*) subtests="${opt#subtests=}" ;;
                    scenario=*) scenario="${opt#scenario=}" ;;
                    *) log "$list: unknown option $opt"; exit 2 ;;
                esac
            done
            tests+=("$(printf '%04d' "$((10#$num))")|$subtests|$scenario")
        done <"$list"
    fi

    mkdir -p "$LOGDIR"
    rm -f "$SRC"/tests/stats_*.json   # the runner leaves one per test
    local passed=0 failed=0 t0=$SECONDS
    local t f1 f2 f3 i=0 pid
    local -A out_of=()
    local outdir
    outdir="$(mktemp -d "$WORK/results.XXXXXX")"
    # PARALLEL tests at a time, each with its own broker; most of a test's
    # time is waiting (timeouts, rebalances), so two at a time roughly halve
    # the wall clock. A test's lines are printed when it ends.
    collect() {
        local done_pid rc=0
        wait -n -p done_pid || rc=$?
        cat "${out_of[$done_pid]}"
        if ((rc == 0)); then passed=$((passed + 1)); else failed=$((failed + 1)); fi
        unset 'out_of[$done_pid]'
    }
    for t in "${tests[@]}"; do
        IFS='|' read -r f1 f2 f3 <<<"$t"
        while ((${#out_of[@]} >= PARALLEL)); do collect; done
        i=$((i + 1))
        ( trap - EXIT; trap 'stop_broker; exit 143' TERM; run_one "$f1" "$f2" "$f3" ) >"$outdir/$i" 2>&1 &
        pid=$!
        out_of[$pid]="$outdir/$i"
    done
    while ((${#out_of[@]} > 0)); do collect; done
    rm -rf "$outdir"
    echo "# ran ${#tests[@]} tests in $((SECONDS - t0)) s"
    echo "$passed passed, $failed failed"
    ((failed == 0))
}

main "$@"
exit $?
