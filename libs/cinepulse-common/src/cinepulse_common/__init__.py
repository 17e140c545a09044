"""Shared library for every Cinepulse service.

Modules:
    settings       one pydantic-settings base class and the component settings blocks
    logging        structured JSON logging (structlog)
    apikeys, access  API keys per client; who may read which user's data (api, recommender)
    observability  /metrics, /healthz, /readyz for FastAPI apps and plain processes
    events         the event envelope contract (docs/architecture.md)
    rules          transform_rules.json: models, loader, schema
    topics         Kafka topic names
    kafka, postgres, mongo  client factories
    paths          the checkout, the download cache, the shared data sets
"""

__version__ = "0.1.0"
