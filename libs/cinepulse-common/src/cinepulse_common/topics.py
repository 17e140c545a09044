"""Kafka topic names fixed by docs/architecture.md."""

from __future__ import annotations

MOVIE = "movie"
USER_WATCH_LOG = "user_watch_log"
USER_RATING_LOG = "user_rating_log"
USER_COMMENT_LOG = "user_comment_log"
USER_CLICK_LOG = "user_click_log"
#: records a consumer cannot use, with the reason in the record headers
DEAD_LETTER = "dead_letter"

USER_EVENT_TOPICS: tuple[str, ...] = (
    USER_WATCH_LOG,
    USER_RATING_LOG,
    USER_COMMENT_LOG,
    USER_CLICK_LOG,
)
ALL_TOPICS: tuple[str, ...] = (MOVIE, *USER_EVENT_TOPICS, DEAD_LETTER)
