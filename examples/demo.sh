#!/usr/bin/env bash
# make demo: start a shoal server and a small simulated fleet on this machine, deploy the
# example app, and show how to look at it. `make demo-down` stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
STATE=$ROOT/.demo
PORT=${SHOAL_DEMO_PORT:-6443}
SHOAL="$ROOT/.venv/bin/shoal"
export SHOAL_CONFIG=$STATE/server/admin.yaml

stop_pid() { [ -f "$1" ] && kill "$(cat "$1")" 2>/dev/null && sleep 0.5; rm -f "$1"; }

down() {
  stop_pid "$STATE/sim.pid"
  stop_pid "$STATE/server.pid"
  echo "demo stopped (state kept in $STATE; rm -rf it to start afresh)"
}

up() {
  mkdir -p "$STATE"
  if [ -f "$STATE/server.pid" ] && kill -0 "$(cat "$STATE/server.pid")" 2>/dev/null; then
    echo "server already running (pid $(cat "$STATE/server.pid"))"
  else
    if ss -ltn "sport = :$PORT" | grep -q LISTEN; then
      echo "error: port $PORT is in use; set SHOAL_DEMO_PORT=NNNN and run make demo again" >&2; exit 1
    fi
    setsid "$SHOAL" server --data-dir "$STATE/server" --port "$PORT" --log-level info \
      >"$STATE/server.log" 2>&1 < /dev/null &
    echo $! > "$STATE/server.pid"
    for _ in $(seq 100); do
      [ -f "$SHOAL_CONFIG" ] && "$SHOAL" version >/dev/null 2>&1 && break
      sleep 0.2
    done
    "$SHOAL" version >/dev/null || { echo "error: the server did not start; see $STATE/server.log" >&2; exit 3; }
  fi
  if ! { [ -f "$STATE/sim.pid" ] && kill -0 "$(cat "$STATE/sim.pid")" 2>/dev/null; }; then
    setsid "$SHOAL" sim nodes --count 3 --cpu 2 --memory 2Gi --zones plant-a,plant-b,cloud --prefix gw \
      >"$STATE/sim.log" 2>&1 < /dev/null &
    echo $! > "$STATE/sim.pid"
  fi
  "$SHOAL" apply -f examples/demo/namespace.yaml
  "$SHOAL" apply -f examples/demo/sensors.yaml
  for _ in $(seq 150); do
    running=$("$SHOAL" get pods -n plant-a -o json | jq '[.items[] | select(.status.phase=="Running")] | length')
    [ "$running" = 3 ] && break
    sleep 0.2
  done
  echo
  "$SHOAL" get nodes -o wide
  echo
  "$SHOAL" get pods -n plant-a -o wide
  mkdir -p "$HOME/.shoal"
  [ -e "$HOME/.shoal/config.yaml" ] || ln -s "$SHOAL_CONFIG" "$HOME/.shoal/config.yaml"
  cat <<MSG

shoal is running: server https://127.0.0.1:$PORT, 3 simulated nodes (gw-*), the example app in
namespace plant-a. Look at it with:

  export PATH=$ROOT/.venv/bin:\$PATH SHOAL_CONFIG=$SHOAL_CONFIG
  shoal get pods -n plant-a -o wide
  shoal describe deployment sensor-gateway -n plant-a
  shoal scale deployment sensor-gateway --replicas 5 -n plant-a
  shoal get events -n plant-a

Logs: $STATE/server.log, $STATE/sim.log. Stop with: make demo-down
MSG
}

case "${1:-up}" in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
