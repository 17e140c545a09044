"""Spark Structured Streaming from Kafka into the PostgreSQL star schema, and the daily batch aggregates."""

__version__ = "0.1.0"
