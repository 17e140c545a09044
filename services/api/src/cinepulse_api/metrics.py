"""Prometheus metrics of the api (names start ``cinepulse_api_``); created once per process
so that building several apps (tests) does not register them twice."""

from __future__ import annotations

from cinepulse_common.observability import HttpMetrics

HTTP = HttpMetrics("cinepulse_api")
