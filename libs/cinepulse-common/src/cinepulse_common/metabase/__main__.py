"""``python -m cinepulse_common.metabase``: see :mod:`cinepulse_common.metabase.cli`."""

import sys

from cinepulse_common.metabase.cli import main

sys.exit(main())
