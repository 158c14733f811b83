#!/usr/bin/env bash
# TLS against plain TCP: tollgate's plain and TLS ports side by side (and
# Redis's, plain and TLS, when this redis-server was built with TLS), with
# redis-benchmark at pipeline 1 and 16. Certificates are made here with
# openssl (a throwaway CA). Not part of `cargo test`.
#
#   bench/tls.sh [-n REQUESTS] [-w SERVER_THREADS]
set -euo pipefail
cd "$(dirname "$0")/.."
REQUESTS=200000
THREADS=1
while getopts "n:w:" opt; do
  case $opt in
    n) REQUESTS=$OPTARG ;;
    w) THREADS=$OPTARG ;;
    *) echo "usage: $0 [-n requests] [-w server threads]" >&2; exit 2 ;;
  esac
done
for tool in openssl redis-server redis-benchmark redis-cli; do
  command -v $tool >/dev/null || { echo "missing: $tool (apt-get install openssl redis-server redis-tools)" >&2; exit 1; }
done
cargo build --release --quiet --bin tollgate
WORK=$(mktemp -d)
cleanup() { kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
cd "$WORK"
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 1 -subj /CN=bench-ca 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=localhost 2>/dev/null
printf "subjectAltName=IP:127.0.0.1,DNS:localhost" > ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 1 -extfile ext 2>/dev/null
cd - >/dev/null

TOKIO_WORKER_THREADS=$THREADS ./target/release/tollgate --port 17701 --tls-port 17702 \
  --tls-cert-file "$WORK/server.pem" --tls-key-file "$WORK/server.key" --tls-auth-clients no \
  --data-dir "$WORK/data" --log-level warn &
redis_tls=no
if redis-server --port 17703 --tls-port 17704 --tls-cert-file "$WORK/server.pem" \
     --tls-key-file "$WORK/server.key" --tls-ca-cert-file "$WORK/ca.pem" --tls-auth-clients no \
     --save "" --appendonly no --dir "$WORK" --daemonize no --logfile "$WORK/redis.log" &
then :; fi
sleep 1
redis-cli -p 17703 PING >/dev/null 2>&1 || redis-server --port 17703 --save "" --appendonly no --dir "$WORK" --logfile "$WORK/redis.log" &
sleep 0.5
redis-cli --tls --cacert "$WORK/ca.pem" -p 17704 PING >/dev/null 2>&1 && redis_tls=yes

rps() { # port tls pipeline command...
  local port=$1 tls=$2 p=$3; shift 3
  local flags=()
  [ "$tls" = yes ] && flags=(--tls --cacert "$WORK/ca.pem")
  redis-benchmark -p "$port" "${flags[@]}" --threads 1 -c 50 -r 100000 -n "$REQUESTS" -P "$p" --csv "$@" 2>/dev/null |
    awk -F'"' 'NR==2 { printf "%.0f", $4 }'
}
printf '%-40s %3s %12s %12s %7s\n' "what" "P" "plain rps" "TLS rps" "TLS/plain"
for P in 1 16; do
  for cmd in "PING" "LIMIT.CHECK key:__rand_int__ token_bucket 100 1m"; do
    # shellcheck disable=SC2086
    plain=$(rps 17701 no $P $cmd); tls=$(rps 17702 yes $P $cmd)
    printf '%-40s %3s %12s %12s %7s\n' "tollgate ${cmd%% key:*}" $P "$plain" "$tls" "$(awk -v a="$tls" -v b="$plain" 'BEGIN{printf "%.2f", a/b}')"
  done
  if [ $redis_tls = yes ]; then
    plain=$(rps 17703 no $P INCR key:__rand_int__); tls=$(rps 17704 yes $P INCR key:__rand_int__)
    printf '%-40s %3s %12s %12s %7s\n' "redis INCR" $P "$plain" "$tls" "$(awk -v a="$tls" -v b="$plain" 'BEGIN{printf "%.2f", a/b}')"
  fi
done
echo "($REQUESTS requests per figure; redis-benchmark --threads 1 -c 50 -r 100000; tollgate $THREADS connection thread(s); Redis over TLS: $redis_tls)"
