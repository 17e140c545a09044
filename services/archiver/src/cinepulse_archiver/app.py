"""The faust app: archive every record to MongoDB, dead-letter the unusable, count live.

:func:`create_app` builds the app, its topics, the counters' tables and the MongoDB sink,
then registers the parts on it, in this order (faust registers each as it is decorated):

* :mod:`cinepulse_archiver.agents`: the ``archive`` agent (every record to MongoDB before
  its offset is committed; the unusable to the dead-letter topic; skipped offsets read
  again from Kafka), the ``count`` agent (per-minute windowed counters), the start task and
  the timers (counters' expiry, stuck messages let go, consumer lag);
* :mod:`cinepulse_archiver.web`: the web views (faust's web server): ``/healthz``,
  ``/readyz``, ``/metrics`` (unless ``metrics_port`` serves it on a port of its own),
  ``/counters/events_per_minute``, ``/counters/trending``.

faust's own views that expose its internals (``/table`` - the tables and their keys'
values, ``/router`` - which worker holds which key, the statistics and ``/assignment``,
``/graph``, ``/performance``) are switched off in :data:`FAUST_WEB_VIEWS_OFF`; ``/``
answers faust's plain ``{"status": "OK"}``.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import faust

from cinepulse_archiver.agents import TABLE_CLEANUP_S, register_agents
from cinepulse_archiver.parts import Parts
from cinepulse_archiver.settings import ArchiverSettings
from cinepulse_archiver.sink import MongoSink
from cinepulse_archiver.web import register_views
from cinepulse_common import topics
from cinepulse_common.kafka import faust_credentials

#: faust's built-in web views, each off by its own setting (faust.web.base.BLUEPRINT_FLAGS):
#: ``/table`` lists the tables and reads their keys, ``/router`` maps keys to workers'
#: URLs, the statistics (at ``/``, with ``/assignment``) show the sensors and the
#: partitions held, ``/graph`` the service tree, ``/performance`` lag and throughput.
#: Nobody needs them (the counters and /metrics are the archiver's own views) and they
#: answer anyone who can reach the port. (The archiver uses no ``@app.table_route``,
#: which would need ``/router`` across workers.)
FAUST_WEB_VIEWS_OFF: dict[str, Any] = {
    "web_tables_enabled": False,
    "web_router_enabled": False,
    "web_stats_enabled": False,
    "web_graph_enabled": False,
    "web_metrics_enabled": False,
}


def broker_urls(bootstrap: str) -> list[str]:
    return [f"kafka://{h.strip()}" for h in bootstrap.split(",") if h.strip()]


def create_app(
    settings: ArchiverSettings, loghandlers: list[logging.Handler] | None = None
) -> faust.App:
    """The faust app. ``loghandlers`` replace faust's coloured console logging (the CLI
    passes the JSON handler of :func:`cinepulse_common.logging.configure_logging`)."""
    k = settings.kafka
    logging_options: dict[str, Any] = {}
    if loghandlers is not None:
        logging_options = {
            "loghandlers": loghandlers,
            "logging_config": {
                "version": 1,
                "disable_existing_loggers": False,
                "root": {"level": settings.log_level, "handlers": []},
            },
        }
    app = faust.App(
        settings.app_id,
        broker=broker_urls(k.bootstrap_servers),
        broker_client_id=k.client_id,
        broker_credentials=faust_credentials(k),
        store="memory://",
        key_serializer="raw",
        value_serializer="raw",
        web_enabled=True,
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_in_thread=False,
        **FAUST_WEB_VIEWS_OFF,
        datadir=str(settings.data_dir),
        topic_replication_factor=settings.replication_factor,
        # the tables' changelog topics: faust requires as many partitions as their source
        # topics (a mismatch crash-looped the counters on the real node, 6 against 3)
        topic_partitions=settings.source_partitions,
        producer_acks=-1,
        consumer_auto_offset_reset="earliest",
        table_cleanup_interval=TABLE_CLEANUP_S,
        **logging_options,
        # a crashed worker's partitions move on after this, not faust's default 60 s
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=max(1.0, settings.session_timeout_s / 4),
    )

    movie_topic_name = k.topic(topics.MOVIE)
    source_names = [k.topic(t) for t in (*topics.USER_EVENT_TOPICS, topics.MOVIE)]
    sources = app.topic(*source_names, key_type=bytes, value_type=bytes)
    user_events = app.topic(
        *(k.topic(t) for t in topics.USER_EVENT_TOPICS), key_type=bytes, value_type=bytes
    )
    dlq = app.topic(k.topic(topics.DEAD_LETTER), key_type=bytes, value_type=bytes)

    def must_let_go() -> str | None:
        """Why the archive agent must give its batch back now, if it must: faust's rebalance
        and its stop wait for the agent to finish the batch, and a MongoDB outage must not
        hold them (``app.rebalancing`` is set as soon as the partitions are revoked)."""
        if app.should_stop:
            return "stopping"
        if app.rebalancing:
            return "rebalance"
        return None

    sink = MongoSink(
        settings.mongo,
        settings.mongo_retry_max_s,
        should_yield=must_let_go,
        op_timeout_s=settings.mongo_op_timeout_s,
    )
    # Any: faust's WindowWrapperT stubs lack relative_to(), which the class has. No
    # key_index: faust never prunes one (see cinepulse_archiver.counters)
    per_minute: Any = app.Table(
        "events_per_minute", default=int, key_type=str, value_type=int, partitions=None
    ).tumbling(60, expires=timedelta(minutes=settings.counter_minutes))
    per_movie: Any = app.Table(
        "movie_events_per_minute", default=int, key_type=str, value_type=int, partitions=None
    ).tumbling(60, expires=timedelta(minutes=max(settings.trending_minutes, 60)))

    parts = Parts(
        app=app,
        settings=settings,
        sink=sink,
        sources=sources,
        user_events=user_events,
        dlq=dlq,
        source_names=source_names,
        movie_topic_name=movie_topic_name,
        per_minute=per_minute,
        per_movie=per_movie,
    )
    register_agents(parts)
    register_views(parts)
    return app
