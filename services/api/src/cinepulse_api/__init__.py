"""Serving API (FastAPI) over the warehouse: top movies, user stats, emotion trends, movies, trending."""

__version__ = "0.1.0"
