"""The live counters' reads and expiry, over what a faust windowed table holds.

The counters are tumbling one-minute windows (``app.Table(...).tumbling(60, expires=...)``,
memory store): the table's store holds one entry ``((key, (start, end)), count)`` per key
counted in a window. What faust itself removes (faust-streaming 0.15,
``faust/tables/base.py``): every ``table_cleanup_interval`` its ``_del_old_keys`` drops the
entries whose window is stale (``window.stale(end, now)``: ended more than ``expires`` ago),
but only those written by this process (``on_key_set`` puts them on its expiry heap);
entries recovered from the changelog at start or after a rebalance are written straight into
the store and are never expired. A key index (``key_index=True``) is a plain table of every
key ever counted, on a compacted changelog with no retention: faust never prunes it.

So the archiver keeps no key index: its reads go over the stored entries of the windows they
ask for (:func:`window_counts`), and :func:`expire_stale` drops every stale entry, recovered
ones included, by faust's own rule. What a read costs follows the keys counted within the
windows kept, never every movie ever counted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any


def name_of(key: str) -> str:
    """The counted name of a table key (``603@2`` -> ``603``: the key carries its changelog
    partition)."""
    return key.rsplit("@", 1)[0]


def window_counts(
    entries: Iterable[tuple[Any, Any]], starts: Iterable[float]
) -> dict[float, Counter[str]]:
    """The counts per name of each window starting at one of ``starts`` (a key's partitions
    summed), from a windowed table's stored ``((key, (start, end)), count)`` entries."""
    wanted: dict[float, Counter[str]] = {start: Counter() for start in starts}
    for (key, (start, _end)), count in entries:
        counts = wanted.get(start)
        if counts is not None and count:
            counts[name_of(key)] += count
    return wanted


def window_starts(table: Any, now: float, minutes: int) -> list[float]:
    """The starts of the last ``minutes`` windows of ``table`` (the current one first), as
    faust places them (``window.current``)."""
    return [table.window.current(now - 60 * i)[0] for i in range(minutes)]


def expire_stale(table: Any, now: float) -> int:
    """Drop the entries of ``table`` (a windowed faust table) whose window is stale at ``now``
    by faust's rule (``window.stale(end, now)``), as faust's own cleanup does for the entries
    it knows of: from the local store, without a changelog record (the changelog keeps its
    retention of ``expires``). Returns how many were dropped."""
    window = table.window
    store = table.data
    stale = [key for key in list(store.keys()) if window.stale(key[1][1], now)]
    # the memory store's record of which partition each recovered key came from
    partitions: dict[Any, int] | None = getattr(store, "_key_partition", None)
    for key in stale:
        store.pop(key, None)
        if partitions is not None:
            partitions.pop(key, None)
    return len(stale)
