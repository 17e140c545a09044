"""Python UDFs for what Spark SQL has no function for (Unicode normalisation)."""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import Column
from pyspark.sql import functions as F
from pyspark.sql import types as T

from cinepulse_common.events import normalise_comment_text
from cinepulse_common.rules import TransformRules


def comment_length(rules: TransformRules) -> Callable[[Column], Column]:
    """Length of a comment after the rules' normalisation (the envelope's own function)."""

    def length(text: str | None) -> int | None:
        return None if text is None else len(normalise_comment_text(text, rules))

    return F.udf(length, T.IntegerType())
