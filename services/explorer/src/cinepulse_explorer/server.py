"""The explorer's server: ``streamlit run`` this file (``cinepulse-explorer`` does).

An ``st.App`` (Streamlit's Starlette server) serving the page (:mod:`cinepulse_explorer.app`)
with one route of ours beside Streamlit's own (``/_stcore/health`` and the page): ``/metrics``
(:mod:`cinepulse_explorer.metrics`), on the same port, like every other service's.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st
from starlette.routing import Route

from cinepulse_common.observability import record_build_info
from cinepulse_explorer import __version__
from cinepulse_explorer.metrics import metrics_endpoint

PAGE = Path(__file__).with_name("app.py")

record_build_info("explorer", __version__)
app = st.App(str(PAGE), routes=[Route("/metrics", metrics_endpoint, methods=["GET"])])
