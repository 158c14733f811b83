#!/usr/bin/env bash
# The Envoy rate limit service under load: ShouldRateLimit calls/s and
# latency with 1 and 4 descriptors at 1, 16 and 64 in flight
# (examples/rls_load.rs), next to the same checks over RESP
# (redis-benchmark LIMIT.CHECK, pipeline 1, with as many connections).
#
#   bench/rls.sh [-s SECONDS] [-w SERVER_THREADS]
#
# One limit keyed by a user over 100,000 users (the other descriptors:
# org = user % 1000, a path, a global key), limits high enough that
# nothing is denied. Not part of `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_EACH=10
SERVER_THREADS=""
while getopts "s:w:" opt; do
  case $opt in
    s) SECONDS_EACH=$OPTARG ;;
    w) SERVER_THREADS=$OPTARG ;;
    *) echo "usage: $0 [-s seconds] [-w server worker threads]" >&2; exit 2 ;;
  esac
done
command -v redis-benchmark >/dev/null || { echo "missing: redis-benchmark (apt-get install redis-tools)" >&2; exit 1; }

cargo build --release --quiet --bin tollgate --example rls_load
DIR=$(mktemp -d)
trap 'kill $PID 2>/dev/null || true; rm -rf "$DIR"' EXIT
cat > "$DIR/tollgate.toml" <<TOML
grpc_addr = "127.0.0.1:18081"
snapshots = false
[[domain]]
domain = "bench"
descriptors = [
  { key = "user", rate_limit = { algorithm = "token_bucket", limit = 1000000, window = "1s" } },
  { key = "org", rate_limit = { algorithm = "gcra", limit = 1000000, window = "1s" } },
  { key = "path", rate_limit = { unit = "second", requests_per_unit = 100000000 } },
  { key = "global", rate_limit = { algorithm = "sliding_window", limit = 100000000, window = "1s" } },
]
TOML
THREADS_FLAG=()
[ -n "$SERVER_THREADS" ] && THREADS_FLAG=(--threads "$SERVER_THREADS")
target/release/tollgate --config "$DIR/tollgate.toml" --port 16390 --data-dir "$DIR" \
  --log-level warn "${THREADS_FLAG[@]}" &
PID=$!
for _ in $(seq 100); do redis-cli -p 16390 ping >/dev/null 2>&1 && break; sleep 0.05; done

for n in 1 16 64; do
  for d in 1 4; do
    target/release/examples/rls_load --addr 127.0.0.1:18081 --domain bench \
      --descriptors $d --in-flight $n --seconds "$SECONDS_EACH"
  done
  # The same single check over RESP: one connection per call in flight.
  REQUESTS=$((n == 1 ? 100000 : 1000000))
  printf 'RESP LIMIT.CHECK c=%s: ' "$n"
  redis-benchmark -p 16390 -c "$n" -n "$REQUESTS" -r 100000 -P 1 --csv \
    LIMIT.CHECK 'bench|user=__rand_int__' token_bucket 1000000 1s | tail -1
done
