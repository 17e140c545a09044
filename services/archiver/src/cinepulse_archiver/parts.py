"""What :func:`cinepulse_archiver.app.create_app` builds and the agents
(:mod:`cinepulse_archiver.agents`) and the web views (:mod:`cinepulse_archiver.web`) share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import faust
from faust.types import TopicT

from cinepulse_archiver.settings import ArchiverSettings
from cinepulse_archiver.sink import MongoSink


@dataclass(frozen=True)
class Parts:
    app: faust.App
    settings: ArchiverSettings
    #: writes to MongoDB; gives way when the worker must let go of its batch
    sink: MongoSink
    #: every user-event topic and ``movie``: what the archive agent reads
    sources: TopicT
    #: the user-event topics: what the count agent reads
    user_events: TopicT
    dlq: TopicT
    #: the names of the source topics (with the deployment's prefix)
    source_names: list[str]
    movie_topic_name: str
    #: the counters' windowed tables (Any: faust's WindowWrapperT stubs lack relative_to(),
    #: which the class has): events per type, events per movie, per minute
    per_minute: Any
    per_movie: Any
