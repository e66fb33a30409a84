#!/usr/bin/env bash
# Gateway latency while the portal is flooded with sign-ups, in `gatehouse serve` (one process).
#
# Starts: an nginx upstream (core 1) and `gatehouse serve --worker-threads 1` pinned to core 0
# (like bench/run.sh) with a keyless API in front of nginx and sign-up enabled. Then, with wrk on
# core 1 (bounded: DURATION seconds, CONNECTIONS connections):
#   quiet   the gateway alone;
#   flood   the gateway while FLOOD_WORKERS clients (core 1) post sign-ups with new emails as fast
#           as they are answered, from rotating source addresses 127.0.0.2-127.0.0.254 (so the
#           per-address sign-up throttle does not stop them: a flood from many addresses), for
#           DURATION + 2 seconds and at most FLOOD_MAX requests.
# Prints req/s, p50 and p99 of both rows and what the flood got (202, 429, 503, ...).
#
#   bench/signup-flood.sh [DURATION=10] [CONNECTIONS=50]
#
# GATEHOUSE_BIN picks the binary (default: build the release binary of this tree), so two
# builds can be compared: the figures and commands are in BENCHMARKS.md. Everything listens on
# 127.0.0.1 and stops when the script ends.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10}
conns=${2:-50}
workers=${FLOOD_WORKERS:-32}
flood_max=${FLOOD_MAX:-20000}
for tool in wrk nginx taskset curl python3; do
  command -v $tool >/dev/null || { echo "bench: $tool is needed (apt-get install wrk nginx-light util-linux curl python3)" >&2; exit 1; }
done
if [ -z "${GATEHOUSE_BIN:-}" ]; then
  echo "bench: building the release binary" >&2
  cargo build --release -q -p gatehouse
  GATEHOUSE_BIN=${CARGO_TARGET_DIR:-target}/release/gatehouse
fi
bin=$GATEHOUSE_BIN

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { for _ in $(seq 1 200); do curl -fs -o /dev/null "$1" && return 0; sleep 0.05; done; echo "bench: $1 did not come up" >&2; cat "$work"/*.err >&2 2>/dev/null || true; exit 1; }

up=$(free_port); gw=$(free_port); dash=$(free_port); portal=$(free_port)
taskset -c 1 scripts/nginx-upstream.sh "$work/up" "$up" & pids+=($!)
key=bench-admin-key-0123456789
GATEHOUSE_ADMIN_KEY=$key GATEHOUSE_LOG_LEVEL=error taskset -c 0 "$bin" serve --data-dir "$work/gh" --worker-threads 1 \
  --gateway-listen 127.0.0.1:$gw --dashboard-listen 127.0.0.1:$dash --portal-listen 127.0.0.1:$portal \
  > "$work/gh.out" 2> "$work/gh.err" & pids+=($!)
wait_http "http://127.0.0.1:$gw/hello"
wait_http "http://127.0.0.1:$dash/api/openapi.json"
wait_http "http://127.0.0.1:$portal/login"
wait_http "http://127.0.0.1:$up/"

curl -fsS -X POST "http://127.0.0.1:$dash/api/apis" -H "Authorization: Bearer $key" \
  -d "{\"name\":\"keyless\",\"api_id\":\"keyless\",\"use_keyless\":true,\"proxy\":{\"listen_path\":\"/keyless/\",\"target_url\":\"http://127.0.0.1:$up\",\"strip_listen_path\":true}}" >/dev/null
curl -fsS -X PUT "http://127.0.0.1:$dash/api/portal/configuration" -H "Authorization: Bearer $key" \
  -d '{"signup_enabled": true}' >/dev/null
curl -fs -o /dev/null "http://127.0.0.1:$gw/keyless/x"

cat > "$work/flood.py" <<'PY'
# Posts sign-ups with new emails from WORKERS threads until SECONDS pass or MAX were sent;
# prints one JSON line with the count of each status and the rate.
import http.client, json, sys, threading, time
port, workers, seconds, cap = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
lock = threading.Lock()
counts, sent = {}, [0]
deadline = time.monotonic() + seconds
def worker(w):
    while time.monotonic() < deadline:
        with lock:
            if sent[0] >= cap:
                return
            n = sent[0]
            sent[0] += 1
        source = "127.0.0.%d" % (2 + n % 253)
        body = json.dumps({"email": "flood-%d@example.com" % n, "first_name": "F",
                           "password": "flood password %d" % n})
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=30, source_address=(source, 0))
            c.request("POST", "/api/signup", body, {"Content-Type": "application/json"})
            status = str(c.getresponse().status)
            c.close()
        except Exception as e:
            status = type(e).__name__
        with lock:
            counts[status] = counts.get(status, 0) + 1
started = time.monotonic()
threads = [threading.Thread(target=worker, args=(w,)) for w in range(workers)]
for t in threads: t.start()
for t in threads: t.join()
took = time.monotonic() - started
print(json.dumps({"sent": sum(counts.values()), "per_second": round(sum(counts.values()) / took, 1),
                  "statuses": counts}))
PY

run() { # name
  taskset -c 1 wrk -t1 -c"$conns" -d"${duration}s" --latency --timeout 10s "http://127.0.0.1:$gw/keyless/x" > "$work/$1.txt"
  python3 - "$work/$1.txt" "$1" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
def ms(label):
    m = re.search(r"^\s*%s\s+([\d.]+)(us|ms|s)\s*$" % re.escape(label), text, re.M)
    v, unit = float(m.group(1)), m.group(2)
    return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
bad = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
errs = re.search(r"Socket errors: (.*)", text)
print("| %s | %.0f | %.2f | %.2f | %s |" % (sys.argv[2], rps, ms("50%"), ms("99%"),
      (bad.group(1) + " non-2xx " if bad else "") + (errs.group(1) if errs else "0")))
PY
}

echo "bench: warm-up" >&2
taskset -c 1 wrk -t1 -c"$conns" -d2s "http://127.0.0.1:$gw/keyless/x" > /dev/null
echo "| row | req/s | p50 ms | p99 ms | errors |"
echo "|---|---:|---:|---:|---|"
run quiet
taskset -c 1 python3 "$work/flood.py" "$portal" "$workers" "$((duration + 2))" "$flood_max" > "$work/flood.json" & flood=$!
sleep 1
run flood
wait "$flood"
echo
echo "sign-up flood: $(cat "$work/flood.json")"
echo "($(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); gatehouse pinned to core 0 with --worker-threads 1; nginx, wrk and the flood on core 1; wrk -t1 -c$conns -d${duration}s; $(date -u +%Y-%m-%dT%H:%MZ); $bin)"
