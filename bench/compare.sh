#!/usr/bin/env bash
# Runs the same redis-benchmark matrix against Redis and tollgate on loopback
# and prints each figure with its ratio to Redis's.
#
#   bench/compare.sh [-n REQUESTS] [-r RUNS] [-t BENCH_THREADS] [-w SERVER_THREADS]
#
# Defaults: 1,000,000 requests per run, median of 3 runs, redis-benchmark
# --threads 1 -c 50 -r 100000 (random keys), pipeline 1 and 16.
# Installs redis-server and redis-tools with apt-get when missing (as root);
# otherwise says what is missing. Not part of `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

REQUESTS=1000000
RUNS=3
BENCH_THREADS=1
SERVER_THREADS=""
while getopts "n:r:t:w:" opt; do
  case $opt in
    n) REQUESTS=$OPTARG ;;
    r) RUNS=$OPTARG ;;
    t) BENCH_THREADS=$OPTARG ;;
    w) SERVER_THREADS=$OPTARG ;;
    *) echo "usage: $0 [-n requests] [-r runs] [-t bench threads] [-w server worker threads]" >&2; exit 2 ;;
  esac
done

if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing redis-server and redis-tools..." >&2
    apt-get update -qq >/dev/null && apt-get install -y -qq redis-server redis-tools >/dev/null
  else
    echo "missing: redis-server and redis-benchmark (Debian: apt-get install redis-server redis-tools)" >&2
    exit 1
  fi
fi

cargo build --release --quiet --bin tollgate
REDIS_PORT=16379
TOLLGATE_PORT=16380
WORK=$(mktemp -d)
cleanup() {
  [ -n "${REDIS_PID:-}" ] && kill "$REDIS_PID" 2>/dev/null || true
  [ -n "${TOLLGATE_PID:-}" ] && kill "$TOLLGATE_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

redis-server --port $REDIS_PORT --save "" --appendonly no --dir "$WORK" --logfile "$WORK/redis.log" &
REDIS_PID=$!
if [ -n "$SERVER_THREADS" ]; then export TOKIO_WORKER_THREADS=$SERVER_THREADS; fi
./target/release/tollgate --port $TOLLGATE_PORT --data-dir "$WORK/tollgate" --log-level warn &
TOLLGATE_PID=$!
unset TOKIO_WORKER_THREADS
for port in $REDIS_PORT $TOLLGATE_PORT; do
  up=no
  for _ in $(seq 100); do
    if redis-cli -p $port PING >/dev/null 2>&1; then up=yes; break; fi
    sleep 0.1
  done
  [ $up = yes ] || { echo "the server on port $port did not start" >&2; exit 1; }
done
SHA=$(redis-cli -p $REDIS_PORT SCRIPT LOAD "$(cat bench/token_bucket.lua)")

# One run: "rps p99" of a command ("0 failed" if redis-benchmark failed).
once() {
  local port=$1 pipeline=$2; shift 2
  local out
  out=$(redis-benchmark -p "$port" --threads "$BENCH_THREADS" -c 50 -r 100000 -n "$REQUESTS" \
    -P "$pipeline" --csv "$@" 2>/dev/null | awk -F'"' 'NR==2 { print $4, $14 }') || true
  echo "${out:-0 failed}"
}

# Median of RUNS runs: "rps p99".
median() {
  for _ in $(seq "$RUNS"); do once "$@"; done | sort -n -k1 | awk '{ a[NR]=$0 } END { print a[int((NR+1)/2)] }'
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }

printf '%-44s %3s %12s %9s %12s %9s %6s\n' "tollgate vs Redis" "P" "redis rps" "p99 ms" "tollgate rps" "p99 ms" "ratio"
row() {
  local label=$1 pipeline=$2 redis_cmd=$3 tollgate_cmd=$4
  local r t
  # Every row starts from an empty keyspace on both servers.
  redis-cli -p $REDIS_PORT FLUSHALL >/dev/null
  redis-cli -p $TOLLGATE_PORT FLUSHALL >/dev/null
  # shellcheck disable=SC2086
  r=$(median $REDIS_PORT "$pipeline" $redis_cmd)
  # shellcheck disable=SC2086
  t=$(median $TOLLGATE_PORT "$pipeline" $tollgate_cmd)
  set -- $r $t
  printf '%-44s %3s %12.0f %9s %12.0f %9s %6s\n' "$label" "$pipeline" "$1" "$2" "$3" "$4" "$(ratio "$3" "$1")"
}

for P in ${PIPELINES:-1 16}; do
  row "PING vs PING" $P "PING" "PING"
  # leaky_bucket is left out: it holds replies by design (spacing), which
  # measures the configured rate, not the server.
  for algo in token_bucket gcra fixed_window sliding_window sliding_log; do
    row "LIMIT.CHECK $algo vs INCR" $P "INCR key:__rand_int__" \
      "LIMIT.CHECK key:__rand_int__ $algo 100 1m"
  done
  # One request checking three keys all or nothing, next to the single
  # check above (three of those make the same three checks).
  row "LIMIT.CHECKALL 3 keys gcra vs INCR" $P "INCR key:__rand_int__" \
    "LIMIT.CHECKALL 3 a:__rand_int__ b:__rand_int__ c:__rand_int__ gcra 100 1m gcra 100 1m gcra 100 1m"
  row "CL.THROTTLE vs INCR" $P "INCR key:__rand_int__" "CL.THROTTLE key:__rand_int__ 99 100 60"
  row "CL.THROTTLE vs Lua token bucket (EVALSHA)" $P "EVALSHA $SHA 1 key:__rand_int__ 100 100 60" \
    "CL.THROTTLE key:__rand_int__ 99 100 60"
done
echo "(median of $RUNS runs of $REQUESTS requests; redis-benchmark --threads $BENCH_THREADS -c 50 -r 100000; $(nproc) cores)"

# Budgets: a LIMIT.RESERVE and then a LIMIT.SETTLE with its id (two round
# trips of P requests per connection), next to two LIMIT.CHECKs sent the
# same way (examples/reserve_load.rs, 50 connections, 100,000 keys). Redis
# has no such pair to compare with.
cargo build --release --quiet --example reserve_load
printf '\n%-44s %3s %14s %14s %6s\n' "reserve + settle vs two checks (tollgate)" "P" "checks pairs/s" "r+s pairs/s" "ratio"
pairs_per_s() {
  redis-cli -p $TOLLGATE_PORT FLUSHALL >/dev/null
  ./target/release/examples/reserve_load --port $TOLLGATE_PORT --mode "$1" --pipeline "$2" \
    --seconds "${PAIR_SECONDS:-5}" | awk '{ for (i = 1; i <= NF; i++) if ($(i+1) == "pairs/s,") print $i }'
}
for P in ${PIPELINES:-1 16}; do
  c=$(pairs_per_s checks $P)
  p=$(pairs_per_s pairs $P)
  printf '%-44s %3s %14.0f %14.0f %6s\n' "LIMIT.RESERVE + LIMIT.SETTLE gcra" $P "$c" "$p" "$(ratio "$p" "$c")"
done
