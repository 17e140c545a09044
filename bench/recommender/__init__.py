"""The recommender on MovieLens-small through the warehouse: quality against its baselines,
training time, and serving next to its own framework ceiling, in one run.

* Data: the 3,000 TMDB movies and the 57,578 MovieLens ratings of those movies (610 users),
  loaded through the shared load step into a fresh, migrated database.
* Quality: one real training run (``run_training`` with the default settings, as
  ``cinepulse-recommender train`` does): every candidate (popularity, implicit's ALS,
  LightFM, RP3beta, EASE^R, a blend) on the same per-user time split (each user's latest
  20% held out), the same candidates and the same exclusions; each tuned on a validation
  split carved from the training part (see docs/recommender.md). NDCG@10, P@10, R@10 on the test part and NDCG@10 on validation (what
  picks the served model); training time with tuning and of the final fit alone. The
  served model's ratio to ALS is the headline.
* Serving: ``python -m cinepulse_recommender serve`` (uvicorn, uvloop, httptools; one
  process) with that model; ``hey`` at a fixed concurrency (:data:`CONCURRENCY`),
  interleaved rounds of (a) ``GET /healthz`` of the same process (the framework ceiling),
  (b) a known user's recommendations (the precomputed top-N), (c) the same user with
  ``exclude_seen=false`` (scored on the fly over every candidate), (d) a cold-start user
  in a genre, (e) similar movies, (f) a user who rated movies after the model was trained
  (ratings landed through the shared load step just before serving): their history read
  from the facts at request time and scored (issue 23); then (b) and (f) at a steady
  :data:`STEADY_RATE` req/s, the target's load. A second server process reads the history
  on every request (``CINEPULSE_HISTORY__TTL_S=0``): its own (a) and (f). Request-time
  scoring's targets are against the same process's /healthz in the same run: req/s at
  least 0.2x saturated, p99 at most 3x at the steady load. Every request carries an
  internal client's API key (``X-API-Key``, checked as in production).
* Scale (:mod:`bench.recommender_scale`): each candidate's fit time and peak memory at
  2,500 and 20,000 items of a synthetic catalogue.

``python -m bench.recommender serving`` runs the serving part alone (the model trained
without tuning); ``python -m bench.recommender`` the quality part alone, without the stack.

The parts: :mod:`.benchmark` (the runs), :mod:`.load` (the serving load), :mod:`.tables` (the
report rows), :mod:`.offline` (quality without the stack), :mod:`.parameters` (sizes,
targets, serving configurations); :mod:`.__main__` is the command line. The package exports
``run`` for ``make bench`` (``python -m bench recommender``).
"""

from __future__ import annotations

from bench.recommender.benchmark import run, serving
from bench.recommender.offline import movielens_data, quality

__all__ = ["movielens_data", "quality", "run", "serving"]
