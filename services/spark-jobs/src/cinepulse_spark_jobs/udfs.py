"""User-defined functions: pandas UDFs (Arrow batches, vectorised) for what Spark SQL has no
function for - Unicode normalisation and the shared emotion classifier - and UUID v5 in
Spark SQL itself. No row-at-a-time Python UDF: each would cost a Python round trip per row."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
from pyspark.sql import Column
from pyspark.sql import functions as F
from pyspark.sql import types as T

from cinepulse_common.events import normalise_comment_text
from cinepulse_common.rules import TransformRules
from cinepulse_common.validation import SOURCE_NAMESPACE


def normalise_comment(rules: TransformRules) -> Callable[[Column], Column]:
    """A comment's text after the rules' normalisation (the envelope's own function), as a
    vectorised pandas UDF (null in, null out)."""

    def normalise(texts: pd.Series) -> pd.Series:
        present = texts.notna()
        out = pd.Series([None] * len(texts), dtype=object, index=texts.index)
        out[present] = [normalise_comment_text(t, rules) for t in texts[present]]
        return out

    return F.pandas_udf(normalise, T.StringType())  # type: ignore[call-overload]


def source_uuid(topic: Column, partition: Column, offset: Column) -> Column:
    """:func:`cinepulse_common.validation.source_event_id` in Spark SQL (no Python round
    trip): UUID v5 = SHA-1 of the namespace's 16 bytes and the name, version and variant
    bits set (RFC 9562, section 5.5)."""
    name = F.concat_ws(":", topic, partition.cast("string"), offset.cast("string"))
    digest = F.sha1(F.concat(F.unhex(F.lit(SOURCE_NAMESPACE.hex)), F.encode(name, "UTF-8")))
    variant = F.lower(
        F.hex(F.conv(F.substring(digest, 17, 1), 16, 10).cast("int").bitwiseAND(3).bitwiseOR(8))
    )
    return F.concat(
        F.substring(digest, 1, 8),
        F.lit("-"),
        F.substring(digest, 9, 4),
        F.lit("-5"),
        F.substring(digest, 14, 3),
        F.lit("-"),
        variant,
        F.substring(digest, 18, 3),
        F.lit("-"),
        F.substring(digest, 21, 12),
    )


EMOTION_TYPE = T.StructType(
    [
        T.StructField("emotion", T.StringType()),
        T.StructField("sentiment", T.FloatType()),
        T.StructField("emotion_scores", T.StringType()),
        T.StructField("classifier_version", T.StringType()),
    ]
)


@F.pandas_udf(EMOTION_TYPE)  # type: ignore[call-overload]
def classify(texts: pd.Series) -> pd.DataFrame:
    """The emotion of each non-null text (null in, nulls out), through
    :func:`cinepulse_emotion.classify_comments`."""
    import json

    present = texts.notna()
    out = pd.DataFrame(
        {c: pd.Series([None] * len(texts), dtype=object) for c in EMOTION_TYPE.fieldNames()}
    )
    if present.any():
        from cinepulse_emotion import classify_comments

        labels = classify_comments(texts[present].tolist())
        out.loc[present, "emotion"] = [e.emotion for e in labels]
        out.loc[present, "sentiment"] = [e.sentiment for e in labels]
        out.loc[present, "emotion_scores"] = [json.dumps(e.scores, sort_keys=True) for e in labels]
        out.loc[present, "classifier_version"] = [e.version for e in labels]
    return out
