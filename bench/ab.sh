#!/usr/bin/env bash
# Interleaved A/B of two tollgate builds on the same machine, steadier than
# two bench/compare.sh runs one after the other: both servers run at once
# (one connection thread each), redis-benchmark alternates between them, and
# each build takes each port in turn (a port/start-order bias of ~5% was
# seen between identical builds).
#
#   bench/ab.sh OLD_BIN NEW_BIN [COMMAND...]
#   bench/ab.sh /tmp/old/tollgate target/release/tollgate LIMIT.CHECK key:__rand_int__ gcra 100 1m
#
# Prints each build's mean and every run (thousands of requests/s), 10 runs
# of 1,000,000 requests at pipeline 16 (-r 100000 -c 50). Needs redis-tools.
set -euo pipefail
old=$1 new=$2; shift 2
[ $# -gt 0 ] || set -- LIMIT.CHECK key:__rand_int__ token_bucket 100 1m
command -v redis-benchmark >/dev/null || { echo "missing: redis-benchmark (apt-get install redis-tools)" >&2; exit 1; }

pair() { # bin_on_17001 name bin_on_17002 name
  local a b
  TOKIO_WORKER_THREADS=1 "$1" --port 17001 --data-dir "$(mktemp -d)" --log-level warn & a=$!
  TOKIO_WORKER_THREADS=1 "$3" --port 17002 --data-dir "$(mktemp -d)" --log-level warn & b=$!
  for port in 17001 17002; do
    for _ in $(seq 100); do redis-cli -p $port PING >/dev/null 2>&1 && break; sleep 0.1; done
  done
  for _ in 1 2 3 4 5; do
    for port in 17001 17002; do
      redis-cli -p $port FLUSHALL >/dev/null
      local rps name
      rps=$(redis-benchmark -p $port --threads 1 -c 50 -r 100000 -n 1000000 -P 16 --csv "${@:5}" 2>/dev/null |
        awk -F'"' 'NR==2 { print $4 }')
      if [ $port = 17001 ]; then name=$2; else name=$4; fi
      echo "$name $rps"
    done
  done
  kill $a $b; wait $a $b 2>/dev/null || true
}
{ pair "$old" old "$new" new "$@"; pair "$new" new "$old" old "$@"; } |
  sort -k1,1 -k2n |
  awk '{ v[$1] = v[$1] " " int($2 / 1000); n[$1]++; s[$1] += $2 }
       END { for (k in v) printf "%-4s mean %.0fk:%s\n", k, s[k] / n[k] / 1000, v[k] }'
