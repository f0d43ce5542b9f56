#!/usr/bin/env bash
# submit.sh [RUN OPTIONS...]: package insiders_spark and spark-submit jobs/segment_customers.py.
#
# Builds dist/insiders_spark.zip (the package and its conf/ profiles) for --py-files and submits the
# job with it; every argument after the script's own is passed to the job, quoted as given.
# Environment:
#   SPARK_HOME          Spark installation to use (default: the pip-installed pyspark's)
#   SPARK_MASTER        master URL (default: local[*])
#   INSIDERS_ENV        configuration profile passed as --env (default: local)
#   SPARK_SUBMIT_ARGS   extra spark-submit options, whitespace-separated (e.g. "--driver-memory 4g")
#   PYTHON              Python used to find pyspark and build the zip (default: python3)
set -euo pipefail

case "${1:-}" in
  -h|--help)
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
esac

root=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}
spark_home=${SPARK_HOME:-$("$python" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')}
master=${SPARK_MASTER:-local[*]}
env_name=${INSIDERS_ENV:-local}

mkdir -p "$root/dist"
zip_path="$root/dist/insiders_spark.zip"
"$python" - "$root" "$zip_path" <<'PY'
import pathlib, sys, zipfile
root, target = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
    for path in sorted((root / "insiders_spark").rglob("*.py")):
        archive.write(path, path.relative_to(root))
    for path in sorted((root / "conf").iterdir()):
        if path.suffix in {".toml", ".properties", ".py"}:
            archive.write(path, pathlib.Path("insiders_spark") / "conf" / path.name)
PY

extra=()
if [ -n "${SPARK_SUBMIT_ARGS:-}" ]; then
  read -r -a extra <<<"$SPARK_SUBMIT_ARGS"
fi

exec "$spark_home/bin/spark-submit" \
  --master "$master" \
  --py-files "$zip_path" \
  --driver-java-options "-Dlog4j2.configurationFile=file:$root/conf/log4j2.properties" \
  "${extra[@]}" \
  "$root/jobs/segment_customers.py" --env "$env_name" "$@"
