#!/usr/bin/env bash
# The main job, end to end: a local cluster runs the example dataflow, shows it, stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
D=./bin/doractl
DF=examples/rust-dataflow/dataflow.yml

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }
cleanup() { $D destroy >/dev/null 2>&1 || true; }
trap 'echo "demo failed; cleaning up" >&2; cleanup' ERR INT TERM

# The default ports, as a new user gets them; DEMO_CONTROL_PORT (or DORA_COORDINATOR_ADDR),
# DEMO_DAEMON_PORT, DEMO_GOSSIP_PORT and DEMO_NODE_PORT move them.
[ -n "${DEMO_CONTROL_PORT:-}" ] && export DORA_COORDINATOR_ADDR=127.0.0.1:$DEMO_CONTROL_PORT
UP_ARGS=()
[ -n "${DEMO_DAEMON_PORT:-}" ] && UP_ARGS+=(--daemon-port "$DEMO_DAEMON_PORT")
[ -n "${DEMO_GOSSIP_PORT:-}" ] && UP_ARGS+=(--gossip-port "$DEMO_GOSSIP_PORT")
[ -n "${DEMO_NODE_PORT:-}" ] && UP_ARGS+=(--node-port "$DEMO_NODE_PORT")

step $D up ${UP_ARGS[@]+"${UP_ARGS[@]}"}
step $D members
step $D check "$DF"
printf '\n\033[1m$ %s\033[0m\n' "$D start $DF --name demo --detach"
id=$($D start "$DF" --name demo --detach)
echo "$id"
step $D list

# Wait (bounded) for the sink's first messages, then show them.
for _ in $(seq 50); do
  if $D logs demo rust-sink 2>/dev/null | grep -q 'received'; then break; fi
  sleep 0.1
done
step $D logs demo rust-sink --tail 5
step $D stop demo --grace-duration 5s
step $D list
step $D destroy
trap - ERR INT TERM
echo
echo "demo done: the cluster is gone (no doractl or node process left)."
