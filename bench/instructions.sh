#!/usr/bin/env bash
# Instructions per proxied request, counted by valgrind's callgrind: deterministic for the same
# binary and inputs whatever else the machine is doing, so two builds can be compared on a busy
# machine where wall-clock benchmarks cannot.
#
#   bench/instructions.sh BINARY [REQUESTS=2000]
#
# Starts BINARY (`gatehouse serve`) under callgrind with instrumentation off (--instr-atstart=no), an nginx upstream,
# and creates a keyless API and a JWT API (HS256, a policy with a rate limit and a quota). Then,
# per row, switches instrumentation on, sends REQUESTS requests over one keep-alive connection
# (python3 http.client), switches it off, and prints the instructions per request of the
# gateway process. Everything runs on 127.0.0.1 and stops when the script ends.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:?usage: bench/instructions.sh BINARY [REQUESTS]}
n=${2:-2000}
for tool in valgrind callgrind_control nginx python3 curl; do
  command -v $tool >/dev/null || { echo "instructions: $tool is needed (apt-get install valgrind nginx-light python3 curl)" >&2; exit 1; }
done
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
up=$(free_port); gw=$(free_port); dash=$(free_port); portal=$(free_port)
scripts/nginx-upstream.sh "$work/up" "$up" > /dev/null 2>&1 & pids+=($!)
key=bench-admin-key-0123456789
GATEHOUSE_ADMIN_KEY=$key GATEHOUSE_LOG_LEVEL=error valgrind --tool=callgrind --instr-atstart=no \
  --callgrind-out-file="$work/cg.out" "$bin" serve --data-dir "$work/data" --worker-threads 1 \
  --analytics false --gateway-listen 127.0.0.1:$gw --dashboard-listen 127.0.0.1:$dash \
  --portal-listen 127.0.0.1:$portal > "$work/gh.out" 2> "$work/gh.err" & pids+=($!)
vg=$!
for _ in $(seq 1 600); do
  curl -fs -o /dev/null "http://127.0.0.1:$dash/api/openapi.json" 2>/dev/null && break
  kill -0 $vg 2>/dev/null || { echo "instructions: gatehouse exited:" >&2; cat "$work/gh.err" >&2; exit 1; }
  sleep 0.2
done
secret_b64=$(printf 'bench-hmac-secret-0123456789abcdef' | base64)
admin() { curl -fsS -X POST "http://127.0.0.1:$dash$1" -H "Authorization: Bearer $key" -d "$2" > /dev/null; }
admin /api/apis "{\"name\":\"open\",\"api_id\":\"open\",\"use_keyless\":true,\"proxy\":{\"listen_path\":\"/open/\",\"target_url\":\"http://127.0.0.1:$up\",\"strip_listen_path\":true}}"
admin /api/apis "{\"name\":\"jwt\",\"api_id\":\"jwt\",\"enable_jwt\":true,\"jwt_signing_method\":\"hmac\",\"jwt_source\":\"$secret_b64\",\"jwt_policy_field_name\":\"pol\",\"jwt_allowed_issuers\":[\"bench\"],\"proxy\":{\"listen_path\":\"/jwt/\",\"target_url\":\"http://127.0.0.1:$up\",\"strip_listen_path\":true}}"
admin /api/policies '{"id":"plain","name":"plain","access_rights":{"jwt":{"api_id":"jwt"}}}'
admin /api/policies '{"id":"limited","name":"limited","rate":1000000,"per":1,"quota_max":100000000,"quota_renewal_rate":3600,"access_rights":{"jwt":{"api_id":"jwt"}}}'
token() { python3 - "$1" <<'PY'
import base64, hashlib, hmac, json, sys, time
b = lambda x: base64.urlsafe_b64encode(x).rstrip(b"=").decode()
h = b(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
p = b(json.dumps({"sub": "bench", "iss": "bench", "pol": sys.argv[1], "exp": int(time.time()) + 3600}).encode())
s = b(hmac.new(b"bench-hmac-secret-0123456789abcdef", f"{h}.{p}".encode(), hashlib.sha256).digest())
print(f"{h}.{p}.{s}")
PY
}
run() { # label path token
  python3 - "$gw" "$2" "$3" 3 <<'PY'  # warm-up (caches, pools)
import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]))
for _ in range(int(sys.argv[4])):
    c.request("GET", sys.argv[2], headers={"Authorization": "Bearer " + sys.argv[3]} if sys.argv[3] else {})
    r = c.getresponse(); r.read(); assert r.status == 200, r.status
PY
  callgrind_control -z $vg > /dev/null
  callgrind_control -i on $vg > /dev/null
  python3 - "$gw" "$2" "$3" "$n" <<'PY'
import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]))
for _ in range(int(sys.argv[4])):
    c.request("GET", sys.argv[2], headers={"Authorization": "Bearer " + sys.argv[3]} if sys.argv[3] else {})
    r = c.getresponse(); r.read(); assert r.status == 200, r.status
PY
  callgrind_control -i off $vg > /dev/null
  callgrind_control -d "$1" $vg > /dev/null
  local f; f=$(ls -t "$work"/cg.out* | head -1)
  local total; total=$(grep -E '^(summary|totals):' "$f" | tail -1 | awk '{print $2}')
  printf '%-28s %10d instructions/request\n' "$1" $(( total / n ))
}
echo "instructions per request over $n requests, one keep-alive connection ($bin)"
run keyless /open/x ""
run jwt-reused-token /jwt/x "$(token plain)"
run jwt-rate-limit-quota /jwt/x "$(token limited)"
