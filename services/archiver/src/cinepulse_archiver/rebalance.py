"""Letting faust's rebalance (or stop) go on past messages the archiver will not ack.

faust commits a message's offset once every stream it was handed to has acked it, and its
rebalance and stop wait until every message handed out is acked. Two cases must not hold
them: a batch MongoDB has not stored, given back unacknowledged (:func:`withhold`), and a
message no stream can ack any more (:func:`let_go_stuck_messages`). Both leave the offsets
uncommitted: the records are read again from the committed offsets.
"""

from __future__ import annotations

from typing import Any

import faust

from cinepulse_archiver import metrics
from cinepulse_common.logging import get_logger

log = get_logger(__name__)

#: how long faust's rebalance (or stop) may wait for the streams' messages to be acked
#: before the archiver lets the ones still waited for go, unacknowledged (:func:`withhold`)
STUCK_WAIT_EMPTY_S = 5.0
#: faust's consumer carries this diagnostic flag while it waits for the streams' acks
WAIT_EMPTY_FLAG = "WAIT_EMPTY"


def let_go_stuck_messages(app: faust.App, waiting_since: dict[str, float], now: float) -> int:
    """Let a rebalance (or a stop) go on when it waits for messages no stream can ack.

    Both agents read the user-event topics, so faust hands each such message to two
    streams and commits its offset once both have acked it. A rebalance first clears the
    streams' queues, then waits until every message handed out is acked; a message one
    agent has already taken while its copy waited in the other's queue can then never
    be acked, and as long as anything still refers to it (an agent's or take_events'
    local variables hold the last batch) the wait never ends: the worker hangs in
    "Wait for streams..." and archives nothing more. After ``STUCK_WAIT_EMPTY_S`` the
    messages still waited for are let go unacknowledged: their offsets are not
    committed, and the seek to the committed offsets that ends the rebalance reads them
    again (an agent that did process one writes it again: the same document)."""
    try:
        flags = app.consumer.diag.flags
    except Exception:  # no consumer yet
        return 0
    unacked = _unacked(app)
    if WAIT_EMPTY_FLAG not in flags or not unacked:
        waiting_since.clear()
        return 0
    started = waiting_since.setdefault("t", now)
    if now - started < STUCK_WAIT_EMPTY_S:
        return 0
    held = list(unacked)
    withhold(app, held)
    waiting_since.clear()
    metrics.MESSAGES_LET_GO.inc(len(held))
    log.warning(
        "faust's rebalance waited for messages no stream could ack; let go unacknowledged "
        "(read again after the rebalance)",
        messages=len(held),
        waited_s=round(now - started, 1),
        partitions=sorted({f"{m.topic}[{m.partition}]" for m in held}),
    )
    return len(held)


def withhold(app: faust.App, messages: list[Any]) -> None:
    """Mark ``messages`` acked without telling the consumer: every stream's ack of them is
    then a no-op, the consumer never counts their offsets as safe to commit, and it no
    longer waits for them (faust's rebalance and stop wait for every message handed to a
    stream). They are read again from the committed offsets."""
    unacked = _unacked(app)
    for message in messages:
        message.acked = True
        if unacked is not None:
            unacked.discard(message)


def _unacked(app: faust.App) -> Any:
    """The consumer's set of messages handed to streams and not acked yet (``None`` before
    the consumer exists)."""
    try:
        return app.consumer.unacked
    except Exception:  # no consumer (not started): nothing is tracked
        return None
