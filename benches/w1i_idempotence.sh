#!/usr/bin/env bash
# W1i of ../shared/BENCH.md: the cost of enable.idempotence=true on W1.
#
#   bash benches/w1i_idempotence.sh [fsync|page-cache] [reps]
#
# A fresh fjord process per run (pinned to core 1), so no run inherits
# another's page cache or writeback; librdkafka's rdkafka_performance
# (core 0) runs W1 (1 KiB records, acks=all, linger 5 ms, batch 1 MiB,
# 6 partitions, 1M records = 1 GB), W1i (the same with idempotence) and
# W1/5 (W1 with max.in.flight=5, the client's cap under idempotence, so the
# W1i/W1-5 ratio is the broker's own cost) in turn, each into a fresh topic,
# `reps` times (default 3). Prints each run's MB/s and broker CPU seconds,
# then the medians and the ratios. Needs: cargo build --release, and
# compat-tests/librdkafka/run.sh --build-only.
set -euo pipefail
cd "$(dirname "$0")/.."
DURABILITY=${1:-fsync}
REPS=${2:-3}
COUNT=${COUNT:-1000000}   # records per run (1 KiB each)
LIB=$(ls -d compat-tests/.work/rdkafka-sys-*/librdkafka 2>/dev/null | head -1)
PERF="$LIB/examples/rdkafka_performance"
[ -x "$PERF" ] || { echo "build it first: bash compat-tests/librdkafka/run.sh --build-only"; exit 2; }
[ -x target/release/fjord ] || { echo "build it first: cargo build --release"; exit 2; }
export LD_LIBRARY_PATH="$PWD/$LIB/src"
BROKER=""; DATA=""
start_broker() {
  PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  DATA=$(mktemp -d -p "${DATA_ROOT:-/tmp}")
  taskset -c 1 target/release/fjord --data-dir "$DATA" --listen "127.0.0.1:$PORT" --registry-listen off --admin-listen off \
    --num-partitions 6 --durability "$DURABILITY" >"$DATA.log" 2>&1 &
  BROKER=$!
  for _ in $(seq 100); do (echo >"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.05; done
}
stop_broker() {
  kill "$BROKER" 2>/dev/null || true
  wait "$BROKER" 2>/dev/null || true
  [ -n "$DATA" ] && rm -rf "$DATA" "$DATA.log" || true
}
trap stop_broker EXIT
HZ=$(getconf CLK_TCK)
cpu() { awk '{print $14+$15}' "/proc/$BROKER/stat"; }
declare -a W1 W1I C1 C1I W15 C15
run() { # topic extra... ; prints "MB/s cpu", against a fresh broker
  local topic=$1; shift
  local c0 t0 t1 c1
  start_broker
  c0=$(cpu); t0=$(date +%s.%N)
  timeout 300 taskset -c 0 "$PERF" -b "127.0.0.1:$PORT" -P -t "$topic" -s 1024 -c "$COUNT" -a -1 \
    -X linger.ms=5 -X batch.size=1048576 -u "$@" >/dev/null 2>&1
  t1=$(date +%s.%N); c1=$(cpu)
  stop_broker >/dev/null 2>&1
  echo "$(echo "1024 * $COUNT / ($t1 - $t0) / 1000000" | bc -l) $(echo "($c1 - $c0) / $HZ" | bc -l)"
}
for r in $(seq "$REPS"); do
  read -r mb c < <(run "w1-$r")
  W1+=("$mb"); C1+=("$c")
  printf 'rep %d W1  %8.1f MB/s  broker cpu %5.2f s\n' "$r" "$mb" "$c"
  read -r mb c < <(run "w1i-$r" -X enable.idempotence=true)
  W1I+=("$mb"); C1I+=("$c")
  printf 'rep %d W1i %8.1f MB/s  broker cpu %5.2f s\n' "$r" "$mb" "$c"
  read -r mb c < <(run "w15-$r" -X max.in.flight=5)
  W15+=("$mb"); C15+=("$c")
  printf 'rep %d W1/5 %7.1f MB/s  broker cpu %5.2f s\n' "$r" "$mb" "$c"
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
m1=$(median "${W1[@]}"); m1i=$(median "${W1I[@]}")
c1=$(median "${C1[@]}"); c1i=$(median "${C1I[@]}")
m15=$(median "${W15[@]}"); c15=$(median "${C15[@]}")
printf 'durability=%s medians: W1 %.1f MB/s (cpu %.2f s), W1i %.1f MB/s (cpu %.2f s), W1/5 %.1f MB/s (cpu %.2f s)\n' \
  "$DURABILITY" "$m1" "$c1" "$m1i" "$c1i" "$m15" "$c15"
printf 'W1i/W1 throughput %.3f, cpu %.3f; W1i/W1-5 throughput %.3f, cpu %.3f\n' \
  "$(echo "$m1i / $m1" | bc -l)" "$(echo "$c1i / $c1" | bc -l)" "$(echo "$m1i / $m15" | bc -l)" "$(echo "$c1i / $c15" | bc -l)"
