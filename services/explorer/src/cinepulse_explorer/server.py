"""The explorer's server: ``streamlit run`` this file (``cinepulse-explorer`` does).

An ``st.App`` (Streamlit's Starlette server) serving the page (:mod:`cinepulse_explorer.app`)
with one route of ours beside Streamlit's own (``/_stcore/health`` and the page): ``/metrics``
(:mod:`cinepulse_explorer.metrics`), on the same port, unless ``CINEPULSE_METRICS_PORT`` is
set: then ``cinepulse-explorer`` serves it on that port alone (as every other service does in
the chart) and this server has no ``/metrics``.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st
from starlette.routing import Route

from cinepulse_common.observability import record_build_info
from cinepulse_common.settings import load_settings
from cinepulse_explorer import __version__
from cinepulse_explorer.metrics import metrics_endpoint
from cinepulse_explorer.settings import ExplorerSettings

PAGE = Path(__file__).with_name("app.py")

record_build_info("explorer", __version__)
# cinepulse-explorer checked the settings before starting Streamlit: they load here too
SEPARATE_METRICS = bool(load_settings(ExplorerSettings).metrics_port)
app = st.App(
    str(PAGE),
    routes=[] if SEPARATE_METRICS else [Route("/metrics", metrics_endpoint, methods=["GET"])],
)
