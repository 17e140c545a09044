"""The SparkApplication's ``mainApplicationFile``: the image copies it to
``/opt/cinepulse/spark_main.py``; it runs the package's entry point with the arguments."""

import sys

from cinepulse_spark_jobs.__main__ import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
