#!/usr/bin/env bash
# End-to-end smoke measurement of one fjord process with librdkafka's
# rdkafka_performance, broker pinned to core 1 and generator to core 0.
#
#   bash benches/e2e_smoke.sh [fsync|page-cache]
#
# Prints per workload the wall time, the broker's CPU seconds (utime+stime
# from /proc) and rdkafka_performance's last summary row (msgs/s, MB/s).
# Workloads follow ../shared/BENCH.md: W1 (1 KiB, acks=all, linger 5 ms,
# batch 1 MiB, 6 partitions, 1 GB), W2 (consume 500 MB of 1 KiB from the
# start of one partition), W4 (100 B records, 3M). One run each: a smoke
# figure, not the interleaved peer comparison (that is issue 7's command).
# Needs: cargo build --release, and compat-tests/librdkafka/run.sh --build-only.
set -euo pipefail
cd "$(dirname "$0")/.."
DURABILITY=${1:-fsync}
LIB=$(ls -d compat-tests/.work/rdkafka-sys-*/librdkafka 2>/dev/null | head -1)
PERF="$LIB/examples/rdkafka_performance"
[ -x "$PERF" ] || { echo "build it first: bash compat-tests/librdkafka/run.sh --build-only"; exit 2; }
[ -x target/release/fjord ] || { echo "build it first: cargo build --release"; exit 2; }
export LD_LIBRARY_PATH="$PWD/$LIB/src"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
DATA=$(mktemp -d)
taskset -c 1 target/release/fjord --data-dir "$DATA" --listen "127.0.0.1:$PORT" --registry-listen off --admin-listen off \
  --num-partitions 6 --durability "$DURABILITY" >"$DATA.log" 2>&1 &
BROKER=$!
trap 'kill $BROKER 2>/dev/null; wait $BROKER 2>/dev/null; rm -rf "$DATA" "$DATA.log"' EXIT
for _ in $(seq 100); do (echo >"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.05; done
HZ=$(getconf CLK_TCK)
cpu() { awk '{print $14+$15}' "/proc/$BROKER/stat"; }
run() {
  local name=$1; shift
  local c0 t0 out t1 c1
  c0=$(cpu); t0=$(date +%s.%N)
  out=$(timeout 120 taskset -c 0 "$PERF" -b "127.0.0.1:$PORT" "$@" 2>&1 | grep -E '^\|' | tail -1)
  t1=$(date +%s.%N); c1=$(cpu)
  printf '%-34s wall %6.2f s  broker cpu %5.2f s  %s\n' "$name" \
    "$(echo "$t1 - $t0" | bc)" "$(echo "($c1 - $c0) / $HZ" | bc -l)" "$out"
}
echo "durability=$DURABILITY; columns after the CPU: rdkafka_performance's summary (see its header row)"
taskset -c 0 "$PERF" -b "127.0.0.1:$PORT" -P -t hdr -s 10 -c 1 -u 2>&1 | grep -E '^\|' | head -1
run "W1 produce 1KiB x1M acks=all" -P -t w1 -s 1024 -c 1000000 -a -1 -X linger.ms=5 -X batch.size=1048576 -u
run "W2 prep: 1KiB x500k to p0" -P -t w2 -p 0 -s 1024 -c 500000 -a -1 -X linger.ms=5 -X batch.size=1048576 -u
run "W2 consume 500k from start" -C -t w2 -p 0 -o beginning -c 500000 -u
run "W4 produce 100B x3M acks=all" -P -t w4 -s 100 -c 3000000 -a -1 -X linger.ms=5 -X batch.size=1048576 -u
grep -E 'VmRSS|VmHWM' "/proc/$BROKER/status"
