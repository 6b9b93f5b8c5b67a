#!/usr/bin/env bash
# eventflow's fault-injection suite (cmd/eventflow-chaos) against the real
# PostgreSQL and Apache Kafka of scripts/services.sh.
#
# Usage: scripts/chaos.sh [short|full|table] [eventflow-chaos flags...]
#   short  every fault once, in a seeded order, in one run of 200 orders
#          (what CI runs after the go tests; about 3-4 minutes on 2 cores)
#   full   each fault alone, then faults mixed at random, then the
#          delivery-guarantee table (about 30 minutes)
#   table  the delivery-guarantee table only: the same run with the broker
#          and the relay killed, for each EVENTFLOW_DELIVERY_GUARANTEE
# Extra flags go to eventflow-chaos (e.g. -seed 42 to replay a run; see
# go run ./cmd/eventflow-chaos -h).
#
# The services are started if they are not running (and then stopped at the
# end); running ones are reused and left running. The broker is SIGKILLed
# and PostgreSQL restarted during the run: other users of the same services
# see that too. Exits non-zero when an invariant fails.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="$PATH:/usr/local/go/bin:$HOME/go/bin"
SERVICES="$ROOT/scripts/services.sh"
mode="${1:-short}"
(($#)) && shift

started=()
for svc in postgres kafka; do
  "$SERVICES" status "$svc" >/dev/null 2>&1 || started+=("$svc")
done
# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
  local rc=$?
  rm -rf "$bin_dir"
  if ((${#started[@]})); then
    "$SERVICES" stop "${started[@]}" || true
  fi
  exit "$rc"
}
bin_dir="$(mktemp -d)"
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$SERVICES" start postgres kafka
eval "$("$SERVICES" env)"

go build -o "$bin_dir/eventflow" ./cmd/eventflow
go build -o "$bin_dir/eventflow-chaos" ./cmd/eventflow-chaos
chaos() { "$bin_dir/eventflow-chaos" -eventflow "$bin_dir/eventflow" "$@"; }

case $mode in
  short) chaos -scenario all -orders 160 -rate 2.5 -settle 2m -timeout 8m "$@" ;;
  full)
    rc=0
    chaos -scenario every -orders 200 -rate 5 -timeout 50m "$@" || rc=$?
    chaos -table -orders 300 -rate 5 -timeout 20m "$@" || rc=$?
    exit "$rc"
    ;;
  table) chaos -table -orders 300 -rate 5 -timeout 20m "$@" ;;
  *)
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
