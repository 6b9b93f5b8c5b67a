#!/usr/bin/env bash
# eventflow's benchmark (make bench): every stage with its same-run baseline,
# on the real stack (PostgreSQL, Apache Kafka, an SMTP sink) and then on the
# embedded defaults. Results: a table on stdout, and bench-results/<stack>.json
# and .html (charts). See docs/performance.md.
#   1. install what is missing (scripts/install-deps.sh)
#   2. start PostgreSQL and Kafka (scripts/services.sh) unless they run
#   3. go run ./cmd/eventflow-bench -stack real, then -stack embedded
# Services this script started are stopped on exit; running ones are left.
#
#   STACKS         which stacks, in order (default "real embedded")
#   STAGES         stages of each run (default all: intake, relay, notifier,
#                  e2e, memory; soak is its own: make bench-soak)
#   BENCH_FLAGS    more flags for eventflow-bench, e.g. "-memory-orders 200000"
#   PROFILE        a folder: CPU and allocation profiles of each stage
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="$PATH:/usr/local/go/bin:$HOME/go/bin"
SERVICES="$ROOT/scripts/services.sh"
STACKS="${STACKS:-real embedded}"
STAGES="${STAGES:-all}"

phase() { printf '\n===== [%s] %s\n' "$(date '+%F %T')" "$*"; }

started=""
# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
  local rc=$?
  if [[ -n $started ]]; then
    phase "stopping the services this run started"
    "$SERVICES" stop || true
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ " $STACKS " == *" real "* ]]; then
  phase "installing dependencies"
  "$ROOT/scripts/install-deps.sh"
  # The status is read whole first: under pipefail, grep -q closing the
  # pipe early would make a running service look stopped, and this script
  # would then stop, at its end, services it did not start.
  status="$("$SERVICES" status)"
  if ! grep -q '^postgres *running' <<<"$status" || ! grep -q '^kafka *running' <<<"$status"; then
    phase "starting services"
    "$SERVICES" start
    started=1
  fi
  eval "$("$SERVICES" env)"
fi

flags=(-stages "$STAGES")
[[ -n ${PROFILE:-} ]] && flags+=(-profile "$PROFILE")
kafka_version="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$ROOT/scripts/kafka/pom.xml" | head -n1)"

phase "building"
mkdir -p "${TMPDIR:-/tmp}/eventflow-bench"
bin="${TMPDIR:-/tmp}/eventflow-bench/eventflow"
go build -o "$bin" ./cmd/eventflow
go build -o "${bin}-bench" ./cmd/eventflow-bench

for stack in $STACKS; do
  phase "benchmark on the $stack stack"
  # shellcheck disable=SC2086  # BENCH_FLAGS is a list of flags
  "${bin}-bench" -stack "$stack" -eventflow "$bin" -kafka-version "$kafka_version" "${flags[@]}" ${BENCH_FLAGS:-}
done
