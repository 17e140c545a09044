"""Batch fallback of the Spark path on MongoDB raw data, written apart until an admin promotes it."""

__version__ = "0.1.0"
