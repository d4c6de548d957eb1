#!/bin/sh
# Sensor gateway of the shoal demo: serves /index.html (this pod's name and its config, from the
# env LEVEL and SAMPLE_HZ and the --rate argument) and /health on :8080 with busybox httpd.
set -eu
rate=1
while [ $# -gt 0 ]; do
  case "$1" in
    --rate) rate=${2:?--rate needs a value}; shift 2 ;;
    *) echo "serve.sh: unknown argument $1 (use --rate N)" >&2; exit 2 ;;
  esac
done
www=/tmp/www
mkdir -p "$www"
host=$(hostname)
cat > "$www/index.html" <<HTML
<!doctype html>
<title>sensor-gateway $host</title>
<h1>sensor-gateway on $host</h1>
<p>level=${LEVEL:-unset} sample_hz=${SAMPLE_HZ:-unset} rate=$rate</p>
HTML
echo ok > "$www/health"
echo "sensor-gateway $host: level=${LEVEL:-unset} sample_hz=${SAMPLE_HZ:-unset} rate=$rate, serving :8080"
# As PID 1 of its container the shell must handle SIGTERM itself (the kernel ignores signals
# without a handler for PID 1), so a deleted pod stops at once instead of after its grace period.
httpd -f -v -p 8080 -h "$www" &
pid=$!
trap 'echo "sensor-gateway $host: stopping"; kill "$pid" 2>/dev/null; wait "$pid" || true; exit 0' TERM INT
wait "$pid"
