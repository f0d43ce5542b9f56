#!/usr/bin/env bash
# local_cluster.sh start|stop|status|url: a Spark standalone cluster (a master and two workers) on
# this machine, from the pip-installed pyspark, to try cluster mode on a laptop.
#
#   scripts/local_cluster.sh start     start the master and the workers (only those not running)
#   scripts/local_cluster.sh url       print the master URL, e.g. spark://127.0.0.1:7077
#   scripts/local_cluster.sh status    every daemon's pid and state, the workers the master sees
#                                      (exit status 3 when a daemon is not running)
#   scripts/local_cluster.sh stop      stop the workers, then the master, by their pids
#
# Everything binds to 127.0.0.1 (RPC, web UIs, executors); REST submission is off. Logs, pids,
# the daemons' Spark settings and the executors' work folders go under CLUSTER_DIR.
#
# Environment (all optional):
#   CLUSTER_DIR              folder of logs/, pids/, work/, conf/ (default: <repo>/.cluster)
#   SPARK_HOME               Spark installation (default: the pip-installed pyspark of PYTHON)
#   PYTHON                   Python with pyspark (default: <repo>/.venv/bin/python, else python3)
#   JAVA_HOME                Java 17 or newer (default: java on PATH)
#   SPARK_MASTER_PORT        master RPC port (default: 7077)
#   SPARK_MASTER_WEBUI_PORT  master web UI port (default: 8080)
#   SPARK_WORKER_WEBUI_PORT  first worker's web UI port; the next workers use the following ports
#                            (default: 8081)
#   SPARK_WORKER_INSTANCES   number of workers (default: 2)
#   SPARK_WORKER_CORES       cores per worker (default: 1)
#   SPARK_WORKER_MEMORY      memory per worker for executors (default: 1g)
#   SPARK_WORKER_TIMEOUT     seconds without heartbeat before the master drops a worker (default: 15)
#   SPARK_AUTH_SECRET        when set, the cluster requires spark.authenticate with this secret
#                            (scripts/submit.sh passes it to the driver the same way); it is
#                            handed to the JVMs through their environment, never written to disk
#   CLUSTER_START_TIMEOUT    seconds to wait for the daemons to come up (default: 90)
set -euo pipefail

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
}

root=$(cd "$(dirname "$0")/.." && pwd)
cluster_dir=${CLUSTER_DIR:-$root/.cluster}
host=127.0.0.1
master_port=${SPARK_MASTER_PORT:-7077}
master_ui_port=${SPARK_MASTER_WEBUI_PORT:-8080}
worker_ui_port=${SPARK_WORKER_WEBUI_PORT:-8081}
workers=${SPARK_WORKER_INSTANCES:-2}
worker_cores=${SPARK_WORKER_CORES:-1}
worker_memory=${SPARK_WORKER_MEMORY:-1g}
worker_timeout=${SPARK_WORKER_TIMEOUT:-15}
start_timeout=${CLUSTER_START_TIMEOUT:-90}

MASTER_CLASS=org.apache.spark.deploy.master.Master
WORKER_CLASS=org.apache.spark.deploy.worker.Worker

if [ -n "${PYTHON:-}" ]; then
  python=$PYTHON
elif [ -x "$root/.venv/bin/python" ]; then
  python=$root/.venv/bin/python
else
  python=python3
fi

die() {
  echo "local_cluster: $*" >&2
  exit 1
}

spark_home() {
  if [ -n "${SPARK_HOME:-}" ]; then
    printf '%s\n' "$SPARK_HOME"
  else
    "$python" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))' 2>/dev/null ||
      die "no SPARK_HOME and $python cannot import pyspark (run 'make setup' or set PYTHON)"
  fi
}

check_java() {
  local java=${JAVA_HOME:+$JAVA_HOME/bin/java} candidate
  java=${java:-$(command -v java || true)}
  if [ -z "$java" ] || [ ! -x "$java" ]; then  # as scripts/with_java.sh: Debian's JVMs off the PATH too
    for candidate in /usr/lib/jvm/*/bin/java; do
      [ -x "$candidate" ] && java=$candidate && break
    done
  fi
  [ -n "$java" ] && [ -x "$java" ] || die "no Java found: install Java 17+ or set JAVA_HOME"
  JAVA_HOME=$(dirname "$(dirname "$(readlink -f "$java")")")  # the one checked is the one spark-class runs
  export JAVA_HOME
  local major
  major=$("$java" -version 2>&1 | awk -F'"' '/version/ { split($2, v, "."); print (v[1] == "1" ? v[2] : v[1]); exit }')
  [ "${major:-0}" -ge 17 ] 2>/dev/null ||
    die "$java is Java ${major:-?}; Spark 4 needs Java 17 or newer (set JAVA_HOME)"
}

pid_file() { printf '%s/pids/%s.pid\n' "$cluster_dir" "$1"; }
log_file() { printf '%s/logs/%s.log\n' "$cluster_dir" "$1"; }
daemons() {
  local i
  echo master
  for ((i = 1; i <= workers; i++)); do echo "worker-$i"; done
}
class_of() { if [ "$1" = master ]; then echo "$MASTER_CLASS"; else echo "$WORKER_CLASS"; fi; }

# The daemon's pid when its pid file names a live JVM of this cluster running that class, else
# nothing (a stale pid file, or a pid the system reused for another process).
running_pid() {
  local name=$1 file pid args
  file=$(pid_file "$name")
  [ -f "$file" ] || return 0
  pid=$(cat "$file")
  case "$pid" in '' | *[!0-9]*) return 0 ;; esac
  # /proc first (slim images have no ps), then ps (macOS has no /proc)
  if [ -r "/proc/$pid/cmdline" ]; then
    args=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)
  else
    args=$(ps -ww -p "$pid" -o args= 2>/dev/null || true)
  fi
  case "$args" in
    *"$(class_of "$name")"*"$cluster_dir/conf/spark-defaults.conf"*) echo "$pid" ;;
  esac
}

# Ask a local web UI's JSON: `ui_query URL master-url|worker-id|worker-alive ID|workers|apps`.
# Python (which has pyspark anyway) rather than curl and jq, which a laptop may not have.
ui_query() {
  "$python" - "$@" <<'PY'
import json, sys, urllib.request

url, question, *rest = sys.argv[1:]
try:
    with urllib.request.urlopen(url, timeout=3) as response:
        doc = json.load(response)
except (OSError, ValueError):
    sys.exit(1)
if question == "master-url":
    print(doc["url"])
elif question == "worker-id":
    print(doc["id"])
elif question == "worker-alive":
    sys.exit(0 if any(w["id"] == rest[0] and w["state"] == "ALIVE" for w in doc["workers"]) else 1)
elif question == "workers":
    for w in doc["workers"]:
        print(f"registered {w['id']}: {w['state']}, {w['coresused']}/{w['cores']} cores used, {w['webuiaddress']}")
elif question == "apps":
    for a in doc["activeapps"]:
        print(f"application {a['id']} ({a['name']}): {a['state']}, {a['cores']} cores")
PY
}

write_daemon_conf() {
  mkdir -p "$cluster_dir/conf" "$cluster_dir/logs" "$cluster_dir/pids" "$cluster_dir/work"
  cat >"$cluster_dir/conf/spark-defaults.conf" <<EOF
# Written by scripts/local_cluster.sh for the master and workers of this cluster.
spark.master.rest.enabled false
spark.ui.reverseProxy false
spark.port.maxRetries 0
spark.worker.timeout $worker_timeout
spark.deploy.spreadOutApps true
spark.worker.cleanup.enabled false
EOF
  if [ -n "${SPARK_AUTH_SECRET:-}" ]; then
    echo "spark.authenticate true" >>"$cluster_dir/conf/spark-defaults.conf"
  fi
  {
    cat "$root/conf/log4j2.properties"
    cat <<'EOF'

# Into the files under logs/ and work/: the daemons' lifecycle (workers registered, executors
# launched and lost) and each executor's task assignments.
logger.deploy.name = org.apache.spark.deploy
logger.deploy.level = info
logger.backend.name = org.apache.spark.executor.CoarseGrainedExecutorBackend
logger.backend.level = info
EOF
  } >"$cluster_dir/conf/log4j2.properties"
}

launch() {
  local name=$1
  shift
  local log
  log=$(log_file "$name")
  printf '\n=== %s: starting %s\n' "$(date '+%Y-%m-%d %H:%M:%S')" "$name" >>"$log"
  # spark-class execs the JVM, so $! is the JVM's pid. Background jobs of a script ignore SIGINT.
  nohup "$SPARK_HOME/bin/spark-class" "$@" --properties-file "$cluster_dir/conf/spark-defaults.conf" \
    >>"$log" 2>&1 </dev/null &
  echo $! >"$(pid_file "$name")"
}

wait_for() {
  local what=$1 name=$2
  shift 2
  local deadline=$((SECONDS + start_timeout))
  until "$@"; do
    if [ -z "$(running_pid "$name")" ]; then
      tail -n 20 "$(log_file "$name")" >&2 || true
      die "$name exited while starting (log: $(log_file "$name"))"
    fi
    [ "$SECONDS" -lt "$deadline" ] || die "timed out after ${start_timeout}s waiting for $what (log: $(log_file "$name"))"
    sleep 1
  done
}

master_ui() { printf 'http://%s:%s/json/\n' "$host" "$master_ui_port"; }
worker_ui() { printf 'http://%s:%s/json/\n' "$host" "$((worker_ui_port + $1 - 1))"; }

master_is_up() {
  local url
  url=$(ui_query "$(master_ui)" master-url) || return 1
  [ "$url" = "spark://$host:$master_port" ]
}

# The worker answers on its UI and the master lists it (by the worker's own id) as ALIVE.
worker_is_registered() {
  local id
  id=$(ui_query "$(worker_ui "$1")" worker-id) || return 1
  ui_query "$(master_ui)" worker-alive "$id"
}

start() {
  check_java
  export SPARK_HOME
  SPARK_HOME=$(spark_home)
  # Loopback only, this cluster's own settings (no spark-env.sh), and the secret via environment.
  export SPARK_LOCAL_IP=$host SPARK_PUBLIC_DNS=$host SPARK_CONF_DIR=$cluster_dir/conf
  export SPARK_LOG_DIR=$cluster_dir/logs SPARK_PID_DIR=$cluster_dir/pids
  export PYSPARK_PYTHON=${PYSPARK_PYTHON:-$python}
  if [ -n "${SPARK_AUTH_SECRET:-}" ]; then
    export _SPARK_AUTH_SECRET=$SPARK_AUTH_SECRET
  fi
  write_daemon_conf

  if [ -z "$(running_pid master)" ]; then
    launch master "$MASTER_CLASS" --host "$host" --port "$master_port" --webui-port "$master_ui_port"
  fi
  wait_for "the master on $host:$master_port" master master_is_up
  echo "spark://$host:$master_port" >"$cluster_dir/master.url"

  local i name
  for ((i = 1; i <= workers; i++)); do
    name=worker-$i
    if [ -z "$(running_pid "$name")" ]; then
      mkdir -p "$cluster_dir/work/$name"
      launch "$name" "$WORKER_CLASS" --host "$host" --port 0 --webui-port "$((worker_ui_port + i - 1))" \
        --cores "$worker_cores" --memory "$worker_memory" --work-dir "$cluster_dir/work/$name" \
        "spark://$host:$master_port"
    fi
  done
  for ((i = 1; i <= workers; i++)); do
    wait_for "worker-$i to register with the master" "worker-$i" worker_is_registered "$i"
  done
  echo "master:  spark://$host:$master_port  (web UI http://$host:$master_ui_port)"
  for ((i = 1; i <= workers; i++)); do
    echo "worker-$i: pid $(running_pid "worker-$i"), $worker_cores core(s), $worker_memory (web UI http://$host:$((worker_ui_port + i - 1)))"
  done
  echo "logs and pids under $cluster_dir"
}

stop_daemon() {
  local name=$1 pid waited=0
  pid=$(running_pid "$name")
  if [ -n "$pid" ]; then
    kill -TERM "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null && [ "$waited" -lt 30 ]; do
      sleep 0.5
      waited=$((waited + 1))
    done
    if kill -0 "$pid" 2>/dev/null; then
      kill -KILL "$pid" 2>/dev/null || true
    fi
    echo "stopped $name (pid $pid)"
  fi
  rm -f "$(pid_file "$name")"
}

stop() {
  local name
  # Workers first (their executors exit with them), then the master.
  for name in $(daemons | sed 1d) master; do
    stop_daemon "$name"
  done
  # Workers beyond SPARK_WORKER_INSTANCES started earlier with a larger count.
  local file
  for file in "$cluster_dir"/pids/worker-*.pid; do
    [ -e "$file" ] || continue
    name=$(basename "$file" .pid)
    stop_daemon "$name"
  done
}

status() {
  local name pid state=0
  for name in $(daemons); do
    pid=$(running_pid "$name")
    if [ -n "$pid" ]; then
      echo "$name: running, pid $pid"
    else
      echo "$name: not running"
      state=3
    fi
  done
  if master_is_up; then
    ui_query "$(master_ui)" workers
    ui_query "$(master_ui)" apps
  fi
  return "$state"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  url)
    [ -f "$cluster_dir/master.url" ] && [ -n "$(running_pid master)" ] ||
      die "no cluster running under $cluster_dir (scripts/local_cluster.sh start)"
    cat "$cluster_dir/master.url"
    ;;
  -h | --help | help) usage ;;
  *)
    usage >&2
    exit 2
    ;;
esac
