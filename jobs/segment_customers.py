"""spark-submit entry point: ``spark-submit jobs/segment_customers.py [run options]``.

The same options as ``insiders-spark run``; the package itself comes from --py-files or pip.
Spark settings given to spark-submit (scripts/submit.sh passes the profile's as --conf) win over
the profile's own.
"""

import sys

from insiders_spark.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", "--launched-by-spark-submit", *sys.argv[1:]]))
