#!/usr/bin/env bash
# Serve rendered configs with hotdesk (waitress + create_app) and with nginx (static files
# from render_dir), then measure both with wrk on the same config file.
# Usage: bench/serve_bench.sh [devices] [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
DEVICES=${1:-10000}
SECONDS_RUN=${2:-10}
PY=${HOTDESK_VENV:-$PWD/.venv}/bin/python
WORK=$(mktemp -d /tmp/hotdesk-serve-bench.XXXXXX)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

if ! command -v nginx >/dev/null && [[ ! -x /usr/sbin/nginx ]]; then
    echo "== installing nginx"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
free_port() { "$PY" -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])"; }

echo "== rendering $DEVICES devices"
"$PY" bench/provisioning_bench.py --devices "$DEVICES" --keep "$WORK/bench.db" \
    --render-dir "$WORK/render"
TOKEN=$(ls "$WORK/render" | head -1 || true)
FILE=$(ls "$WORK/render/$TOKEN" | head -1 || true)

HD_PORT=$(free_port)
HOTDESK_DATABASE_URL="sqlite:///$WORK/bench.db" HOTDESK_LOG_LEVEL=WARNING "$PY" - "$HD_PORT" <<'PY' &
import logging, sys
from waitress import serve
from hotdesk.config import load_config
from hotdesk.runtime import start
from webadmin.app import create_app
logging.basicConfig(level=logging.WARNING)
logging.getLogger("waitress.queue").setLevel(logging.ERROR)
serve(create_app(start(load_config())), host="127.0.0.1", port=int(sys.argv[1]), threads=8,
      _quiet=True)
PY
PIDS+=($!)

NG_PORT=$(free_port)
mkdir -p "$WORK/nginx"
cat > "$WORK/nginx/nginx.conf" <<CONF
worker_processes 2;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log;
events { worker_connections 1024; }
http {
    access_log off;
    server {
        listen 127.0.0.1:$NG_PORT;
        location /prov/ { alias $WORK/render/; }
    }
}
CONF
"$NGINX" -c "$WORK/nginx/nginx.conf" -g "daemon off;" &
PIDS+=($!)

for port in "$HD_PORT" "$NG_PORT"; do
    for _ in $(seq 100); do
        curl -fs "http://127.0.0.1:$port/prov/$TOKEN/$FILE" >/dev/null && break
        sleep 0.1
    done
done
URL_PATH="/prov/$TOKEN/$FILE"
run() {
    wrk -t2 -c32 -d"${SECONDS_RUN}s" "http://127.0.0.1:$1$URL_PATH" | tee "$WORK/$2.txt"
    awk '/Requests\/sec/ {print $2}' "$WORK/$2.txt"
}
echo "== hotdesk (waitress, 8 threads): $URL_PATH"
HD_RPS=$(run "$HD_PORT" hotdesk | tail -1)
echo "== nginx (static render_dir, 2 workers)"
NG_RPS=$(run "$NG_PORT" nginx | tail -1)
"$PY" -c "h, n = float('$HD_RPS'), float('$NG_RPS'); print(f'hotdesk {h:,.0f} req/s, nginx {n:,.0f} req/s, ratio {h / n:.2f}x (target >= 0.3x)')"
