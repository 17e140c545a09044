"""``python -m bench.recommender [serving]``: the quality part alone, without the stack (no
argument), or the serving part alone against the local stack (``serving``)."""

from __future__ import annotations

import sys

from bench.recommender import quality, serving

if __name__ == "__main__":
    serving() if sys.argv[1:] == ["serving"] else quality()
