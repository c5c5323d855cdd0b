#!/usr/bin/env bash
# Benchmark figures, measured side by side in one run, written to docs/benchmarks.md:
# start -> first message and stop of the example dataflow, node -> daemon -> node latency
# and throughput (real node processes through a real daemon), then the Go micro-benchmarks.
# `make bench` builds the example nodes first. Takes about 3 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
OUT=${OUT:-docs/benchmarks.md}
mkdir -p bench/build
$GO build -o bench/build/latency-node ./bench/latency-node
$GO run ./bench/cmd/benchreport -latency-node bench/build/latency-node \
  -example examples/rust-dataflow -out "$OUT" -command "make bench" "$@"
echo "micro-benchmarks..." >&2
{
  echo '```'
  $GO test -run '^$' -bench . -benchmem -benchtime 1s ./proto ./daemon 2>&1 |
    grep -E '^(Benchmark|goos|goarch|cpu|ok|FAIL)' || true
  echo '```'
} >>"$OUT"
echo "wrote $OUT" >&2
