#!/usr/bin/env bash
# Gatehouse vs nginx on loopback, one run, ratios from the same run.
#
# Starts: an nginx upstream returning a small fixed body (core 1), nginx as a plain reverse proxy
# to it (core 0, one worker), the test IdP (core 1) for keys and tokens, and Gatehouse (core 0,
# one worker thread) with a keyless API and JWT APIs in front of the same upstream. Then loads
# each with wrk (core 1; bounded: DURATION seconds, CONNECTIONS connections) and prints
# requests/s, p50, p99 and the ratio to nginx.
#
#   bench/run.sh [DURATION=10] [CONNECTIONS=50]
#
# BENCH_TELEMETRY=1 adds two JWT rows on two more gateways: jwt-telemetry-off (--analytics false,
# no access log) and jwt-telemetry-on (--access-log to a file and --analytics true). The other
# gateways run with the defaults (analytics on, access log off).
#
# Everything listens on 127.0.0.1 and stops when the script ends.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10}
conns=${2:-50}
for tool in wrk nginx node taskset curl python3; do
  command -v $tool >/dev/null || { echo "bench: $tool is needed (apt-get install wrk nginx-light nodejs util-linux curl python3)" >&2; exit 1; }
done
[ -d testing/idp/node_modules/oidc-provider ] || npm ci --prefix testing/idp --no-audit --no-fund --loglevel=error

echo "bench: building the release binary" >&2
cargo build --release -q -p gatehouse
bin=${CARGO_TARGET_DIR:-target}/release/gatehouse

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { for _ in $(seq 1 200); do curl -fs -o /dev/null "$1" && return 0; sleep 0.05; done; echo "bench: $1 did not come up" >&2; exit 1; }

up=$(free_port); proxy=$(free_port); gw=$(free_port); dash=$(free_port); portal=$(free_port); gw_nocache=$(free_port); dash2=$(free_port); portal2=$(free_port)
gw_redis=$(free_port); dash3=$(free_port); portal3=$(free_port); redis_port=$(free_port)

# Upstream on core 1, nginx proxy on core 0 (separate nginx instances so each can be pinned).
taskset -c 1 scripts/nginx-upstream.sh "$work/up" "$up" & pids+=($!)
mkdir -p "$work/px/logs"
cat > "$work/px/nginx.conf" <<EOF
worker_processes 1;
pid $work/px/nginx.pid;
error_log $work/px/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  upstream backend { server 127.0.0.1:$up; keepalive 64; }
  server { listen 127.0.0.1:$proxy; location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; } }
}
EOF
taskset -c 0 nginx -p "$work/px" -c "$work/px/nginx.conf" -g "daemon off;" & pids+=($!)

# The test IdP (keys, tokens) on core 1.
taskset -c 1 node testing/idp/server.mjs --shape plain --port 0 --state-dir "$work/idp" > "$work/idp.json" 2> "$work/idp.err" & pids+=($!)
for _ in $(seq 1 200); do grep -q ready "$work/idp.json" 2>/dev/null && break; sleep 0.1; done
idp_json=$(head -1 "$work/idp.json")
idp_base=$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print("http://127.0.0.1:%d" % d["port"])' "$idp_json")
jwks=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["jwks_uri"])' "$idp_json")

key=bench-admin-key-0123456789
start_gw() { # port dash portal datadir extra...
  local port=$1 d=$2 p=$3 dir=$4; shift 4
  GATEHOUSE_ADMIN_KEY=$key GATEHOUSE_LOG_LEVEL=error taskset -c 0 $bin serve --data-dir "$dir" --worker-threads 1 \
    --gateway-listen 127.0.0.1:$port --dashboard-listen 127.0.0.1:$d --portal-listen 127.0.0.1:$p "$@" \
    > "$dir.out" 2> "$dir.err" & pids+=($!)
  wait_http "http://127.0.0.1:$port/hello"
  wait_http "http://127.0.0.1:$d/api/openapi.json" # the dashboard binds after the gateway
}
start_gw "$gw" "$dash" "$portal" "$work/gh"
start_gw "$gw_nocache" "$dash2" "$portal2" "$work/gh2" --jwt-token-cache-size 0
# Redis for the shared-counters row, on core 1 like the other helpers.
if command -v redis-server >/dev/null; then
  taskset -c 1 redis-server --bind 127.0.0.1 --port "$redis_port" --save "" --appendonly no > /dev/null 2>&1 & pids+=($!)
  for _ in $(seq 1 100); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.05; done
  start_gw "$gw_redis" "$dash3" "$portal3" "$work/gh3" --redis-url "redis://127.0.0.1:$redis_port"
fi
telemetry=${BENCH_TELEMETRY:-0}
if [ "$telemetry" = 1 ]; then
  gw_toff=$(free_port); dash4=$(free_port); portal4=$(free_port)
  gw_ton=$(free_port); dash5=$(free_port); portal5=$(free_port)
  start_gw "$gw_toff" "$dash4" "$portal4" "$work/gh4" --analytics false --access-log off
  start_gw "$gw_ton" "$dash5" "$portal5" "$work/gh5" --analytics true --access-log "$work/access.log"
fi
wait_http "http://127.0.0.1:$up/"; wait_http "http://127.0.0.1:$proxy/"

admin() { curl -fsS -X POST "http://127.0.0.1:$1/api/$2" -H "Authorization: Bearer $key" -d "$3" >/dev/null; }
dashes=("$dash" "$dash2")
[ -f "$work/gh3.out" ] && dashes+=("$dash3")
[ "$telemetry" = 1 ] && dashes+=("$dash4" "$dash5")
for d in "${dashes[@]}"; do
  admin "$d" apis "{\"name\":\"keyless\",\"api_id\":\"keyless\",\"use_keyless\":true,\"proxy\":{\"listen_path\":\"/keyless/\",\"target_url\":\"http://127.0.0.1:$up\",\"strip_listen_path\":true}}"
  admin "$d" apis "{\"name\":\"jwt\",\"api_id\":\"jwt\",\"enable_jwt\":true,\"jwt_signing_method\":\"rsa\",\"jwt_source\":\"$jwks\",\"jwt_identity_base_field\":\"sub\",\"jwt_policy_field_name\":\"pol\",\"proxy\":{\"listen_path\":\"/jwt/\",\"target_url\":\"http://127.0.0.1:$up\",\"strip_listen_path\":true}}"
  admin "$d" apis "{\"name\":\"limited\",\"api_id\":\"limited\",\"enable_jwt\":true,\"jwt_signing_method\":\"rsa\",\"jwt_source\":\"$jwks\",\"jwt_identity_base_field\":\"sub\",\"jwt_policy_field_name\":\"pol\",\"proxy\":{\"listen_path\":\"/limited/\",\"target_url\":\"http://127.0.0.1:$up\",\"strip_listen_path\":true}}"
  admin "$d" policies '{"id":"open","name":"open","rate":0,"per":0,"quota_max":-1,"access_rights":{"jwt":{"api_id":"jwt","versions":[]}}}'
  admin "$d" policies '{"id":"limits","name":"limits","rate":1000000000,"per":1,"quota_max":1000000000000,"quota_renewal_rate":86400,"access_rights":{"limited":{"api_id":"limited","versions":[]}}}'
done

# Tokens signed by the IdP: one reused token per API, and a pool for the no-cache run.
sign() { curl -fsS -X POST "$idp_base/__test/sign" -d "{\"alg\":\"RS256\",\"claims\":{\"sub\":\"$1\",\"pol\":\"$2\",\"exp\":$(( $(date +%s) + 3600 ))}}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])'; }
tok_jwt=$(sign bench-user open)
tok_limited=$(sign bench-user limits)
: > "$work/tokens.txt"
for i in $(seq 1 200); do sign "user-$i" open >> "$work/tokens.txt"; done

cat > "$work/token.lua" <<'EOF'
local token = os.getenv("BENCH_TOKEN")
wrk.headers["Authorization"] = "Bearer " .. token
EOF
cat > "$work/pool.lua" <<'EOF'
local tokens = {}
for line in io.lines(os.getenv("BENCH_TOKENS")) do tokens[#tokens + 1] = line end
local i = 0
request = function()
  i = i % #tokens + 1
  return wrk.format("GET", nil, { ["Authorization"] = "Bearer " .. tokens[i] })
end
EOF

# Warm up everything once (connections, JWKS, caches).
for u in "http://127.0.0.1:$proxy/x" "http://127.0.0.1:$gw/keyless/x"; do curl -fs -o /dev/null "$u"; done
curl -fs -o /dev/null -H "Authorization: Bearer $tok_jwt" "http://127.0.0.1:$gw/jwt/x"
curl -fs -o /dev/null -H "Authorization: Bearer $tok_limited" "http://127.0.0.1:$gw/limited/x"
curl -fs -o /dev/null -H "Authorization: Bearer $tok_jwt" "http://127.0.0.1:$gw_nocache/jwt/x"
[ -f "$work/gh3.out" ] && curl -fs -o /dev/null -H "Authorization: Bearer $tok_limited" "http://127.0.0.1:$gw_redis/limited/x"
if [ "$telemetry" = 1 ]; then
  for p in "$gw_toff" "$gw_ton"; do curl -fs -o /dev/null -H "Authorization: Bearer $tok_jwt" "http://127.0.0.1:$p/jwt/x"; done
fi

results="$work/results.tsv"
: > "$results"
run() { # name url [script] [env]
  local name=$1 url=$2 script=${3:-}
  local args=(-t1 -c"$conns" -d"${duration}s" --latency --timeout 5s)
  [ -n "$script" ] && args+=(-s "$script")
  echo "bench: $name ..." >&2
  taskset -c 1 wrk "${args[@]}" "$url" > "$work/$name.txt"
  python3 - "$work/$name.txt" "$name" >> "$results" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
def ms(label):
    m = re.search(r"^\s*%s\s+([\d.]+)(us|ms|s)\s*$" % re.escape(label), text, re.M)
    v, unit = float(m.group(1)), m.group(2)
    return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
bad = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
errs = re.search(r"Socket errors: (.*)", text)
print("%s\t%.0f\t%.2f\t%.2f\t%s" % (sys.argv[2], rps, ms("50%"), ms("99%"),
      (bad.group(1) + " non-2xx " if bad else "") + (errs.group(1) if errs else "")))
PY
}

run nginx-proxy "http://127.0.0.1:$proxy/x"
run keyless "http://127.0.0.1:$gw/keyless/x"
BENCH_TOKEN=$tok_jwt run jwt-reused-token "http://127.0.0.1:$gw/jwt/x" "$work/token.lua"
if [ "$telemetry" = 1 ]; then
  BENCH_TOKEN=$tok_jwt run jwt-telemetry-off "http://127.0.0.1:$gw_toff/jwt/x" "$work/token.lua"
  BENCH_TOKEN=$tok_jwt run jwt-telemetry-on "http://127.0.0.1:$gw_ton/jwt/x" "$work/token.lua"
fi
BENCH_TOKENS="$work/tokens.txt" run jwt-fresh-token "http://127.0.0.1:$gw_nocache/jwt/x" "$work/pool.lua"
BENCH_TOKEN=$tok_limited run jwt-rate-limit-quota "http://127.0.0.1:$gw/limited/x" "$work/token.lua"
if [ -f "$work/gh3.out" ]; then
  BENCH_TOKEN=$tok_limited run jwt-limits-redis "http://127.0.0.1:$gw_redis/limited/x" "$work/token.lua"
fi

echo
echo "| row | req/s | p50 ms | p99 ms | req/s vs nginx | p99 vs nginx | errors |"
echo "|---|---:|---:|---:|---:|---:|---|"
python3 - "$results" <<'PY'
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
base = next(r for r in rows if r[0] == "nginx-proxy")
for name, rps, p50, p99, errs in rows:
    print("| %s | %s | %s | %s | %.2f | %.2f | %s |" % (name, rps, p50, p99,
          float(rps) / float(base[1]), float(p99) / float(base[3]), errs or "0"))
PY
if [ "$telemetry" = 1 ]; then
  python3 - "$results" <<'PY'
import sys
rows = {l.split("\t")[0]: l.rstrip("\n").split("\t") for l in open(sys.argv[1])}
off, on = rows["jwt-telemetry-off"], rows["jwt-telemetry-on"]
print("\naccess log + analytics on vs off (JWT, reused token): req/s %+.1f %%, p99 %+.1f %%"
      % ((float(on[1]) / float(off[1]) - 1) * 100, (float(on[3]) / float(off[3]) - 1) * 100))
PY
  echo "access log lines written: $(wc -l < "$work/access.log")"
fi
echo
echo "($(nproc) cores; proxies pinned to core 0, upstream/IdP/wrk on core 1; wrk -t1 -c$conns -d${duration}s; $(date -u +%Y-%m-%dT%H:%MZ))"
