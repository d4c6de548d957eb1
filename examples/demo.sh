#!/usr/bin/env bash
# make demo: a shoal server, a loopback image registry and ONE real agent on this machine (its
# pods run under runc + conmon); builds the example image with `shoal image build`, pushes it,
# deploys the example app of examples/demo/ pinned to that node, and shows it running.
# `make demo-down` deletes the app, waits until the agent has removed its containers, and stops
# everything the demo started. Running `up` again only starts what is not running.
#
# Settings (environment): SHOAL_DEMO_STATE (state dir, default .demo), SHOAL_DEMO_PORT (server,
# 6443), SHOAL_DEMO_REGISTRY_PORT (5000), SHOAL_DEMO_RUN_DIR (runc state and pod netns mounts,
# /run/shoal-demo), SHOAL_DEMO_CGROUP_PARENT (/shoal-demo), SHOAL_DEMO_NODE (the real node's name,
# default: hostname), SHOAL_DEMO_WAIT (seconds to wait for the pods, 90), SHOAL_DEMO_HOLLOW (hollow
# nodes beside it, 0), SHOAL_DEMO_AGENT_ARGS (more agent flags, e.g. "--no-pod-network --no-services").
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
STATE=${SHOAL_DEMO_STATE:-$ROOT/.demo}
mkdir -p "$STATE"
STATE=$(cd "$STATE" && pwd)
PORT=${SHOAL_DEMO_PORT:-6443}
REG_PORT=${SHOAL_DEMO_REGISTRY_PORT:-5000}
RUN_DIR=${SHOAL_DEMO_RUN_DIR:-/run/shoal-demo}
RUNC_ROOT=$RUN_DIR/runc
CGROUP_PARENT=${SHOAL_DEMO_CGROUP_PARENT:-/shoal-demo}
NODE=${SHOAL_DEMO_NODE:-$(hostname)}
WAIT=${SHOAL_DEMO_WAIT:-90}
HOLLOW=${SHOAL_DEMO_HOLLOW:-0}
NS=plant-a
REPLICAS=3
IMAGE=127.0.0.1:$REG_PORT/shoal/sensor-gateway:1.0
PY="$ROOT/.venv/bin/python"
SHOAL="$ROOT/.venv/bin/shoal"
export SHOAL_CONFIG=$STATE/server/admin.yaml SHOAL_IMAGE_ROOT=$STATE/images

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

# wait_for SECONDS COMMAND...: run COMMAND every 0.2 s until it succeeds or SECONDS pass.
wait_for() {
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.2
  done
}

registry_up() { busybox wget -q -O /dev/null "http://127.0.0.1:$REG_PORT/v2/"; }
server_up() { [ -f "$SHOAL_CONFIG" ] && "$SHOAL" version; }
node_registered() { "$SHOAL" get node "$NODE" -o name; }
manifests() { sed "s#127\.0\.0\.1:5000/#127.0.0.1:$REG_PORT/#" "$ROOT/examples/demo/sensors.yaml"; }
running_pods() {  # on the real node, Running, and every container Ready (the readiness probe answered)
  "$SHOAL" get pods -n "$NS" -o json | jq --arg node "$NODE" '[.items[] | select(.spec.nodeName==$node
    and .status.phase=="Running" and (.status.containerStatuses // [] | length > 0 and all(.ready)))]
    | length'
}
runc_ids() { [ -d "$RUNC_ROOT" ] && runc --root "$RUNC_ROOT" list -q 2>/dev/null || true; }
runc_running() {
  local n
  n=$(runc --root "$RUNC_ROOT" list -f json | jq '[(. // [])[] | select(.status=="running")] | length')
  [ "$n" -ge "$REPLICAS" ]
}
app_running() { [ "$(running_pods)" -ge "$REPLICAS" ] && runc_running; }
no_pods_left() {  # none of the app's pods on the real node, and no container in its runc root
  [ "$("$SHOAL" get pods -n "$NS" -o json | jq --arg node "$NODE" '[.items[] | select(.spec.nodeName==$node)]
    | length')" = 0 ] && [ -z "$(runc_ids)" ]
}

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

start_server() {
  if alive "$STATE/server.pid" "shoal server"; then
    say "server     already running on https://127.0.0.1:$PORT (pid $(cat "$STATE/server.pid"))"; return
  fi
  port_busy "$PORT" && die "port $PORT is in use; set SHOAL_DEMO_PORT=NNNN and run make demo again"
  setsid "$SHOAL" server --data-dir "$STATE/server" --port "$PORT" --log-level info \
    >"$STATE/server.log" 2>&1 </dev/null &
  echo $! >"$STATE/server.pid"
  wait_for 30 server_up || die "the server did not start; see $STATE/server.log"
  say "server     started on https://127.0.0.1:$PORT (pid $(cat "$STATE/server.pid"), data in $STATE/server)"
}

start_agent() {
  if alive "$STATE/agent.pid" shoal.agent; then
    say "agent      already running as node $NODE (pid $(cat "$STATE/agent.pid"))"; return
  fi
  # The join token goes by environment, not argv, so `ps` does not show it.
  # shellcheck disable=SC2086 # SHOAL_DEMO_AGENT_ARGS is a list of flags
  SHOAL_TOKEN=$(cat "$STATE/server/node-token") setsid "$PY" -m shoal.agent \
    --server "https://127.0.0.1:$PORT" --data-dir "$STATE/agent" --name "$NODE" \
    --runc-root "$RUNC_ROOT" --netns-dir "$RUN_DIR/netns" --cgroup-parent "$CGROUP_PARENT" \
    --labels "shoal.io/zone=$NS" --log-level info ${SHOAL_DEMO_AGENT_ARGS:-} \
    >>"$STATE/agent.log" 2>&1 </dev/null &
  echo $! >"$STATE/agent.pid"
  wait_for 30 node_registered || die "the agent did not register node $NODE in 30 s; see $STATE/agent.log"
  say "agent      started as node $NODE (pid $(cat "$STATE/agent.pid"), runc root $RUNC_ROOT," \
      "data in $STATE/agent)"
}

# Hollow nodes are opt-in (SHOAL_DEMO_HOLLOW=N): the agent's pod network adds host-gw routes to
# every node's podCIDR, and a hollow node's made-up address is not on this machine's network.
start_sim() {
  if [ "$HOLLOW" = 0 ]; then
    if [ -f "$STATE/sim.log" ]; then  # an earlier demo's hollow nodes would only show as Offline
      stop "$STATE/sim.pid" "sim nodes" "hollow nodes"
      "$SHOAL" get nodes -l shoal.io/simulated=true -o name | xargs -r "$SHOAL" delete >/dev/null
      mv "$STATE/sim.log" "$STATE/sim.log.old"
    fi
    return 0
  fi
  if alive "$STATE/sim.pid" "sim nodes"; then
    say "sim        already running: $HOLLOW hollow node(s) gw-* (pid $(cat "$STATE/sim.pid"))"; return
  fi
  setsid "$SHOAL" sim nodes --count "$HOLLOW" --cpu 2 --memory 2Gi --zones plant-b,cloud --prefix gw \
    >"$STATE/sim.log" 2>&1 </dev/null &
  echo $! >"$STATE/sim.pid"
  say "sim        started $HOLLOW hollow node(s) gw-* in zones plant-b, cloud (pid $(cat "$STATE/sim.pid"))"
}

up() {
  [ "$(id -u)" = 0 ] || die "make demo runs a real agent (runc, cgroups, mounts): run it as root"
  if [ -d "$STATE/server" ] && [ ! -d "$STATE/agent" ]; then
    say "note: $STATE holds the state of the earlier demo (hollow nodes only); for a clean demo run"
    say "      make demo-down && rm -rf $STATE, then make demo"
  fi
  # The pods' bridge turns on IP forwarding; remember the machine's setting so that down restores it.
  [ -f "$STATE/ip_forward.before" ] || sysctl -n net.ipv4.ip_forward > "$STATE/ip_forward.before"
  start_registry
  build_image
  start_server
  start_agent
  start_sim
  "$SHOAL" apply -f "$ROOT/examples/demo/namespace.yaml" >/dev/null
  manifests | "$SHOAL" apply -f - >/dev/null
  if ! wait_for "$WAIT" app_running; then
    "$SHOAL" get pods -n "$NS" -o wide >&2 || true
    die "$REPLICAS pods of the example app are not Running and Ready on node $NODE after ${WAIT}s; look at:
  $STATE/agent.log (the agent), $STATE/server.log (the server)
  SHOAL_CONFIG=$SHOAL_CONFIG $SHOAL describe pod -n $NS <pod>
  runc --root $RUNC_ROOT list
(what started keeps running: make demo again waits anew, make demo-down stops it)"
  fi
  local first
  first=$(runc --root "$RUNC_ROOT" list -q | sed -n 1p)
  echo
  say "\$ shoal get nodes -o wide"
  "$SHOAL" get nodes -o wide
  echo
  say "\$ shoal get pods -n $NS -o wide"
  "$SHOAL" get pods -n "$NS" -o wide
  echo
  say "\$ runc --root $RUNC_ROOT list      # the pods' containers, run by the agent under runc + conmon"
  runc --root "$RUNC_ROOT" list
  echo
  say "\$ runc --root $RUNC_ROOT exec $first wget -q -O - http://127.0.0.1:8080/"
  runc --root "$RUNC_ROOT" exec "$first" wget -q -O - http://127.0.0.1:8080/ ||
    say "(the gateway did not answer inside its container; see $STATE/agent/containers/$first)"
  if [ -z "${SHOAL_DEMO_STATE:-}" ]; then
    mkdir -p "$HOME/.shoal"
    [ -e "$HOME/.shoal/config.yaml" ] || ln -s "$SHOAL_CONFIG" "$HOME/.shoal/config.yaml"
  fi
  cat <<MSG

shoal is running: server https://127.0.0.1:$PORT, a real agent (node $NODE, zone $NS) whose pods
run under runc, registry 127.0.0.1:$REG_PORT, and the example app in namespace $NS. Look at it with:

  export PATH=$ROOT/.venv/bin:\$PATH SHOAL_CONFIG=$SHOAL_CONFIG
  shoal get pods -n $NS -o wide
  shoal describe deployment sensor-gateway -n $NS
  shoal scale deployment sensor-gateway --replicas 5 -n $NS
  shoal get events -n $NS
  runc --root $RUNC_ROOT list

Logs: $(cd "$STATE" && ls -- *.log | sed "s#^#$STATE/#" | tr '\n' ' ')
The containers' logs (CRI format):
  $STATE/agent/pods/*/logs/gateway/0.log
Stop with: make demo-down$(env | grep -q '^SHOAL_DEMO_' && echo ' (with the same SHOAL_DEMO_* settings)')
MSG
}

# sweep: what a healthy agent leaves behind after its pods are deleted is nothing; if it did leave
# containers, conmons, mounts or pod cgroups (agent crashed, server gone), remove them and say so.
sweep() {
  local left=0 id pidfile point dir hier own_run_dir=1
  if pgrep -f -- "--runc-root $RUNC_ROOT( |\$)" >/dev/null; then
    own_run_dir=0; say "another agent uses $RUN_DIR: only containers and mounts under $STATE are swept"
  fi
  for id in $(runc_ids); do
    runc --root "$RUNC_ROOT" state "$id" 2>/dev/null | jq -e --arg s "$STATE/" '.bundle | startswith($s)' \
      >/dev/null || continue
    left=1; say "  removing container $id the agent left"
    runc --root "$RUNC_ROOT" kill --all "$id" KILL 2>/dev/null || true
    runc --root "$RUNC_ROOT" delete --force "$id" 2>/dev/null || true
  done
  for pidfile in "$STATE"/agent/containers/*/conmon.pid; do
    [ -f "$pidfile" ] || continue
    alive "$pidfile" conmon || continue
    left=1; say "  killing conmon $(cat "$pidfile")"; kill -KILL "$(cat "$pidfile")" || true
  done
  for point in $(awk -v s="$STATE/" -v r="$RUN_DIR/" -v o="$own_run_dir" \
                 'index($5, s) == 1 || (o && index($5, r) == 1) {print $5}' /proc/self/mountinfo |
                 sort -r); do
    left=1; say "  unmounting $point"; umount -l "$point" || true
  done
  [ "$own_run_dir" = 1 ] || { [ "$left" = 0 ] || say "warning: the agent had left the above behind"; return; }
  for hier in /sys/fs/cgroup/*/ /sys/fs/cgroup/; do
    dir=${hier%/}$CGROUP_PARENT
    [ -d "$dir" ] || continue
    # depth first; a cgroup with processes in it refuses rmdir, which is what we want to notice
    while read -r d; do
      [ "$d" = "$dir" ] || { left=1; say "  removing cgroup $d"; }
      rmdir "$d" 2>/dev/null || say "  cgroup $d is still in use"
    done < <(find "$dir" -depth -type d)
  done
  rmdir "$RUNC_ROOT" "$RUN_DIR/netns" "$RUN_DIR" 2>/dev/null || true
  [ "$left" = 0 ] || say "warning: the agent had left the above behind; see $STATE/agent.log"
  remove_pod_network
}

# An agent in this network namespace other than the demo's (which is stopped by now)?
other_agent() {
  local p me
  me=$(readlink /proc/self/ns/net)
  for p in $(pgrep -f 'shoal(\.| )agent'); do
    [ "$(readlink "/proc/$p/ns/net" 2>/dev/null)" = "$me" ] && return 0
  done
  return 1
}

# The agent leaves the node's pod network (bridge, nftables Service table) in place when it stops,
# like its containers; the demo removes them unless another agent here still uses them.
remove_pod_network() {
  local bridge ports
  if other_agent; then
    say "another shoal agent runs here: the pod network (bridge, nft table ip shoal) is left to it"; return
  fi
  bridge=$(jq -r '.plugins[0].bridge // empty' "$STATE/agent/net/shoal.conflist" 2>/dev/null || true)
  # ip, not /sys/class/net: sysfs shows the devices of the namespace that mounted it
  if [ -n "$bridge" ] && ip link show "$bridge" >/dev/null 2>&1; then
    ports=$(ip -o link show master "$bridge" | awk -F': ' '{print $2}' | tr '\n' ' ')
    if [ -z "$ports" ]; then
      ip link delete "$bridge" && say "removed the pods' bridge $bridge"
    else
      say "bridge $bridge still has ports ($ports); left in place"
    fi
  fi
  if nft list table ip shoal >/dev/null 2>&1; then
    nft delete table ip shoal && say "removed the nftables table ip shoal (Service addresses)"
  fi
}

down() {
  if alive "$STATE/server.pid" "shoal server" && server_up >/dev/null 2>&1; then
    if alive "$STATE/agent.pid" shoal.agent; then
      say "deleting the example app and waiting for the agent to remove its containers"
      manifests | "$SHOAL" delete -f - --ignore-not-found >/dev/null || true
      for pod in $("$SHOAL" get pods -n "$NS" -o name 2>/dev/null); do
        "$SHOAL" delete -n "$NS" "$pod" --ignore-not-found >/dev/null || true
      done
      wait_for "$WAIT" no_pods_left ||
        say "warning: pods or containers still there after ${WAIT}s; see $STATE/agent.log"
    fi
    "$SHOAL" delete -f "$ROOT/examples/demo/namespace.yaml" --ignore-not-found >/dev/null 2>&1 || true
  fi
  stop "$STATE/agent.pid" shoal.agent "agent"
  stop "$STATE/sim.pid" "sim nodes" "hollow nodes"
  stop "$STATE/server.pid" "shoal server" "server"
  stop "$STATE/registry.pid" docker-registry "registry"
  sweep
  if [ -f "$STATE/ip_forward.before" ]; then
    sysctl -qw net.ipv4.ip_forward="$(cat "$STATE/ip_forward.before")" && rm -f "$STATE/ip_forward.before"
  fi
  say "demo stopped (state kept in $STATE; rm -rf $STATE to start afresh)"
}

case "${1:-up}" in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
