"""The real components of the local stack, each started as a process on loopback.

Each component knows how to install itself (download or build, cached), start, answer a
probe (a real protocol request, not just an open port), report its pid and stop.
"""

from cinepulse_devstack.components.base import Component
from cinepulse_devstack.components.kafka import Kafka, kafka_cluster_id
from cinepulse_devstack.components.mongo import Mongo
from cinepulse_devstack.components.monitoring import Prometheus, Pushgateway
from cinepulse_devstack.components.postgres import Postgres

__all__ = [
    "Component",
    "Kafka",
    "Mongo",
    "Postgres",
    "Prometheus",
    "Pushgateway",
    "kafka_cluster_id",
]
