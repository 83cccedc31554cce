#!/usr/bin/env bash
# Schema registry load: registration and lookup latency (p50/p99) and
# lookups per second against one fjord process, broker pinned to core 1 and
# the generator (benches/src/bin/sr_load.rs) to core 0, fresh data dir.
#
#   bash benches/sr_bench.sh
#   SUBJECTS=1000 CONNECTIONS=8 SECONDS=10 DURABILITY=page-cache bash benches/sr_bench.sh
#
# DURABILITY unset means fjord's default, fsync: every registration is
# fsynced before it is answered. On a shared machine hold the build lock
# around it so no build competes: flock /tmp/cargo.lock bash benches/sr_bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SUBJECTS=${SUBJECTS:-1000}
CONNECTIONS=${CONNECTIONS:-8}
# bash's own $SECONDS counts up from the imported value, so take the caller's
# SECONDS from this process's initial environment.
LOOKUP_SECONDS=$(tr '\0' '\n' </proc/$$/environ | sed -n 's/^SECONDS=//p')
LOOKUP_SECONDS=${LOOKUP_SECONDS:-10}
DURABILITY=${DURABILITY:-}

cargo build --release -q -p fjord -p fjord-benches

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
KPORT=$(free_port)
RPORT=$(free_port)
while [ "$RPORT" = "$KPORT" ]; do RPORT=$(free_port); done

DATA=$(mktemp -d)
DUR_ARGS=()
[ -n "$DURABILITY" ] && DUR_ARGS=(--durability "$DURABILITY")
# One tokio worker on the one core the broker may use.
TOKIO_WORKER_THREADS=1 FJORD_LOG=warn taskset -c 1 target/release/fjord --data-dir "$DATA" \
  --listen "127.0.0.1:$KPORT" --registry-listen "127.0.0.1:$RPORT" --admin-listen off "${DUR_ARGS[@]}" \
  >"$DATA.log" 2>&1 &
BROKER=$!
cleanup() {
  kill "$BROKER" 2>/dev/null || true
  wait "$BROKER" 2>/dev/null || true
  rm -rf "$DATA" "$DATA.log"
}
trap cleanup EXIT

ready=0
for _ in $(seq 200); do
  if (echo >"/dev/tcp/127.0.0.1/$RPORT") 2>/dev/null; then ready=1; break; fi
  kill -0 "$BROKER" 2>/dev/null || break
  sleep 0.05
done
if [ "$ready" != 1 ]; then
  echo "the schema registry did not come up on 127.0.0.1:$RPORT; broker log:" >&2
  cat "$DATA.log" >&2
  exit 1
fi

echo "fjord durability=${DURABILITY:-fsync (default)}; load $(cut -d' ' -f1-3 /proc/loadavg)"
taskset -c 0 target/release/sr_load --url "127.0.0.1:$RPORT" --subjects "$SUBJECTS" \
  --connections "$CONNECTIONS" --lookup-seconds "$LOOKUP_SECONDS" --broker-pid "$BROKER"
grep -E 'VmRSS|VmHWM' "/proc/$BROKER/status" | tr -s ' \t' ' ' | paste -sd';' | sed 's/^/broker /'
echo "load after: $(cat /proc/loadavg)"
