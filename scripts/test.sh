#!/usr/bin/env bash
# eventflow's full test tier: real PostgreSQL, Apache Kafka and Mailpit.
#   1. install what is missing (scripts/install-deps.sh)
#   2. start the services fresh (scripts/services.sh) and a three-broker Kafka
#      cluster (scripts/kafka-cluster.sh), export their addresses
#   3. go test ./... with EVENTFLOW_TEST_FULL=1
#   4. go test -race on RACE_PKGS
#   5. every fuzz target for FUZZTIME (scripts/fuzz.sh)
#   6. the fault-injection suite's short form (scripts/chaos.sh short)
# The services and the cluster are always stopped on exit. Exits non-zero if
# a service cannot start or any test fails.
#
#   GOTEST_FLAGS  extra flags for step 3 (e.g. "-v -run TestOutbox")
#   RACE_PKGS     packages for step 4 (default ./...; empty string skips it)
#   FUZZTIME      time per fuzz target in step 5 (default 5s; 0 skips it)
#   CHAOS         step 6: short (default), full, table, or none to skip it
#   EVENTFLOW_KEEP_SERVICES=1  keep the state of a previous run instead of
#                 starting from empty data (the default wipes it first)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="$PATH:/usr/local/go/bin:$HOME/go/bin"
SERVICES="$ROOT/scripts/services.sh"
CLUSTER="$ROOT/scripts/kafka-cluster.sh"
RACE_PKGS="${RACE_PKGS-./...}"
FUZZTIME="${FUZZTIME:-5s}"

phase() { printf '\n===== [%s] %s\n' "$(date '+%F %T')" "$*"; }

# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
  local rc=$?
  phase "stopping services"
  "$CLUSTER" stop || true
  "$SERVICES" stop || true
  phase "done (exit $rc)"
  exit "$rc"
}

phase "installing dependencies"
"$ROOT/scripts/install-deps.sh"

trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

phase "starting services"
if [[ ${EVENTFLOW_KEEP_SERVICES:-} != 1 ]]; then
  "$SERVICES" clean
  "$CLUSTER" clean
fi
"$SERVICES" start
"$CLUSTER" start
eval "$("$SERVICES" env)"
eval "$("$CLUSTER" env)"
export EVENTFLOW_TEST_FULL=1
"$SERVICES" env
"$CLUSTER" env

rc=0
phase "go test ./... ${GOTEST_FLAGS:-}"
# shellcheck disable=SC2086  # GOTEST_FLAGS is a list of flags
go test -count=1 -timeout 25m ${GOTEST_FLAGS:-} ./... || rc=$?
# Only TestKafkaClusterLosesNothing uses the cluster, and it skips under
# -race: give its three JVMs' CPU and memory back to the steps below.
"$CLUSTER" stop || true

if [[ -n $RACE_PKGS ]]; then
  phase "go test -race $RACE_PKGS"
  # shellcheck disable=SC2086  # RACE_PKGS is a list of packages
  go test -count=1 -race -timeout 25m $RACE_PKGS || rc=$?
fi

if [[ $FUZZTIME != 0 ]]; then
  phase "fuzzing each target for $FUZZTIME"
  FUZZTIME="$FUZZTIME" "$ROOT/scripts/fuzz.sh" || rc=$?
fi

if [[ ${CHAOS:-short} != none ]]; then
  phase "fault-injection suite (scripts/chaos.sh ${CHAOS:-short})"
  "$ROOT/scripts/chaos.sh" "${CHAOS:-short}" || rc=$?
fi

phase "tests finished (status $rc)"
exit "$rc"
