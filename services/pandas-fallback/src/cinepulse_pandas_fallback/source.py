"""Reading the archiver's raw user events from MongoDB, in chunks of bounded size.

The window is on **arrival**: the document's ``received_at`` (when the archiver read the
record from Kafka), half-open ``[start, end)``. That is what a stopped Spark job missed: the
records that reached Kafka while it was down, whatever their ``occurred_at`` (a late event
belongs to the window it arrived in, as it would have to Spark's micro-batch).

Documents come sorted by their Kafka position (topic, partition, offset) through one cursor
that fetches ``chunk_size`` documents per round trip; the job holds one chunk at a time, so
memory does not grow with the window. Position order is also Spark's dedup order: the first
copy of an event in the window is read first, in whichever chunk it falls. (On MongoDB an
index on the window and the position, or ``allowDiskUse``, keeps the server's sort off its
memory; FerretDB sorts the window before it sends the first chunk.)
"""

from __future__ import annotations

from collections.abc import Generator
from datetime import datetime
from itertools import islice
from typing import Any

import pandas as pd
from pymongo.collection import Collection

from cinepulse_common.validation import SOURCE_COLUMNS

PROJECTION = {"_id": 0, **{c: 1 for c in SOURCE_COLUMNS}, "record": 1}
ORDER = [(c, 1) for c in SOURCE_COLUMNS]


def window_filter(start: datetime, end: datetime) -> dict[str, Any]:
    return {"received_at": {"$gte": start, "$lt": end}}


def count_documents(collection: Collection[dict[str, Any]], start: datetime, end: datetime) -> int:
    return collection.count_documents(window_filter(start, end))


def read_chunks(
    collection: Collection[dict[str, Any]], start: datetime, end: datetime, chunk_size: int
) -> Generator[pd.DataFrame, None, None]:
    """Frames of at most ``chunk_size`` documents (``topic``, ``partition``, ``offset``,
    ``record``) whose ``received_at`` is in ``[start, end)``, in Kafka position order."""
    cursor = (
        collection.find(window_filter(start, end), PROJECTION)
        .sort(ORDER)
        .batch_size(chunk_size)
        .allow_disk_use(True)  # a large window sorts on the server's disk, not in its memory
    )
    with cursor:
        while docs := list(islice(cursor, chunk_size)):
            yield pd.DataFrame.from_records(docs, columns=[*SOURCE_COLUMNS, "record"])
