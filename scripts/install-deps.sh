#!/usr/bin/env bash
# Installs what eventflow's full test tier (scripts/test.sh) needs on a fresh
# Debian machine, and nothing that is already there:
#   - apt: kcat, curl, postgresql-15 (only if its initdb is missing)
#   - Mailpit (go install, pinned version) for the SMTP sink
#   - the Apache Kafka broker jars (Maven, via scripts/kafka/pom.xml), cached
# Needs Go, Java 17+ and Maven already present. Idempotent; prints what it installs.
set -euo pipefail

SCRIPTS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
MAILPIT_MODULE=github.com/axllent/mailpit
MAILPIT_VERSION="${EVENTFLOW_MAILPIT_VERSION:-v1.33.1}"
PG_BIN="${EVENTFLOW_PG_BIN:-/usr/lib/postgresql/15/bin}"

log() { printf '[install-deps %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

export PATH="$PATH:/usr/local/go/bin:$HOME/go/bin"

# ---- apt packages
apt_missing=()
command -v kcat >/dev/null || apt_missing+=(kcat)
command -v curl >/dev/null || apt_missing+=(curl)
[[ -x $PG_BIN/initdb ]] || apt_missing+=(postgresql-15)
if ((${#apt_missing[@]})); then
  SUDO=
  ((EUID == 0)) || SUDO=sudo
  log "apt-get install ${apt_missing[*]}"
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    "${apt_missing[@]}" >/dev/null
fi
# The Debian package starts its own cluster on port 5432; the tests do not use it.

# ---- toolchains this script cannot install for you
command -v go >/dev/null || die "go not found (expected in /usr/local/go/bin)"
command -v java >/dev/null || die "java not found (Java 17+ is needed to run Kafka)"
command -v mvn >/dev/null || die "mvn not found (Maven is needed to fetch Kafka)"

# ---- Mailpit
mailpit_installed_version() {
  local bin
  for bin in "$(command -v mailpit 2>/dev/null || true)" \
    "$(go env GOBIN)/mailpit" "$(go env GOPATH)/bin/mailpit"; do
    [[ -n $bin && -x $bin && ! -d $bin ]] || continue
    # the module version recorded in the binary; no network needed
    go version -m "$bin" 2>/dev/null | awk -v m="$MAILPIT_MODULE" '$1 == "mod" && $2 == m {print $3; exit}'
    return 0
  done
}
if [[ "$(mailpit_installed_version)" != "$MAILPIT_VERSION" ]]; then
  log "go install $MAILPIT_MODULE@$MAILPIT_VERSION (takes a minute or two)"
  # from /, so that no go.mod (this repo's or another) takes part
  (cd / && GOFLAGS='' go install "$MAILPIT_MODULE@$MAILPIT_VERSION")
fi

# ---- Kafka broker jars (fetched once into the cache; prints the folder)
libs=$("$SCRIPTS_DIR/services.sh" kafka-libs)
[[ -n $(ls -A "$libs" 2>/dev/null) ]] || die "no Kafka jars in $libs"

log "ok: kcat, curl, postgresql-15, mailpit $MAILPIT_VERSION, kafka jars in $libs"
