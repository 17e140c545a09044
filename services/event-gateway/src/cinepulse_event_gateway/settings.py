"""Settings of event-gateway (``CINEPULSE_*`` variables; nested blocks use ``__``)."""

from __future__ import annotations

from cinepulse_common.settings import CinepulseSettings, KafkaSettings


class EventGatewaySettings(CinepulseSettings):
    kafka: KafkaSettings
