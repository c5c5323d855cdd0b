#!/usr/bin/env bash
# Benchmark figures, measured side by side in one run, written to docs/benchmarks.md:
# start -> first message and stop of the example dataflow, node -> daemon -> node latency
# and throughput (real node processes through a real daemon), the same across two daemons
# (node -> daemon -> TCP link -> daemon -> node), then the Go micro-benchmarks.
# Each part replaces only its own section of the file (between <!-- BEGIN name --> and
# <!-- END name --> markers: benchreport, hopfloor, microbenchmarks); the liveness section
# (make bench-liveness) and everything else is left alone.
# `make bench` builds the example nodes first. Takes about 3 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
OUT=${OUT:-docs/benchmarks.md}
mkdir -p bench/build
$GO build -o bench/build/latency-node ./bench/latency-node
$GO build -o bench/build/benchreport ./bench/cmd/benchreport
bench/build/benchreport -latency-node bench/build/latency-node \
  -example examples/rust-dataflow -out "$OUT" -command "make bench" "$@"
echo "hop floor..." >&2
$GO build -o bench/build/hopfloor ./bench/cmd/hopfloor
floor=$(mktemp)
{
  echo '## The floor under the latency figures'
  echo
  echo 'A message from node to node makes two process-to-process hops (node to daemon, daemon to'
  echo 'node). `bench/cmd/hopfloor` measures one bare hop on this machine, right after the figures'
  echo 'above and paced the same way: 8 bytes over a unix socket, no framing, codec or routing.'
  echo 'Twice its p50 is the least any design with a routing daemon can reach here.'
  echo
  echo '| hop | messages | p50 | p99 |'
  echo '| --- | --- | --- | --- |'
  for _ in 1 2 3; do bench/build/hopfloor; done
} >"$floor"
bench/build/benchreport -section hopfloor -in "$floor" -out "$OUT"
rm -f "$floor"
echo "micro-benchmarks..." >&2
micro=$(mktemp)
trap 'rm -f "$micro"' EXIT
load=$(cut -d' ' -f1-3 /proc/loadavg)
{
  echo '## Micro-benchmarks'
  echo
  echo "In-process, no node processes: \`go test -run '^\$' -bench . -benchmem -benchtime 1s ./proto ./daemon\`,"
  echo "run by \`make bench\` (scripts/bench.sh) right after the figures above."
  echo
  echo '| date | nproc | load average before |'
  echo '| --- | --- | --- |'
  echo "| $(date -u '+%Y-%m-%d %H:%M UTC') | $(nproc) | $load |"
  echo
  echo '```'
  $GO test -run '^$' -bench . -benchmem -benchtime 1s ./proto ./daemon 2>&1 |
    grep -E '^(Benchmark|goos|goarch|cpu|ok|FAIL)' || true
  echo '```'
} >"$micro"
bench/build/benchreport -section microbenchmarks -in "$micro" -out "$OUT"
echo "wrote $OUT" >&2
