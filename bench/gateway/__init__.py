"""Event gateway throughput against the real local Kafka, next to its two ceilings, in one run.

* (a) HTTP ceiling: :data:`.ceilings.bare_app`, a FastAPI app whose ``POST /api/events`` only parses
  the JSON body and answers 202 - the same uvicorn (uvloop, httptools) as the gateway, no
  Kafka. The gateway's single-event path is compared with it (c/a).
* (b) Kafka ceiling: the raw confluent-kafka producer (``make_producer``, acks=all,
  idempotent, the gateway's overrides) sending the records the gateway would write, in its
  own process. The gateway's batch path is compared with it (d/b).
* (c) the gateway, one event per request (``POST /api/events``);
* (d) the gateway, 100 events per request (``POST /api/events/batch``).

HTTP load comes from ``hey`` (a Go binary, its own process; :mod:`bench.loadgen`); its CPU
time is measured next to the server's so the table says whether the generator was the
bottleneck. Every topic lives under a prefix unique to the run and is deleted at the end.

The parts: :mod:`.benchmark` (the run), :mod:`.load` (the bodies and ``hey``, with the Kafka
check), :mod:`.ceilings` ((a) and (b)), :mod:`.table` (the report rows), :mod:`.parameters`
(sizes and targets). ``python -m bench gateway`` runs it; the package exports ``run`` for
that harness.
"""

from __future__ import annotations

from bench.gateway.benchmark import run

__all__ = ["run"]
