"""Shared fixtures.

Unit tests (tests/unit) need nothing running. Integration tests (tests/integration) use the
real local stack: the session fixture starts it, or reuses it when it is already up, and
each test gets isolated state of its own: a topic prefix in Kafka, a database in PostgreSQL
(cloned from a migrated template) and a database on the MongoDB-protocol server.
"""
