#!/usr/bin/env bash
# Failure demo: two daemons (robot-a, robot-b), a dataflow over both, kill -9 robot-b's
# daemon, then `doractl stop` answers at once: robot-b's nodes are lost, naming the daemon
# and how its death was confirmed. Runs on its own ports and state folder, so it does not
# disturb a cluster already running here. Exits non-zero only if the demo itself fails
# (the stop's own non-zero exit is the expected outcome and is printed).
set -euo pipefail
cd "$(dirname "$0")/.."
D=$PWD/bin/doractl
DF=examples/failure-demo/dataflow.yml

# Its own ports (DEMO_CONTROL_PORT, DEMO_DAEMON_PORT, DEMO_GOSSIP_PORT, DEMO_NODE_PORT
# move them) and state folder: DORA_COORDINATOR_ADDR and DORACTL_STATE_DIR are ignored, so
# a cluster already running here is never touched.
STATE=$(mktemp -d "${TMPDIR:-/tmp}/doractl-demo-failure.XXXXXX")
export DORACTL_STATE_DIR=$STATE
export DORA_COORDINATOR_ADDR=127.0.0.1:${DEMO_CONTROL_PORT:-7612}
UP_ARGS=(--daemon-port "${DEMO_DAEMON_PORT:-7690}" --gossip-port "${DEMO_GOSSIP_PORT:-7692}"
         --node-port "${DEMO_NODE_PORT:-7691}" --profile local)

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }
cleanup() { "$D" destroy --grace-duration 1s >/dev/null 2>&1 || true; rm -rf "$STATE"; }
fail() {
  echo "demo-failure: $*" >&2
  echo "--- last lines of the coordinator's log:" >&2
  tail -n 25 "$STATE/up/coordinator.log" >&2 || true
  cleanup
  exit 1
}
trap 'echo "demo failed; cleaning up" >&2; cleanup' ERR INT TERM

step "$D" up --machines robot-a,robot-b "${UP_ARGS[@]}"
step "$D" members
printf '\n\033[1m$ %s\033[0m\n' "$D start $DF --name failure-demo --detach"
"$D" start "$DF" --name failure-demo --detach

# Wait (bounded) until every node runs (6 nodes + the dataflow itself).
for _ in $(seq 100); do
  if [ "$("$D" list -o json | grep -o '"status": *"running"' | wc -l)" -ge 7 ]; then break; fi
  sleep 0.1
done
step "$D" list

pid=$(cat "$STATE/up/daemon-robot-b.pid")
printf '\n\033[1m$ kill -9 %s   # daemon-robot-b\033[0m\n' "$pid"
kill -9 "$pid"

printf '\n\033[1m$ %s\033[0m\n' "$D stop failure-demo --grace-duration 5s"
start=$(date +%s%N)
code=0
"$D" stop failure-demo --grace-duration 5s || code=$?   # (|| keeps the ERR trap out of it)
ms=$(( ($(date +%s%N) - start) / 1000000 ))
echo "(stop exited with status $code after ${ms} ms: non-zero is expected, robot-b's nodes were lost)"
[ "$code" -ne 0 ] || fail "stop exited 0, but robot-b's nodes should have been lost"
[ "$ms" -lt 3000 ] || fail "stop took ${ms} ms: the death of robot-b did not answer it at once"

step "$D" members
step "$D" destroy --grace-duration 1s
trap - ERR INT TERM
rm -rf "$STATE"
echo
echo "demo-failure done: stop answered in ${ms} ms with the lost nodes explained; nothing left running."
