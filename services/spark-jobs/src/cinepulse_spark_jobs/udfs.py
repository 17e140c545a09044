"""Python UDFs for what Spark SQL has no function for (Unicode normalisation)."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from pyspark.sql import Column
from pyspark.sql import functions as F
from pyspark.sql import types as T

from cinepulse_common.events import normalise_comment_text
from cinepulse_common.rules import TransformRules


def comment_length(rules: TransformRules) -> Callable[[Column], Column]:
    """Length of a comment after the rules' normalisation (the envelope's own function)."""

    def length(text):  # no type hints: pyspark would read them as a pandas UDF kind
        return None if text is None else len(normalise_comment_text(text, rules))

    return F.udf(length, T.IntegerType())


#: namespace of the ids derived for records that came without one
SOURCE_NAMESPACE = uuid.UUID("6f0c1e7a-63c9-5b35-9a47-3c2f8f6a2d10")


def _source_uuid(topic, partition, offset):  # no type hints (see above)
    return str(uuid.uuid5(SOURCE_NAMESPACE, f"{topic}:{partition}:{offset}"))


source_uuid = F.udf(_source_uuid, T.StringType())
