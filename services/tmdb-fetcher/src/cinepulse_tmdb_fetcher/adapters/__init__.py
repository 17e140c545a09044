"""The adapters: the ports of :mod:`cinepulse_tmdb_fetcher.ports` implemented against the
real stores. ``kafka`` publishes the ``movie`` topic, ``mongo`` archives raw answers,
``postgres`` keeps ``stg_movies``, the watermark and the run history."""
