#!/usr/bin/env bash
# Starts nginx on 127.0.0.1 as a fixed-body upstream (and optionally as a plain reverse proxy),
# in its own prefix directory, in the foreground of a background job. Used by the load scripts.
#   nginx-upstream.sh DIR UPSTREAM_PORT [UPSTREAM_PORT2] [--proxy PROXY_PORT] [--proxy-cpu N]
set -euo pipefail
dir=$1; shift
ports=()
proxy_port=""
while [ $# -gt 0 ]; do
  case "$1" in
    --proxy) proxy_port=$2; shift 2 ;;
    *) ports+=("$1"); shift ;;
  esac
done
mkdir -p "$dir/logs"
{
  echo "worker_processes 1;"
  echo "pid $dir/nginx.pid;"
  echo "error_log $dir/logs/error.log warn;"
  echo "events { worker_connections 4096; }"
  echo "http {"
  echo "  access_log off;"
  echo "  keepalive_requests 1000000;"
  for p in "${ports[@]}"; do
    echo "  server { listen 127.0.0.1:$p; location / { default_type application/json; return 200 '{\"upstream\":$p,\"ok\":true}\n'; } }"
  done
  if [ -n "$proxy_port" ]; then
    echo "  upstream backend { server 127.0.0.1:${ports[0]}; keepalive 64; }"
    echo "  server { listen 127.0.0.1:$proxy_port; location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }"
  fi
  echo "}"
} > "$dir/nginx.conf"
exec nginx -p "$dir" -c "$dir/nginx.conf" -g "daemon off;"
