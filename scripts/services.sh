#!/usr/bin/env bash
# Real backing services for eventflow's full test tier:
#   PostgreSQL 15, Apache Kafka 4.x (KRaft, single node), Mailpit (SMTP sink).
#
# Usage: scripts/services.sh COMMAND [postgres|kafka|mailpit ...]
#   start [svc...]   start the services (all by default); a running one is reused
#   stop  [svc...]   stop them (all by default); safe to call when already stopped
#   restart [svc...] stop, then start
#   status [svc...]  print the state of each; exit 0 only if all asked are running
#   env              print the export lines the Go tests read
#   clean            stop everything and delete the state directory
#   kafka-libs       fetch the Kafka jars into the cache (once) and print their folder
#
# Settings (environment):
#   EVENTFLOW_SERVICES_DIR   state: data, logs, pid files   (/tmp/eventflow-services)
#   EVENTFLOW_CACHE_DIR      downloaded Kafka jars           ($HOME/.cache/eventflow)
#   EVENTFLOW_PG_PORT        PostgreSQL port                 (54329)
#   EVENTFLOW_KAFKA_PORT     Kafka client (PLAINTEXT) port   (19092)
#   EVENTFLOW_KAFKA_CONTROLLER_PORT  KRaft controller port   (19093)
#   EVENTFLOW_KAFKA_VERSION  Kafka version to fetch/run      (the one in scripts/kafka/pom.xml)
#   EVENTFLOW_SMTP_PORT      Mailpit SMTP port               (11025)
#   EVENTFLOW_MAILPIT_PORT   Mailpit HTTP UI/API port        (18025)
#   EVENTFLOW_SERVICE_WAIT   seconds to wait for each service to be ready (90)
#
# Everything listens on 127.0.0.1 only. Ports 9092 and 8080 are deliberately left
# alone: the application's embedded defaults use them.
set -euo pipefail

SCRIPTS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
STATE_DIR="${EVENTFLOW_SERVICES_DIR:-/tmp/eventflow-services}"
[[ $STATE_DIR == /* ]] || STATE_DIR="$PWD/$STATE_DIR"
CACHE_DIR="${EVENTFLOW_CACHE_DIR:-$HOME/.cache/eventflow}"
PG_PORT="${EVENTFLOW_PG_PORT:-54329}"
KAFKA_PORT="${EVENTFLOW_KAFKA_PORT:-19092}"
KAFKA_CONTROLLER_PORT="${EVENTFLOW_KAFKA_CONTROLLER_PORT:-19093}"
SMTP_PORT="${EVENTFLOW_SMTP_PORT:-11025}"
MAILPIT_PORT="${EVENTFLOW_MAILPIT_PORT:-18025}"
WAIT_SECS="${EVENTFLOW_SERVICE_WAIT:-90}"

KAFKA_POM="$SCRIPTS_DIR/kafka/pom.xml"
KAFKA_LOG4J="$SCRIPTS_DIR/kafka/log4j2.properties"
KAFKA_VERSION="${EVENTFLOW_KAFKA_VERSION:-$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$KAFKA_POM" | head -n1)}"
KAFKA_HOME="$CACHE_DIR/kafka-$KAFKA_VERSION"
KAFKA_LIBS="$KAFKA_HOME/libs"
KAFKA_HEAP="${EVENTFLOW_KAFKA_HEAP:--Xms256m -Xmx768m}"

PG_BIN="${EVENTFLOW_PG_BIN:-/usr/lib/postgresql/15/bin}"
PG_DIR="$STATE_DIR/postgres"
PG_DATA="$PG_DIR/data"
PG_SOCK="$PG_DIR/run"
PG_LOG="$PG_DIR/postgres.log"
PG_DB=eventflow_test
PG_USER=eventflow
PG_PASSWORD=eventflow

KAFKA_DIR="$STATE_DIR/kafka"
KAFKA_DATA="$KAFKA_DIR/data"
KAFKA_PROPS="$KAFKA_DIR/server.properties"
KAFKA_LOG="$KAFKA_DIR/kafka.log"
KAFKA_PID="$KAFKA_DIR/kafka.pid"

MAILPIT_DIR="$STATE_DIR/mailpit"
MAILPIT_LOG="$MAILPIT_DIR/mailpit.log"
MAILPIT_PID="$MAILPIT_DIR/mailpit.pid"
# Mailpit keeps its messages in $MAILPIT_DIR/mailpit.db (kept across restarts;
# `clean` removes it). Tests can empty it with DELETE /api/v1/messages.

ALL_SERVICES=(postgres kafka mailpit)

# ---------------------------------------------------------------- helpers

log() { printf '[services %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# port_open PORT: true if something accepts TCP connections on 127.0.0.1:PORT.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# pid_alive PIDFILE PATTERN: true if the pid in PIDFILE runs and its command line
# contains PATTERN (guards against a recycled pid).
pid_alive() {
  local pidfile=$1 pattern=$2 pid
  [[ -s $pidfile ]] || return 1
  pid=$(<"$pidfile")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  [[ -r /proc/$pid/cmdline ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$pattern"
}

# stop_pid PIDFILE PATTERN NAME: TERM, wait up to 30 s, then KILL.
stop_pid() {
  local pidfile=$1 pattern=$2 name=$3 pid i
  if ! pid_alive "$pidfile" "$pattern"; then
    rm -f "$pidfile"
    return 0
  fi
  pid=$(<"$pidfile")
  log "stopping $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 300; i++)); do
    [[ -e /proc/$pid ]] || break
    # a zombie child of ours counts as gone
    [[ $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) == Z ]] && break
    sleep 0.1
  done
  if [[ -e /proc/$pid ]] && [[ $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) != Z ]]; then
    log "$name did not stop in 30 s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.5
  fi
  rm -f "$pidfile"
}

# wait_for NAME PIDFILE PATTERN LOGFILE CHECK...: polls CHECK until it succeeds,
# the process dies, or WAIT_SECS pass. On failure prints the log tail and exits.
wait_for() {
  local name=$1 pidfile=$2 pattern=$3 logfile=$4
  shift 4
  local deadline=$((SECONDS + WAIT_SECS))
  while ! "$@" >/dev/null 2>&1; do
    if [[ -n $pidfile ]] && ! pid_alive "$pidfile" "$pattern"; then
      log "$name exited during startup; last lines of $logfile:"
      tail -n 40 "$logfile" >&2 || true
      exit 1
    fi
    if ((SECONDS >= deadline)); then
      log "$name not ready after ${WAIT_SECS}s; last lines of $logfile:"
      tail -n 40 "$logfile" >&2 || true
      exit 1
    fi
    sleep 0.5
  done
}

# ---------------------------------------------------------------- PostgreSQL

# as_pg CMD...: run CMD as the postgres OS user when we are root (initdb and
# postgres refuse to run as root), else as ourselves.
as_pg() {
  if ((EUID == 0)); then
    # from /, which user postgres can always enter (the caller's cwd may be private)
    (cd / && runuser -u postgres -- "$@")
  else
    "$@"
  fi
}

pg_running() {
  [[ -f $PG_DATA/postmaster.pid ]] && as_pg "$PG_BIN/pg_ctl" status -D "$PG_DATA" >/dev/null 2>&1
}

pg_ready() { "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -d postgres -U postgres; }

psql_admin() { # SQL on stdin
  as_pg "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_SOCK" -p "$PG_PORT" -U postgres -d postgres
}

start_postgres() {
  [[ -x $PG_BIN/initdb ]] || die "PostgreSQL 15 not found in $PG_BIN (run scripts/install-deps.sh)"
  mkdir -p "$PG_DIR"
  if ((EUID == 0)); then
    id postgres >/dev/null 2>&1 || die "no 'postgres' OS user to run PostgreSQL as"
    chmod 755 "$STATE_DIR"
    chown postgres: "$PG_DIR"
    runuser -u postgres -- test -x "$PG_DIR" ||
      die "user postgres cannot reach $PG_DIR; choose an EVENTFLOW_SERVICES_DIR outside a private folder"
  fi

  if pg_running; then
    log "postgres already running (port $PG_PORT)"
  else
    if port_open "$PG_PORT"; then
      die "port $PG_PORT is in use by another process; set EVENTFLOW_PG_PORT"
    fi
    if [[ ! -f $PG_DATA/PG_VERSION ]]; then
      log "postgres: initdb $PG_DATA"
      rm -rf "$PG_DATA"
      as_pg mkdir -p "$PG_DATA" "$PG_SOCK"
      as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 \
        >"$PG_DIR/initdb.log" 2>&1 || { tail -n 20 "$PG_DIR/initdb.log" >&2; die "initdb failed"; }
      as_pg tee -a "$PG_DATA/postgresql.conf" >/dev/null <<'EOF'

# --- eventflow test tier (scripts/services.sh) ---
max_connections = 200
shared_buffers = 128MB
logging_collector = off
log_min_messages = warning
EOF
    fi
    as_pg mkdir -p "$PG_SOCK"
    log "postgres: starting on 127.0.0.1:$PG_PORT"
    as_pg "$PG_BIN/pg_ctl" start -D "$PG_DATA" -l "$PG_LOG" -w -t "$WAIT_SECS" \
      -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $PG_SOCK" >/dev/null ||
      { tail -n 40 "$PG_LOG" >&2 || true; die "postgres failed to start"; }
  fi
  wait_for postgres "" "" "$PG_LOG" pg_ready

  # Role and database, idempotently.
  psql_admin <<EOF
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', '$PG_USER', '$PG_PASSWORD')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$PG_USER') \gexec
ALTER ROLE $PG_USER CREATEDB;
SELECT format('CREATE DATABASE %I OWNER %I', '$PG_DB', '$PG_USER')
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '$PG_DB') \gexec
EOF
  log "postgres ready: $(pg_url)"
}

stop_postgres() {
  if pg_running; then
    log "stopping postgres"
    as_pg "$PG_BIN/pg_ctl" stop -D "$PG_DATA" -m fast -w -t 60 >/dev/null
  fi
}

status_postgres() {
  if pg_running && pg_ready; then
    echo "postgres  running  127.0.0.1:$PG_PORT  data=$PG_DATA"
  else
    echo "postgres  stopped"
    return 1
  fi
}

pg_url() { echo "postgres://$PG_USER:$PG_PASSWORD@127.0.0.1:$PG_PORT/$PG_DB?sslmode=disable"; }

# ---------------------------------------------------------------- Kafka

# kafka_libs: make sure the broker's jars are in the cache (fetched once via
# Maven, marked complete by a marker file) and print their folder.
kafka_libs() {
  local marker="$KAFKA_HOME/.complete"
  if [[ ! -f $marker ]]; then
    command -v mvn >/dev/null || die "mvn not found (Maven is needed to fetch Kafka $KAFKA_VERSION)"
    log "fetching Apache Kafka $KAFKA_VERSION jars into $KAFKA_LIBS (once)"
    rm -rf "$KAFKA_LIBS.tmp"
    mkdir -p "$KAFKA_HOME"
    mvn -q -B -Dstyle.color=never -f "$KAFKA_POM" -Dkafka.version="$KAFKA_VERSION" \
      dependency:copy-dependencies -DoutputDirectory="$KAFKA_LIBS.tmp" >"$KAFKA_HOME/mvn.log" 2>&1 ||
      { tail -n 40 "$KAFKA_HOME/mvn.log" >&2; die "could not fetch Kafka $KAFKA_VERSION with Maven"; }
    rm -rf "$KAFKA_LIBS"
    mv "$KAFKA_LIBS.tmp" "$KAFKA_LIBS"
    echo "$KAFKA_VERSION" >"$marker"
  fi
  echo "$KAFKA_LIBS"
}

# JVM options shared by the broker and the storage tool.
kafka_jvm_opts() {
  local -n _opts=$1
  # shellcheck disable=SC2206  # KAFKA_HEAP is a list of JVM options
  _opts=($KAFKA_HEAP -XX:+UseG1GC -Djava.awt.headless=true
    "-Dlog4j2.configurationFile=$KAFKA_LOG4J" -cp "$KAFKA_LIBS/*")
}

# kafka_cluster_id: a fresh cluster id, 16 random bytes in base64url without
# padding (what `kafka-storage random-uuid` prints), without starting a JVM.
kafka_cluster_id() { head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n'; }

kafka_metadata_ok() {
  timeout 10 kcat -b "127.0.0.1:$KAFKA_PORT" -L -m 5 >/dev/null 2>&1
}

write_kafka_props() {
  cat >"$KAFKA_PROPS" <<EOF
# Generated by scripts/services.sh: single-node KRaft (combined broker+controller).
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$KAFKA_DATA
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=10
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
delete.topic.enable=true
EOF
}

start_kafka() {
  command -v java >/dev/null || die "java not found (Kafka needs Java 17+)"
  command -v kcat >/dev/null || die "kcat not found (run scripts/install-deps.sh)"
  mkdir -p "$KAFKA_DIR"
  if pid_alive "$KAFKA_PID" kafka.Kafka; then
    log "kafka already running (pid $(<"$KAFKA_PID"), port $KAFKA_PORT)"
  else
    rm -f "$KAFKA_PID"
    local p
    for p in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"; do
      port_open "$p" && die "port $p is in use by another process (set EVENTFLOW_KAFKA_PORT / EVENTFLOW_KAFKA_CONTROLLER_PORT)"
    done
    kafka_libs >/dev/null
    write_kafka_props
    if [[ ! -f $KAFKA_DATA/meta.properties ]]; then
      local cluster_id
      cluster_id=$(kafka_cluster_id)
      log "kafka: formatting storage (cluster id $cluster_id)"
      rm -rf "$KAFKA_DATA"
      local -a jvm
      kafka_jvm_opts jvm
      java "${jvm[@]}" kafka.tools.StorageTool format --cluster-id "$cluster_id" \
        --config "$KAFKA_PROPS" --ignore-formatted >"$KAFKA_DIR/format.log" 2>&1 ||
        { tail -n 20 "$KAFKA_DIR/format.log" >&2; die "kafka storage format failed"; }
    fi
    log "kafka $KAFKA_VERSION: starting on 127.0.0.1:$KAFKA_PORT"
    {
      echo "===== $(date '+%F %T') starting kafka.Kafka $KAFKA_VERSION"
    } >>"$KAFKA_LOG"
    # setsid: own session, so the broker outlives the caller and
    # ignores its ^C. A background job of a script is not a process-group leader,
    # so setsid does not fork and $! is java's own pid.
    local -a opts
    kafka_jvm_opts opts
    setsid java "${opts[@]}" kafka.Kafka "$KAFKA_PROPS" </dev/null >>"$KAFKA_LOG" 2>&1 &
    echo $! >"$KAFKA_PID"
  fi
  wait_for kafka "$KAFKA_PID" kafka.Kafka "$KAFKA_LOG" port_open "$KAFKA_PORT"
  wait_for kafka "$KAFKA_PID" kafka.Kafka "$KAFKA_LOG" kafka_metadata_ok
  log "kafka ready: 127.0.0.1:$KAFKA_PORT"
}

stop_kafka() { stop_pid "$KAFKA_PID" kafka.Kafka kafka; }

status_kafka() {
  if pid_alive "$KAFKA_PID" kafka.Kafka && kafka_metadata_ok; then
    echo "kafka     running  127.0.0.1:$KAFKA_PORT  pid=$(<"$KAFKA_PID") version=$KAFKA_VERSION"
  elif pid_alive "$KAFKA_PID" kafka.Kafka; then
    echo "kafka     starting/unhealthy  pid=$(<"$KAFKA_PID") (no metadata answer)"
    return 1
  else
    echo "kafka     stopped"
    return 1
  fi
}

# ---------------------------------------------------------------- Mailpit

mailpit_bin() {
  local c
  for c in "$(command -v mailpit 2>/dev/null || true)" \
    "$(go env GOBIN 2>/dev/null || true)/mailpit" \
    "$(go env GOPATH 2>/dev/null || echo "$HOME/go")/bin/mailpit" \
    "$HOME/go/bin/mailpit"; do
    [[ -n $c && -x $c && ! -d $c ]] && { echo "$c"; return 0; }
  done
  return 1
}

mailpit_ok() { curl -sf -m 5 "http://127.0.0.1:$MAILPIT_PORT/api/v1/info"; }

start_mailpit() {
  mkdir -p "$MAILPIT_DIR"
  if pid_alive "$MAILPIT_PID" mailpit; then
    log "mailpit already running (pid $(<"$MAILPIT_PID"))"
  else
    rm -f "$MAILPIT_PID"
    local bin p
    bin=$(mailpit_bin) || die "mailpit not found (run scripts/install-deps.sh)"
    for p in "$SMTP_PORT" "$MAILPIT_PORT"; do
      port_open "$p" && die "port $p is in use by another process (set EVENTFLOW_SMTP_PORT / EVENTFLOW_MAILPIT_PORT)"
    done
    log "mailpit: SMTP 127.0.0.1:$SMTP_PORT, HTTP 127.0.0.1:$MAILPIT_PORT"
    echo "===== $(date '+%F %T') starting $bin" >>"$MAILPIT_LOG"
    setsid "$bin" \
      --listen "127.0.0.1:$MAILPIT_PORT" \
      --smtp "127.0.0.1:$SMTP_PORT" \
      --smtp-auth-accept-any --smtp-auth-allow-insecure \
      --smtp-disable-rdns --disable-version-check \
      --database "$MAILPIT_DIR/mailpit.db" --max 0 \
      </dev/null >>"$MAILPIT_LOG" 2>&1 &
    echo $! >"$MAILPIT_PID"
  fi
  wait_for mailpit "$MAILPIT_PID" mailpit "$MAILPIT_LOG" mailpit_ok
  log "mailpit ready: http://127.0.0.1:$MAILPIT_PORT"
}

stop_mailpit() { stop_pid "$MAILPIT_PID" mailpit mailpit; }

status_mailpit() {
  if pid_alive "$MAILPIT_PID" mailpit && mailpit_ok >/dev/null; then
    echo "mailpit   running  smtp=127.0.0.1:$SMTP_PORT http=127.0.0.1:$MAILPIT_PORT pid=$(<"$MAILPIT_PID")"
  else
    echo "mailpit   stopped"
    return 1
  fi
}

# ---------------------------------------------------------------- commands

print_env() {
  cat <<EOF
export EVENTFLOW_TEST_POSTGRES_URL='$(pg_url)'
export EVENTFLOW_TEST_KAFKA_BROKERS='127.0.0.1:$KAFKA_PORT'
export EVENTFLOW_TEST_SMTP_URL='smtp://127.0.0.1:$SMTP_PORT'
export EVENTFLOW_TEST_MAILPIT_URL='http://127.0.0.1:$MAILPIT_PORT'
EOF
}

# services ARGS...: the services named (validated), or all of them.
services() {
  if (($# == 0)); then
    printf '%s\n' "${ALL_SERVICES[@]}"
    return
  fi
  local s
  for s in "$@"; do
    case $s in
      postgres | kafka | mailpit) echo "$s" ;;
      *) die "unknown service '$s' (postgres, kafka, mailpit)" ;;
    esac
  done
}

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//' >&2
  exit 2
}

main() {
  local cmd=${1:-}
  (($#)) && shift
  local svc list rc=0
  case $cmd in
    start)
      mkdir -p "$STATE_DIR"
      list=$(services "$@")
      for svc in $list; do "start_$svc"; done
      ;;
    stop)
      list=$(services "$@")
      # reverse order: mail sink and broker before the database
      for svc in $(echo "$list" | tac); do "stop_$svc"; done
      ;;
    restart)
      list=$(services "$@")
      for svc in $(echo "$list" | tac); do "stop_$svc"; done
      mkdir -p "$STATE_DIR"
      for svc in $list; do "start_$svc"; done
      ;;
    status)
      list=$(services "$@")
      for svc in $list; do "status_$svc" || rc=1; done
      return $rc
      ;;
    env) print_env ;;
    clean)
      for svc in mailpit kafka postgres; do "stop_$svc"; done
      log "removing $STATE_DIR"
      rm -rf "$STATE_DIR"
      ;;
    kafka-libs) kafka_libs ;;
    -h | --help | help | "") usage ;;
    *) log "unknown command '$cmd'"; usage ;;
  esac
}

# Run as a command; when sourced (scripts/kafka-cluster.sh does, for the
# helpers and the Kafka jar cache above), define everything and run nothing.
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  main "$@"
fi
