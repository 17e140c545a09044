"""Shared code of the Cinepulse DAGs: configuration, the pod template, alerts, streaming health."""
