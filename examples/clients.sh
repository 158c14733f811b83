#!/usr/bin/env bash
# Runs the client-library examples against a tollgate it starts itself:
# ioredis (Node, from npm) and go-redis (Go, Debian's golang and go-redis
# packages). Each checks a decision, a pipeline and a WAIT. Not part of
# `cargo test`: it installs packages (as root: apt-get; npm install).
#
#   examples/clients.sh            # build, start on a free port, run both, stop
#   REDIS_URL=redis://host:port examples/clients.sh   # against a running server
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v node >/dev/null || need_apt+=(nodejs npm)
command -v npm >/dev/null || need_apt+=(npm)
command -v go >/dev/null || need_apt+=(golang-go)
[ -d /usr/share/gocode/src/gopkg.in/redis.v5 ] || need_apt+=(golang-gopkg-redis.v5-dev)
if [ ${#need_apt[@]} -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
(cd examples/node && npm install --no-audit --no-fund --silent)

server=""
if [ -z "${REDIS_URL:-}" ]; then
  cargo build --release --quiet
  data=$(mktemp -d)
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  target/release/tollgate --port "$port" --data-dir "$data" --log-level warn &
  server=$!
  trap 'kill $server 2>/dev/null; rm -rf "$data"' EXIT
  export REDIS_URL="redis://127.0.0.1:$port"
  for _ in $(seq 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
  done
fi

status=0
echo "== ioredis against $REDIS_URL"
node examples/node/check.mjs || status=1
echo "== go-redis against $REDIS_URL"
(cd examples/go && GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE="${TMPDIR:-/tmp}/tollgate-gocache" go run main.go) || status=1
exit $status
