"""``python -m cinepulse_devstack.kube``: the chart's end-to-end run (``make chart-e2e``)."""

import sys

from cinepulse_devstack.kube.run import main

if __name__ == "__main__":
    sys.exit(main())
