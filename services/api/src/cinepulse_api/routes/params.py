"""What the routes' parameters share: the bounds and checks of values the warehouse stores."""

from __future__ import annotations

from pydantic import AfterValidator

#: the largest PostgreSQL bigint (a movie id)
MAX_BIGINT = 2**63 - 1


def _no_nul(value: str) -> str:
    # PostgreSQL text cannot hold NUL: refuse it here (422) rather than fail in the query
    if "\x00" in value:
        raise ValueError("must not contain NUL (\\x00) characters")
    return value


NoNul = AfterValidator(_no_nul)
