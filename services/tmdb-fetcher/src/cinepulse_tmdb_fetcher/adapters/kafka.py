"""The ``movie`` topic (the :class:`~cinepulse_tmdb_fetcher.ports.MoviePublisher` port)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from confluent_kafka import KafkaError, Message

from cinepulse_common import topics
from cinepulse_common.kafka import make_producer
from cinepulse_common.settings import KafkaSettings
from cinepulse_tmdb_fetcher.ports import MovieVersion, SinkError


class KafkaMoviePublisher:
    """Key = movie id, value = the normalised movie with its fetch time and content hash."""

    def __init__(self, settings: KafkaSettings) -> None:
        self.settings = settings
        self.topic = settings.topic(topics.MOVIE)
        self._producer: Any = None  # made at the first publish: a dry run never connects

    def publish(self, versions: Sequence[MovieVersion]) -> None:
        if self._producer is None:
            self._producer = make_producer(self.settings)
        errors: list[str] = []

        def on_delivery(err: KafkaError | None, _msg: Message) -> None:
            if err is not None:
                errors.append(f"{err.name()}: {err.str()}")

        for v in versions:
            record = v.movie.model_dump(mode="json") | {
                "fetched_at": v.fetched_at.isoformat(),
                "content_hash": v.content_hash,
                "source": "tmdb",
            }
            self._producer.produce(
                self.topic,
                key=str(v.movie_id).encode(),
                value=json.dumps(record, ensure_ascii=False).encode(),
                on_delivery=on_delivery,
            )
            self._producer.poll(0)
        left = self._producer.flush(60)
        if left or errors:
            raise SinkError(
                f"Kafka did not acknowledge {left + len(errors)} movie records"
                + (f": {errors[0]}" if errors else "")
            )

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(30)
