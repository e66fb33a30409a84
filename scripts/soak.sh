#!/usr/bin/env bash
# Soak: wrk drives a keyless API at full load for SECONDS (default 600) over CONNECTIONS (default
# 100) while the gateway's resident memory is sampled every 10 s. Prints the samples and a verdict:
# memory is "bounded" when the last sample grew by at most 25 % (or 16 MiB, whichever is more)
# over the sample taken after the first minute (warm-up: pools, caches and allocator arenas fill).
# Everything runs on 127.0.0.1 and stops by itself.
#   scripts/soak.sh [SECONDS] [CONNECTIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-600}
conns=${2:-100}
for tool in wrk nginx curl python3; do
  command -v $tool >/dev/null || { echo "$tool is needed (apt-get install wrk nginx-light curl python3)" >&2; exit 1; }
done
echo "soak: building gatehouse (release)"
cargo build -q --release -p gatehouse
bin="${CARGO_TARGET_DIR:-target}/release/gatehouse"

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
up_a=$(free_port); up_b=$(free_port); gw=$(free_port); dash=$(free_port); portal=$(free_port)
scripts/nginx-upstream.sh "$work/nginx" "$up_a" "$up_b" & pids+=($!)
key=soak-admin-key-0123456789
GATEHOUSE_ADMIN_KEY=$key GATEHOUSE_LOG_LEVEL=warn $bin serve --data-dir "$work/data" \
  --gateway-listen 127.0.0.1:$gw --dashboard-listen 127.0.0.1:$dash --portal-listen 127.0.0.1:$portal \
  > "$work/gatehouse.out" 2> "$work/gatehouse.err" & gh_pid=$!; pids+=($gh_pid)
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
curl -fsS -X POST "http://127.0.0.1:$dash/api/apis" -H "Authorization: Bearer $key" \
  -d "{\"name\":\"Soak\",\"api_id\":\"soak\",\"use_keyless\":true,\"proxy\":{\"listen_path\":\"/soak/\",\"target_url\":\"http://127.0.0.1:$up_a\",\"strip_listen_path\":true}}" >/dev/null

rss() { awk '/VmRSS/ {print $2}' "/proc/$gh_pid/status"; }
echo "soak: $secs s, $conns connections, gatehouse pid $gh_pid; RSS before load: $(rss) KiB"
wrk -t2 -c"$conns" -d"${secs}s" --timeout 5s "http://127.0.0.1:$gw/soak/x" > "$work/wrk.txt" &
wrk_pid=$!
samples="$work/rss.csv"
echo "seconds,rss_kib" > "$samples"
t=0
while kill -0 "$wrk_pid" 2>/dev/null && [ "$t" -le $((secs + 30)) ]; do
  sleep 10; t=$((t + 10))
  r=$(rss); echo "$t,$r" >> "$samples"; echo "  t=${t}s rss=${r} KiB"
done
wait "$wrk_pid" || true
cat "$work/wrk.txt"
python3 - "$samples" <<'PY'
import csv, sys
rows = [(int(r["seconds"]), int(r["rss_kib"])) for r in csv.DictReader(open(sys.argv[1]))]
after_warmup = next((r for s, r in rows if s >= 60), rows[0][1])
peak, last, first = max(r for _, r in rows), rows[-1][1], rows[0][1]
growth = last - after_warmup
bounded = growth <= max(after_warmup * 0.25, 16 * 1024)
print(f"soak: rss at 10 s {first} KiB, at 60 s {after_warmup} KiB, peak {peak} KiB, "
      f"last {last} KiB, growth after warm-up {growth} KiB: "
      + ("bounded" if bounded else "GROWING"))
sys.exit(0 if bounded else 1)
PY
