"""spark-submit entry point: ``spark-submit jobs/segment_customers.py [run options]``.

The same options as ``insiders-spark run``; the package itself comes from --py-files or pip.
"""

import sys

from insiders_spark.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", *sys.argv[1:]]))
