"""``python -m cinepulse_metabase``: see :mod:`cinepulse_metabase.cli`."""

import sys

from cinepulse_metabase.cli import main

sys.exit(main())
