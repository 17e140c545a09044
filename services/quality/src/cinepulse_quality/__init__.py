"""Data quality: reconciliation of every copy of the events, per time window."""

__version__ = "0.1.0"
