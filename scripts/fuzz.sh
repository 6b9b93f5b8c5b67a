#!/usr/bin/env bash
# Runs every fuzz target of eventflow (func FuzzXxx(f *testing.F) in a
# *_test.go file), one after another, each for FUZZTIME. Go fuzzes one target
# per `go test -fuzz` invocation, so each runs as
#   go test -run '^$' -fuzz '^FuzzXxx$' -fuzztime $FUZZTIME ./pkg
# The seed corpora (f.Add and <pkg>/testdata/fuzz/FuzzXxx/) also run in every
# plain `go test ./...`. Exits non-zero if any target fails; a failing input
# is written to <pkg>/testdata/fuzz/FuzzXxx/ by go test: fix the bug and
# commit the input with the fix, so it stays a regression test.
#
#   FUZZTIME      time per target, a Go duration (default 10s; CI uses 5s;
#                 try 5m or more for a real hunt)
#   FUZZ_TARGETS  only the targets whose name matches this extended regexp
#                 (default: all)
#   FUZZ_TIMEOUT  go test -timeout of each run (default 10m; raise it with
#                 a FUZZTIME over about 9m)
#   FUZZ_PARALLEL fuzzing workers per target (default: GOMAXPROCS)
#
#   scripts/fuzz.sh                                  # every target, 10s each
#   FUZZTIME=10m FUZZ_TIMEOUT=15m FUZZ_TARGETS=Filter scripts/fuzz.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="$PATH:/usr/local/go/bin:$HOME/go/bin"
FUZZTIME="${FUZZTIME:-10s}"
FUZZ_TARGETS="${FUZZ_TARGETS:-.}"
FUZZ_TIMEOUT="${FUZZ_TIMEOUT:-10m}"

# package directory and target name, one pair a line, sorted.
targets=$(grep -rEo --include='*_test.go' --exclude-dir=testdata --exclude-dir=.git \
  '^func Fuzz[A-Za-z0-9_]*\(f \*testing\.F\)' . |
  sed -E 's|^\./(.*)/[^/]*_test\.go:func (Fuzz[A-Za-z0-9_]*)\(.*|\1 \2|' |
  grep -E " .*(${FUZZ_TARGETS})" | sort || true)
if [[ -z $targets ]]; then
  echo "fuzz: no targets match ${FUZZ_TARGETS}" >&2
  exit 1
fi

failed=()
start=$SECONDS
while read -r dir name; do
  printf '\n===== fuzz %s ./%s for %s\n' "$name" "$dir" "$FUZZTIME"
  t0=$SECONDS
  # shellcheck disable=SC2086  # FUZZ_PARALLEL is one optional flag
  if go test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" -timeout "$FUZZ_TIMEOUT" \
    ${FUZZ_PARALLEL:+-parallel "$FUZZ_PARALLEL"} "./$dir"; then
    printf '===== %s passed (%ds)\n' "$name" $((SECONDS - t0))
  else
    printf '===== %s FAILED (%ds): the input is under %s/testdata/fuzz/%s/\n' "$name" $((SECONDS - t0)) "$dir" "$name"
    failed+=("$dir $name")
  fi
done <<<"$targets"

printf '\n===== fuzzing: %d targets, %ds\n' "$(wc -l <<<"$targets")" $((SECONDS - start))
if ((${#failed[@]} > 0)); then
  printf 'failed: %s\n' "${failed[@]}"
  exit 1
fi
