#!/usr/bin/env bash
# Serve the rendered configs of N devices with hotdesk and with nginx (static files from
# render_dir), then measure each with wrk: one file over and over, and every device's
# files in turn (bench/wrk_paths.lua).
#   hotdesk web (uvicorn + a2wsgi, 8 threads), and its app under waitress for comparison
#   hotdesk prov-serve, 2 worker processes, on uvloop and on the standard asyncio loop,
#   over plain HTTP and over TLS (self-signed P-256 certificate made here)
#   nginx, 2 worker processes
# Each server is also measured with a new connection per request ("new conn"), which is
# what a phone polling now and then does: over TLS every request then pays a handshake.
# Usage: bench/serve_bench.sh [devices=10000] [seconds=10]
set -euo pipefail
cd "$(dirname "$0")/.."
DEVICES=${1:-10000}
SECONDS_RUN=${2:-10}
VENV=${HOTDESK_VENV:-$PWD/.venv}
PY=$VENV/bin/python
WORK=$(mktemp -d /tmp/hotdesk-serve-bench.XXXXXX)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

if ! command -v nginx >/dev/null && [[ ! -x /usr/sbin/nginx ]]; then
    echo "== installing nginx"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null
fi
"$PY" -c "import uvloop" 2>/dev/null || "$VENV/bin/pip" install -q 'uvloop>=0.19'
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
free_port() { "$PY" -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])"; }

echo "== rendering $DEVICES devices"
"$PY" bench/provisioning_bench.py --devices "$DEVICES" --keep "$WORK/bench.db" \
    --render-dir "$WORK/render"
(cd "$WORK/render" && find . -type f -printf '/prov/%P\n' | sort) > "$WORK/paths.txt"
URL_PATH=$(head -1 "$WORK/paths.txt")
export PATHS_FILE=$WORK/paths.txt
echo "   $(wc -l < "$WORK/paths.txt") files; single-file runs use $URL_PATH"
export HOTDESK_DATABASE_URL="sqlite:///$WORK/bench.db" HOTDESK_LOG_LEVEL=WARNING

SCHEME=http
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
    -keyout "$WORK/tls.key" -out "$WORK/tls.pem" 2>/dev/null
wait_up() {
    for _ in $(seq 300); do
        curl -kfs "$SCHEME://127.0.0.1:$1$URL_PATH" >/dev/null && return 0
        sleep 0.1
    done
    echo "server on port $1 did not come up" >&2
    return 1
}
# run PORT NAME [wrk args...]: prints requests/s
run() {
    local port=$1 name=$2
    shift 2
    wrk -t2 -c32 -d"${SECONDS_RUN}s" "$@" "$SCHEME://127.0.0.1:$port$URL_PATH" > "$WORK/$name.txt"
    if grep -q "Non-2xx" "$WORK/$name.txt"; then
        echo "   $name: $(grep Non-2xx "$WORK/$name.txt") (not counted as served)" >&2
    fi
    awk '/Requests\/sec/ {print $2}' "$WORK/$name.txt"
}
# measure PORT LABEL: single file, then every file in turn after a warm-up run of 3x the
# measured time (hotdesk renders and records each file on its first fetch per worker)
declare -A RESULT
measure() {
    local port=$1 label=$2
    RESULT["$label/one"]=$(run "$port" "$label-one")
    SECONDS_RUN=$((SECONDS_RUN * 3)) run "$port" "$label-warm" -s bench/wrk_paths.lua >/dev/null
    RESULT["$label/all"]=$(run "$port" "$label-all" -s bench/wrk_paths.lua)
    RESULT["$label/new"]=$(run "$port" "$label-new" -H "Connection: close")
    printf '%-30s one file %8.0f req/s   all files %8.0f req/s   new conn %8.0f req/s\n' \
        "$label" "${RESULT[$label/one]}" "${RESULT[$label/all]}" "${RESULT[$label/new]}"
}
stop() { kill "$1"; wait "$1" 2>/dev/null || true; }

echo "== hotdesk web app under waitress (8 threads)"
PORT=$(free_port)
"$PY" - "$PORT" <<'PY' &
import logging, sys
from waitress import serve
from hotdesk.settings import load_config
from hotdesk.runtime import start
from webadmin.app import create_app
logging.basicConfig(level=logging.WARNING)
logging.getLogger("waitress.queue").setLevel(logging.ERROR)
serve(create_app(start(load_config())), host="127.0.0.1", port=int(sys.argv[1]), threads=8,
      _quiet=True)
PY
PID=$!; PIDS+=($PID); wait_up "$PORT"; measure "$PORT" "waitress+flask"; stop "$PID"

echo "== hotdesk web (uvicorn + a2wsgi, 8 threads)"
PORT=$(free_port)
"$VENV/bin/hotdesk" web --listen "127.0.0.1:$PORT" --threads 8 &
PID=$!; PIDS+=($PID); wait_up "$PORT"; measure "$PORT" "web(uvicorn)"; stop "$PID"

for tls in "" "+tls"; do
    for loop in uvloop asyncio; do
        echo "== hotdesk prov-serve (2 workers, $loop${tls:+, TLS})"
        PORT=$(free_port)
        if [[ -n $tls ]]; then
            SCHEME=https HOTDESK_PROVISIONING_TLS_CERTFILE=$WORK/tls.pem \
                HOTDESK_PROVISIONING_TLS_KEYFILE=$WORK/tls.key \
                "$VENV/bin/hotdesk" prov-serve --listen "127.0.0.1:$PORT" --workers 2 \
                --loop "$loop" &
            SCHEME=https
        else
            "$VENV/bin/hotdesk" prov-serve --listen "127.0.0.1:$PORT" --workers 2 --loop "$loop" &
        fi
        PID=$!; PIDS+=($PID); wait_up "$PORT"; measure "$PORT" "prov-serve-$loop$tls"
        stop "$PID"
        SCHEME=http
    done
done

echo "== nginx (static render_dir, 2 workers)"
PORT=$(free_port)
# render_dir is written 0750/0640 (configs hold SIP passwords); nginx's workers run as
# another user, so open up this throw-away copy.
chmod -R a+rX "$WORK"
mkdir -p "$WORK/nginx"
cat > "$WORK/nginx/nginx.conf" <<CONF
worker_processes 2;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log;
events { worker_connections 1024; }
http {
    access_log off;
    server {
        listen 127.0.0.1:$PORT;
        location /prov/ { alias $WORK/render/; }
    }
}
CONF
"$NGINX" -c "$WORK/nginx/nginx.conf" -g "daemon off;" &
PID=$!; PIDS+=($PID); wait_up "$PORT"; measure "$PORT" "nginx"; stop "$PID"

echo "== ratio to nginx (target >= 0.3x)"
for label in waitress+flask "web(uvicorn)" prov-serve-uvloop prov-serve-asyncio \
        prov-serve-uvloop+tls prov-serve-asyncio+tls; do
    "$PY" -c "
one, all_, n1, na = (float(x) for x in '${RESULT[$label/one]} ${RESULT[$label/all]} ${RESULT[nginx/one]} ${RESULT[nginx/all]}'.split())
print(f'{\"$label\":34s} one file {one / n1:5.2f}x   all files {all_ / na:5.2f}x')"
done
