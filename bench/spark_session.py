"""Spark in the benchmarks' own process. A benchmark that starts a SparkSession does so in
:func:`spark_session`, which stops it, and the JVM under it, when the block ends, however it
ends; the harness (:mod:`bench.__main__`) also calls :func:`stop_spark` after every
benchmark, so the next one never shares or inherits a session, nor a JVM started with
another benchmark's settings (a new session in a live JVM would reuse it). Nothing here
imports pyspark unless a benchmark already did."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def _stop_session(session: Any, stopped: list[str]) -> None:
    with contextlib.suppress(Exception):  # a JVM already gone has no queries to stop
        for query in list(session.streams.active):
            query.stop()
            stopped.append(f"streaming query {query.name or query.id}")
    try:
        session.stop()
    except Exception as exc:  # the JVM died under it: what is left is cleared below
        stopped.append(f"SparkSession (its stop failed: {type(exc).__name__})")
    else:
        stopped.append("SparkSession")


def _stop_jvm(gateway: Any) -> str:
    """Close the py4j gateway and end its JVM: pyspark starts it with a stdin pipe and the
    JVM exits when that pipe closes; killed if it has not within 30 s."""
    proc = getattr(gateway, "proc", None)
    with contextlib.suppress(Exception):
        gateway.shutdown()
    if proc is None:  # a gateway pyspark did not launch (PYSPARK_GATEWAY_PORT): not ours
        return "the py4j gateway"
    with contextlib.suppress(Exception):
        if proc.stdin is not None:
            proc.stdin.close()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
    return f"the JVM (pid {proc.pid})"


def stop_spark() -> list[str]:
    """Stop any Spark this process runs: the streaming queries and SparkSession(s), the
    SparkContext, then the JVM. Returns what it stopped, for the log (empty: none ran).
    Best effort at every step, so a JVM already gone does not keep the rest running; it
    does not raise."""
    if "pyspark" not in sys.modules:  # no benchmark touched Spark in this process
        return []
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    stopped: list[str] = []
    sessions: list[Any] = []
    candidates: list[Any] = [SparkSession._activeSession, SparkSession._instantiatedSession]
    with contextlib.suppress(Exception):  # asks the JVM: the current thread's session
        candidates.append(SparkSession.getActiveSession())
    for session in candidates:
        if session is not None and all(session is not s for s in sessions):
            sessions.append(session)
    for session in sessions:
        _stop_session(session, stopped)
    SparkSession._activeSession = None
    SparkSession._instantiatedSession = None

    context = SparkContext._active_spark_context
    if context is not None:  # a context without a session, or one whose stop failed
        with contextlib.suppress(Exception):
            context.stop()
        SparkContext._active_spark_context = None
        if not sessions:
            stopped.append("SparkContext")

    gateway = SparkContext._gateway
    if gateway is not None:
        stopped.append(_stop_jvm(gateway))
        SparkContext._gateway = None
        SparkContext._jvm = None
    return stopped


@contextlib.contextmanager
def spark_session(start: Callable[[], SparkSession]) -> Iterator[SparkSession]:
    """``with spark_session(lambda: make_spark(...)) as spark:``: the session ``start``
    returns, stopped with its JVM when the block ends, on error too (and when ``start``
    itself fails half-way, the JVM up but no session)."""
    try:
        yield start()
    finally:
        stop_spark()
