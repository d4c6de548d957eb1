#!/usr/bin/env bash
# make demo: a loopback image registry, the example image built by `shoal image build` and pushed
# there, and a local fleet made by `shoal cluster up`: a server and 3 real agents, each in its own
# network namespace ("host") on this machine, whose pods run under runc + conmon. Deploys the
# example IoT app of examples/demo/ (the nodes pull its image through the server's registry
# mirror) and shows it answering through its Service's name (cluster DNS + ClusterIP).
# `make demo-down` removes the fleet (`shoal cluster down`) and stops the registry. Running `up`
# again only starts what is not running.
#
# Settings (environment): SHOAL_DEMO_STATE (state dir, default .demo), SHOAL_DEMO_NAME (the fleet's
# name, demo), SHOAL_DEMO_NODES (3), SHOAL_DEMO_REGISTRY_PORT (5000), SHOAL_DEMO_WAIT (seconds to
# wait for the pods, 90).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
STATE=${SHOAL_DEMO_STATE:-$ROOT/.demo}
mkdir -p "$STATE"
STATE=$(cd "$STATE" && pwd)
NAME=${SHOAL_DEMO_NAME:-demo}
NODES=${SHOAL_DEMO_NODES:-3}
REG_PORT=${SHOAL_DEMO_REGISTRY_PORT:-5000}
WAIT=${SHOAL_DEMO_WAIT:-90}
NS=plant-a
REPLICAS=3
IMAGE=127.0.0.1:$REG_PORT/shoal/sensor-gateway:1.0
SHOAL="$ROOT/.venv/bin/shoal"
export SHOAL_CONFIG=$STATE/admin.yaml SHOAL_IMAGE_ROOT=$STATE/images SHOAL_CLUSTER_ROOT=$STATE/clusters

say() { printf '%s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# alive PIDFILE WORD: the pid file names a live process whose command line contains WORD (so a
# reused pid of some other program is never taken for, or stopped as, one of the demo's).
alive() {
  local pid
  [ -f "$1" ] || return 1
  pid=$(cat "$1")
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$2"
}

# running PID: the process exists and is not a zombie (this machine's init reaps only now and then).
running() { local st; st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null) && [ "${st%% *}" != Z ]; }

# stop PIDFILE WORD WHAT: SIGTERM the process group the demo started, wait up to 20 s, then SIGKILL.
stop() {
  local pid
  if alive "$1" "$2"; then
    pid=$(cat "$1")
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 200); do running "$pid" || break; sleep 0.1; done
    if running "$pid"; then
      say "  $3 did not stop in 20 s; killing it"
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    fi
    say "stopped $3 (pid $pid)"
  fi
  rm -f "$1"
}

port_busy() { ss -ltnH "sport = :$1" | grep -q .; }

# wait_for SECONDS COMMAND...: run COMMAND every 0.5 s until it succeeds or SECONDS pass.
wait_for() {
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.5
  done
}

registry_up() { busybox wget -q -O /dev/null "http://127.0.0.1:$REG_PORT/v2/"; }
manifests() { sed "s#127\.0\.0\.1:5000/#127.0.0.1:$REG_PORT/#" "$ROOT/examples/demo/sensors.yaml"; }
ready_pods() {  # the app's pods that are Running and Ready (the readiness probe answered)
  "$SHOAL" get pods -n "$NS" -o json | jq '[.items[] | select(.status.phase=="Running"
    and (.status.containerStatuses // [] | length > 0 and all(.ready)))] | length'
}
app_ready() { [ "$(ready_pods)" -ge "$REPLICAS" ]; }

start_registry() {
  if alive "$STATE/registry.pid" docker-registry; then
    say "registry   already running on 127.0.0.1:$REG_PORT (pid $(cat "$STATE/registry.pid"))"; return
  fi
  port_busy "$REG_PORT" &&
    die "port $REG_PORT (registry) is in use; set SHOAL_DEMO_REGISTRY_PORT=NNNN and run make demo again"
  mkdir -p "$STATE/registry/data"
  cat >"$STATE/registry/config.yml" <<CFG
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $STATE/registry/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$REG_PORT
CFG
  setsid docker-registry serve "$STATE/registry/config.yml" >"$STATE/registry.log" 2>&1 </dev/null &
  echo $! >"$STATE/registry.pid"
  wait_for 15 registry_up || die "the registry did not start on 127.0.0.1:$REG_PORT; see $STATE/registry.log"
  say "registry   started on 127.0.0.1:$REG_PORT (pid $(cat "$STATE/registry.pid"), data in $STATE/registry)"
}

build_image() {
  local ctx=$STATE/build/gateway out
  mkdir -p "$ctx"
  # A build context cannot reach outside itself: copy Debian's static busybox next to the Dockerfile.
  # cp -p keeps mtimes, so the builder's stat-keyed cache makes a rebuild a no-op.
  cp -p "$ROOT"/examples/demo/gateway/* /bin/busybox "$ctx/"
  out=$("$SHOAL" image build -q -t "$IMAGE" "$ctx" 2>&1) || die "shoal image build failed:"$'\n'"$out"
  say "image      $out"
  out=$("$SHOAL" image push -q "$IMAGE" 2>&1) || die "shoal image push $IMAGE failed:"$'\n'"$out"
  say "           pushed to 127.0.0.1:$REG_PORT"
}

up() {
  [ "$(id -u)" = 0 ] || die "make demo runs real agents (runc, cgroups, mounts, network namespaces): run it as root"
  start_registry
  build_image
  "$SHOAL" cluster up --nodes "$NODES" --name "$NAME" --labels "shoal.io/zone=$NS" --config "$SHOAL_CONFIG" ||
    die "shoal cluster up failed (see the logs in $SHOAL_CLUSTER_ROOT/$NAME); make demo-down removes what was made"
  "$SHOAL" apply -f "$ROOT/examples/demo/namespace.yaml" >/dev/null
  manifests | "$SHOAL" apply -f - >/dev/null
  if ! wait_for "$WAIT" app_ready; then
    "$SHOAL" get pods -n "$NS" -o wide >&2 || true
    die "$REPLICAS pods of the example app are not Running and Ready after ${WAIT}s; look at:
  $SHOAL_CLUSTER_ROOT/$NAME/node-*.log (the agents), $SHOAL_CLUSTER_ROOT/$NAME/server.log (the server)
  SHOAL_CONFIG=$SHOAL_CONFIG $SHOAL describe pod -n $NS <pod>
(what started keeps running: make demo again waits anew, make demo-down removes it)"
  fi
  local pod node runc_root
  pod=$("$SHOAL" get pods -n "$NS" -o json | jq -r '.items[0].metadata.name')
  node=$("$SHOAL" get pods -n "$NS" -o json | jq -r '.items[0].spec.nodeName')
  runc_root=/run/shoal/clusters/$NAME/node-${node##*-}/runc
  echo
  say "\$ shoal get nodes -o wide"
  "$SHOAL" get nodes -o wide
  echo
  say "\$ shoal get pods -n $NS -o wide"
  "$SHOAL" get pods -n "$NS" -o wide
  echo
  say "\$ ip netns exec shoal-$NAME-${node##*-} runc --root $runc_root list    # on node $node, under runc + conmon"
  ip netns exec "shoal-$NAME-${node##*-}" runc --root "$runc_root" list
  echo
  say "\$ shoal exec -n $NS $pod -- wget -q -O - http://sensor-gateway/    # cluster DNS, then the ClusterIP"
  "$SHOAL" exec -n "$NS" "$pod" -- timeout 5 wget -q -O - http://sensor-gateway/ ||
    say "(the Service did not answer from inside $pod; see $SHOAL_CLUSTER_ROOT/$NAME/node-*.log)"
  cat <<MSG

shoal is running: a fleet of $NODES nodes ($NAME-1 … $NAME-$NODES, each agent in its own network
namespace shoal-$NAME-N), its server ($(awk '/^server:/ {print $2}' "$SHOAL_CONFIG")), a registry on
127.0.0.1:$REG_PORT, and the example app in namespace $NS. Look at it with:

  export PATH=$ROOT/.venv/bin:\$PATH SHOAL_CONFIG=$SHOAL_CONFIG
  shoal get pods -n $NS -o wide
  shoal describe deployment sensor-gateway -n $NS
  shoal scale deployment sensor-gateway --replicas 6 -n $NS
  shoal logs -n $NS $pod
  shoal exec -it -n $NS $pod -- sh
  shoal top pods -n $NS          # after the agents' first usage push (10 s)
  shoal get events -n $NS

Logs: $SHOAL_CLUSTER_ROOT/$NAME/*.log
Stop with: make demo-down$(env | grep -q '^SHOAL_DEMO_' && echo ' (with the same SHOAL_DEMO_* settings)')
MSG
}

down() {
  "$SHOAL" cluster down --name "$NAME" || say "no fleet named $NAME was running"
  stop "$STATE/registry.pid" docker-registry "registry"
  say "demo stopped (images and registry data kept in $STATE; rm -rf $STATE to start afresh)"
}

case "${1:-up}" in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
