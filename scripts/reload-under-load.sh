#!/usr/bin/env bash
# Acceptance check: wrk drives a keyless API for 30 s over 50 connections while its definition is
# replaced 30 times (target alternating between two nginx upstreams). Fails on any non-2xx answer
# or socket error. Everything runs on 127.0.0.1 and stops by itself.
#   scripts/reload-under-load.sh [SECONDS] [UPDATES]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-30}
updates=${2:-30}
for tool in wrk nginx curl; do
  command -v $tool >/dev/null || { echo "$tool is needed (apt-get install wrk nginx-light curl)" >&2; exit 1; }
done
cargo build -q -p gatehouse
bin=target/debug/gatehouse

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
up_a=$(free_port); up_b=$(free_port); gw=$(free_port); dash=$(free_port); portal=$(free_port)

scripts/nginx-upstream.sh "$work/nginx" "$up_a" "$up_b" & pids+=($!)
key=reload-under-load-admin-key
GATEHOUSE_ADMIN_KEY=$key GATEHOUSE_LOG_LEVEL=warn $bin serve --data-dir "$work/data" \
  --gateway-listen 127.0.0.1:$gw --dashboard-listen 127.0.0.1:$dash --portal-listen 127.0.0.1:$portal \
  > "$work/gatehouse.out" 2> "$work/gatehouse.err" & pids+=($!)

ready=0
for _ in $(seq 1 300); do
  # The gateway, the dashboard (it binds after the gateway) and the upstream must all answer.
  curl -fs "http://127.0.0.1:$gw/hello" >/dev/null 2>&1 && curl -fs "http://127.0.0.1:$dash/api/openapi.json" >/dev/null 2>&1 \
    && curl -fs "http://127.0.0.1:$up_a/" >/dev/null 2>&1 && { ready=1; break; }
  sleep 0.1
done
if [ "$ready" != 1 ]; then
  echo "FAIL: gatehouse or nginx did not come up within 30 s; gatehouse said:" >&2
  tail -20 "$work/gatehouse.err" >&2
  exit 1
fi

def() {
  printf '{"name":"Live %s","api_id":"live","use_keyless":true,"proxy":{"listen_path":"/live/","target_url":"http://127.0.0.1:%s","strip_listen_path":true}}' "$1" "$2"
}
curl -fsS -X POST "http://127.0.0.1:$dash/api/apis" -H "Authorization: Bearer $key" -d "$(def 0 $up_a)" >/dev/null

wrk -t2 -c50 -d${secs}s --timeout 5s "http://127.0.0.1:$gw/live/x" > "$work/wrk.txt" &
wrk_pid=$!
interval=$(python3 -c "print(max(0.05, ($secs - 2) / $updates))")
sleep 1
for i in $(seq 1 "$updates"); do
  if [ $((i % 2)) -eq 1 ]; then port=$up_b; else port=$up_a; fi
  curl -fsS -X PUT "http://127.0.0.1:$dash/api/apis/live" -H "Authorization: Bearer $key" -d "$(def "$i" "$port")" >/dev/null
  sleep "$interval"
done
wait $wrk_pid
cat "$work/wrk.txt"
if grep -qE "Non-2xx|Socket errors" "$work/wrk.txt"; then
  echo "FAIL: some requests failed while the definition was updated $updates times" >&2
  exit 1
fi
requests=$(awk '/requests in/ {print $1}' "$work/wrk.txt")
[ "${requests:-0}" -gt 0 ] || { echo "FAIL: wrk made no requests" >&2; exit 1; }
echo "reload under load: $requests requests, 0 non-2xx, $updates definition updates: 1 passed, 0 failed"
