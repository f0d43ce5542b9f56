#!/usr/bin/env bash
# submit.sh [--print-spec] [SPARK-SUBMIT OPTIONS... --] [JOB OPTIONS...]: package insiders_spark
# and spark-submit jobs/segment_customers.py.
#
#   scripts/submit.sh --input data/log.parquet --output out            # job options only
#   SPARK_MASTER=spark://127.0.0.1:7077 scripts/submit.sh --input ...    # on a standalone cluster
#   scripts/submit.sh --driver-memory 4g -- --input ...                 # spark-submit options, then --
#   scripts/submit.sh --print-spec --input ... --output ...             # the submission as JSON
#
# What it does:
#   1. builds dist/insiders_spark.zip (scripts/build_zip.py: the package, with conf/ inside as
#      insiders_spark/conf, and BUILD.json) for --py-files, so the executors import the same code
#      as the driver without installing it;
#   2. loads the configuration profile (INSIDERS_ENV) and passes its [spark] settings as --conf, so
#      the ones read at launch (spark.driver.memory, extraJavaOptions, ...) apply; it refuses a
#      profile that sets a spark.master other than SPARK_MASTER (it would override --master);
#   3. ships conf/*.toml and conf/*.properties with --files, points the driver's log4j at
#      log4j2.properties (console at WARN; log4j2-json.properties with job.log_format = "json" or
#      the job option --log-format json), and sets the driver's and the executors' Python;
#   4. runs spark-submit jobs/segment_customers.py --env PROFILE --conf-dir DIR and the job options;
#      with --print-spec (first), prints that submission as JSON instead (master, deploy_mode,
#      conf, files, py_files, archives, other options, application, application_args, env).
# Options before a `--` go to spark-submit, those after it (or all, without `--`) to the job; each
# is passed on as one argument, exactly as given (spaces included). Nothing is eval'ed.
#
# Environment (all optional):
#   SPARK_HOME         Spark installation (default: the pip-installed pyspark of PYTHON)
#   SPARK_MASTER       master URL: local[*] (default), spark://HOST:PORT, yarn, k8s://https://...;
#                      scripts/local_cluster.sh url prints the laptop cluster's
#   SPARK_DEPLOY_MODE  client (default; the driver runs here) or cluster (YARN, Kubernetes)
#   INSIDERS_ENV       configuration profile in conf/ (default: from the master: local,
#                      standalone, yarn or kubernetes)
#   PYTHON             Python that runs the driver and builds the zip (default: <repo>/.venv/bin/python,
#                      else python3); it needs the project's dependencies (pip install . : pyspark,
#                      pandas, pyarrow, numpy, scikit-learn, matplotlib for the report's charts)
#   PYSPARK_PYTHON     Python of the executors (default: PYTHON; on a real cluster, the path of a
#                      Python with those libraries on every node, or ./environment/bin/python with
#                      INSIDERS_ARCHIVE)
#   INSIDERS_ARCHIVE   a venv-pack or conda-pack .tar.gz of such a Python, shipped with --archives
#                      (unpacked as ./environment on every executor) for nodes that lack the libraries
#   SPARK_LOCAL_IP     address the driver binds to (default: 127.0.0.1 for local masters and a
#                      cluster on 127.0.0.1/localhost; unset otherwise, so that a YARN or Kubernetes
#                      client-mode driver announces an address the cluster can reach)
#   SPARK_AUTH_SECRET  when set, spark.authenticate=true with this secret (the one the standalone
#                      cluster was started with), handed to Spark through its environment: never
#                      on the command line, in a profile or in any file
#   SPARK_SUBMIT_ARGS  extra spark-submit options, split on whitespace (no quoting: use the
#                      `OPTIONS -- JOB OPTIONS` form for values with spaces)
set -euo pipefail

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
}

die() {
  echo "submit.sh: $*" >&2
  exit 2
}

print_spec=false
case "${1:-}" in
  -h | --help)
    usage
    exit 0
    ;;
  --print-spec)
    print_spec=true
    shift
    ;;
esac

root=$(cd "$(dirname "$0")/.." && pwd)

# Absolute path of a command without resolving symlinks (a venv's python is a symlink).
absolute_command() {
  case "$1" in
    */*) printf '%s/%s\n' "$(cd "$(dirname "$1")" && pwd)" "$(basename "$1")" ;;
    *) command -v "$1" || die "$1 not found on PATH" ;;
  esac
}

if [ -n "${PYTHON:-}" ]; then
  python=$PYTHON
elif [ -x "$root/.venv/bin/python" ]; then
  python=$root/.venv/bin/python
else
  python=python3
fi
python=$(absolute_command "$python")
master=${SPARK_MASTER:-local[*]}
deploy_mode=${SPARK_DEPLOY_MODE:-client}
if [ -n "${INSIDERS_ENV:-}" ]; then
  env_name=$INSIDERS_ENV
else
  case "$master" in
    local*) env_name=local ;;
    spark://*) env_name=standalone ;;
    yarn*) env_name=yarn ;;
    k8s://*) env_name=kubernetes ;;
    *) die "no default profile for master $master: set INSIDERS_ENV" ;;
  esac
fi
case "$deploy_mode" in
  client | cluster) ;;
  *) die "SPARK_DEPLOY_MODE must be client or cluster, not $deploy_mode" ;;
esac
spark_home=${SPARK_HOME:-$("$python" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')} ||
  die "no SPARK_HOME and $python cannot import pyspark (run 'make setup' or set PYTHON)"
case "$master" in
  local* | spark://127.0.0.1* | spark://localhost*) export SPARK_LOCAL_IP=${SPARK_LOCAL_IP:-127.0.0.1} ;;
esac

# Split the arguments: spark-submit options before a `--`, the job's after it.
submit_args=()
job_args=()
if [ "$#" -gt 0 ]; then
  seen_separator=false
  for argument in "$@"; do
    if [ "$seen_separator" = false ] && [ "$argument" = "--" ]; then
      seen_separator=true
      submit_args=(${job_args[@]+"${job_args[@]}"})
      job_args=()
    else
      job_args+=("$argument")
    fi
  done
fi
for argument in ${job_args[@]+"${job_args[@]}"}; do
  case "$argument" in
    --env | --env=* | --conf-dir | --conf-dir=*)
      die "$argument is set by submit.sh (the profile's Spark settings must match the job's): use INSIDERS_ENV" ;;
  esac
done
if [ -n "${SPARK_SUBMIT_ARGS:-}" ]; then
  read -r -a extra <<<"$SPARK_SUBMIT_ARGS"
  submit_args=("${extra[@]}" ${submit_args[@]+"${submit_args[@]}"})
fi

# 1. The package (scripts/build_zip.py, the same zip `make dist` builds).
zip_path=$("$python" "$root/scripts/build_zip.py" "$root/dist/insiders_spark.zip") ||
  die "could not build dist/insiders_spark.zip (see above)"

# 2. Where the driver runs decides its Python and where it finds the profiles and log4j file: here
#    (client mode), or in a container whose working folder holds the --files (cluster mode).
executor_python=${PYSPARK_PYTHON:-$python}
archive_args=()
if [ -n "${INSIDERS_ARCHIVE:-}" ]; then
  [ -f "$INSIDERS_ARCHIVE" ] || die "INSIDERS_ARCHIVE=$INSIDERS_ARCHIVE is not a file"
  archive_args=(--archives "$INSIDERS_ARCHIVE#environment")
  executor_python=${PYSPARK_PYTHON:-./environment/bin/python}
fi
env_args=()
if [ "$deploy_mode" = cluster ]; then
  driver_python=$executor_python
  conf_dir=.
  log4j_dir=.
  # The driver runs in a container that does not inherit this environment: hand it the job's
  # INSIDERS_SPARK__* overrides (the loader below has checked them here already).
  while IFS= read -r name; do
    case "$master" in
      yarn*) env_args+=(--conf "spark.yarn.appMasterEnv.$name=${!name}") ;;
      k8s://*) env_args+=(--conf "spark.kubernetes.driverEnv.$name=${!name}") ;;
      *) die "$name is set, but a $master driver in cluster mode would not see it: pass the job option instead" ;;
    esac
  done < <(compgen -e | grep '^INSIDERS_SPARK__' || true)
else
  driver_python=$python
  conf_dir=$root/conf
  log4j_dir=$root/conf
fi
# The log format (job.log_format) decides the driver's log4j2 file: the profile's, an
# INSIDERS_SPARK__JOB__LOG_FORMAT override, or the job's own --log-format.
log_format=
for ((i = 0; i < ${#job_args[@]}; i++)); do
  case "${job_args[i]}" in
    --log-format) log_format=${job_args[i + 1]:-} ;;
    --log-format=*) log_format=${job_args[i]#--log-format=} ;;
  esac
done

# 3. The profile's Spark settings, one `key=value` per NUL-terminated record, read back without
#    any shell evaluation. The loader is the package's own, imported from the zip just built.
conf_args=()
while IFS= read -r -d '' setting; do
  conf_args+=(--conf "$setting")
done < <(
  PYTHONPATH=$zip_path "$python" - "$root/conf" "$env_name" "$master" "$log4j_dir" "$log_format" <<'PY'
import sys

from insiders_spark.core.config import ConfigError, load_config
from insiders_spark.core.progress import DRIVER_TASK_LOG, JVM_LOGGING

conf_dir, env_name, master, log4j_dir, log_format = sys.argv[1:]
try:
    config = load_config(conf_dir, env_name, overrides={"job.log_format": log_format or None})
except ConfigError as error:
    sys.exit(f"submit.sh: configuration error: {error}")
logging = JVM_LOGGING[config.job.log_format]
spark = {**config.spark, **logging.settings}
profile_master = spark.pop("spark.master", None)
both_local = str(profile_master).startswith("local") and master.startswith("local")  # local[4] over local[*]
if profile_master is not None and profile_master != master and not both_local:
    sys.exit(
        f"submit.sh: profile {env_name!r} sets spark.master = {profile_master!r}, which would override "
        f"the master {master!r}; use a profile without spark.master (standalone, yarn, kubernetes) "
        "or set INSIDERS_ENV"
    )
# The driver's JVM logs through the project's log4j2 file (text or JSON) from its first line, each
# task failure on one line (quoted: the path may hold spaces; Spark splits these options like a
# shell would).
log4j = logging.file if log4j_dir == "." else f"{log4j_dir}/{logging.file}"
quoted = '"' + log4j.replace("\\", "\\\\").replace('"', '\\"') + '"'
option = f"-Dlog4j2.configurationFile={quoted} {DRIVER_TASK_LOG}"
spark["spark.driver.extraJavaOptions"] = f"{spark.get('spark.driver.extraJavaOptions', '')} {option}".strip()
for key, value in spark.items():
    sys.stdout.write(f"{key}={value}\0")
PY
)
# A failed profile check ends the process substitution, not this script: check it explicitly.
[ "${#conf_args[@]}" -gt 0 ] || die "could not read the Spark settings of profile $env_name (see above)"

# 4. Python on both sides, authentication, and the files shipped with the job.
conf_args+=(--conf "spark.pyspark.python=$executor_python" --conf "spark.pyspark.driver.python=$driver_python")
if [ -n "${SPARK_AUTH_SECRET:-}" ]; then
  # Spark's SecurityManager reads the secret from _SPARK_AUTH_SECRET. A standalone driver also
  # insists that spark.authenticate.secret is set: set it to a reference to that variable, so
  # the command line (visible to every user of the machine) never holds the secret itself.
  export _SPARK_AUTH_SECRET=$SPARK_AUTH_SECRET
  conf_args+=(--conf spark.authenticate=true --conf 'spark.authenticate.secret=${env:_SPARK_AUTH_SECRET}')
fi
shipped=$(printf '%s,' "$root"/conf/*.toml "$root"/conf/*.properties)
shipped=${shipped%,}

submission=(
  "$spark_home/bin/spark-submit"
  --master "$master"
  --deploy-mode "$deploy_mode"
  --py-files "$zip_path"
  --files "$shipped"
  "${conf_args[@]}"
  ${env_args[@]+"${env_args[@]}"}
  ${archive_args[@]+"${archive_args[@]}"}
  ${submit_args[@]+"${submit_args[@]}"}
  "$root/jobs/segment_customers.py" --env "$env_name" --conf-dir "$conf_dir"
  ${job_args[@]+"${job_args[@]}"}
)
if [ "$print_spec" = false ]; then
  exec "${submission[@]}"
fi

# 5. --print-spec: the same submission as JSON, read back from the command line above, for a
#    scheduler that submits by itself (e.g. Airflow's SparkSubmitOperator; docs/operations.md).
exec "$python" - "${submission[@]}" <<'PY'
import json
import os
import sys

spark_submit, *argv = sys.argv[1:]
spec = {
    "spark_submit": spark_submit, "master": None, "deploy_mode": None, "conf": {}, "files": [],
    "py_files": [], "archives": [], "options": [], "application": None, "application_args": [],
    "env": {name: os.environ[name] for name in ("SPARK_LOCAL_IP",) if name in os.environ},
}
lists = {"--files": "files", "--py-files": "py_files", "--archives": "archives"}
flags = {"--verbose", "-v", "--supervise"}
i = 0
while i < len(argv):
    option = argv[i]
    if not option.startswith("-"):  # the application, then its arguments
        spec["application"], spec["application_args"] = option, argv[i + 1 :]
        break
    if option in flags:
        spec["options"].append(option)
        i += 1
        continue
    name, equals, value = option.partition("=")
    if equals and name.startswith("--"):
        i += 1
    else:
        name, value = option, argv[i + 1]
        i += 2
    if name == "--master":
        spec["master"] = value
    elif name == "--deploy-mode":
        spec["deploy_mode"] = value
    elif name == "--conf":
        key, _, setting = value.partition("=")
        spec["conf"][key] = setting  # a later --conf wins, as in spark-submit
    elif name in lists:
        spec[lists[name]] += value.split(",")
    else:
        spec["options"] += [name, value]
print(json.dumps(spec, indent=2))
PY
