#!/usr/bin/env bash
# eventflow's full test tier: real PostgreSQL, Apache Kafka and Mailpit.
#   1. install what is missing (scripts/install-deps.sh)
#   2. start the services fresh (scripts/services.sh), export their addresses
#   3. go test ./... with EVENTFLOW_TEST_FULL=1
#   4. go test -race on RACE_PKGS
# The services are always stopped on exit. Exits non-zero if a service cannot
# start or any test fails.
#
#   GOTEST_FLAGS  extra flags for step 3 (e.g. "-v -run TestOutbox")
#   RACE_PKGS     packages for step 4 (default ./...; empty string skips it)
#   EVENTFLOW_KEEP_SERVICES=1  keep the state of a previous run instead of
#                 starting from empty data (the default wipes it first)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="$PATH:/usr/local/go/bin:$HOME/go/bin"
SERVICES="$ROOT/scripts/services.sh"
RACE_PKGS="${RACE_PKGS-./...}"

phase() { printf '\n===== [%s] %s\n' "$(date '+%F %T')" "$*"; }

# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
  local rc=$?
  phase "stopping services"
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
fi
"$SERVICES" start
eval "$("$SERVICES" env)"
export EVENTFLOW_TEST_FULL=1
"$SERVICES" env

rc=0
phase "go test ./... ${GOTEST_FLAGS:-}"
# shellcheck disable=SC2086  # GOTEST_FLAGS is a list of flags
go test -count=1 -timeout 25m ${GOTEST_FLAGS:-} ./... || rc=$?

if [[ -n $RACE_PKGS ]]; then
  phase "go test -race $RACE_PKGS"
  # shellcheck disable=SC2086  # RACE_PKGS is a list of packages
  go test -count=1 -race -timeout 25m $RACE_PKGS || rc=$?
fi

phase "tests finished (status $rc)"
exit "$rc"
