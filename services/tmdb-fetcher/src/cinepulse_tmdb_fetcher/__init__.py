"""Pulls movie metadata from the TMDB API into MongoDB raw.movies, Kafka topic `movie` and stg_movies (batch; Airflow runs it)."""

__version__ = "0.1.0"
