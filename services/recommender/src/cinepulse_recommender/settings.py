"""Settings of recommender (``CINEPULSE_*`` variables; nested blocks use ``__``).

Examples: ``CINEPULSE_POSTGRES__DSN=postgresql://cinepulse:...@postgres:5432/cinepulse``,
``CINEPULSE_MODEL__NO_COMPONENTS=64``, ``CINEPULSE_MODEL__EPOCHS=40``,
``CINEPULSE_WEIGHTS__CLICK=0.05``, ``CINEPULSE_EVALUATION__TEST_FRACTION=0.2``,
``CINEPULSE_POLL_INTERVAL_S=30``.

Who may read recommendations: the api's keys, roles and user-token secret, from the same
variables (``CINEPULSE_AUTH__KEYS_PATH=/var/run/secrets/cinepulse/api-keys``,
``CINEPULSE_AUTH__ROLES={"explorer": "internal", "web": "frontend"}``,
``CINEPULSE_AUTH__USER_TOKEN_SECRET=...``); the rules are in :mod:`cinepulse_common.access`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, model_validator

from cinepulse_common.access import KeyedServiceSettings
from cinepulse_common.settings import PostgresSettings, metrics_port_field

ItemFeature = Literal["genres", "keywords", "companies"]
ITEM_FEATURES: tuple[ItemFeature, ...] = ("genres", "keywords", "companies")


class WeightSettings(BaseModel):
    """How much one event says a user likes a movie. A (user, movie) pair's weight is the
    sum over its events, capped at ``max_pair``."""

    rating: float = Field(
        1.0, ge=0, description="a rating weighs rating / 5 times this (5 stars: all of it)"
    )
    min_rating: float = Field(
        0.0,
        ge=0,
        le=5,
        description="ratings below this are left out (0: every rating is a sign of interest)",
    )
    watch_completed: float = Field(1.0, ge=0, description="a watch marked completed")
    watch_partial: float = Field(
        0.5, ge=0, description="a watch not completed weighs completion_ratio times this"
    )
    comment: float = Field(0.5, ge=0, description="a comment")
    click: float = Field(0.1, ge=0, description="a click (poster, trailer, ...)")
    max_pair: float = Field(2.0, gt=0, description="cap of one (user, movie) pair's weight")


class ModelSettings(BaseModel):
    """LightFM's hyper-parameters (see lightfm.LightFM) and the item features it uses."""

    # warp-kos is not offered: LightFM does not take sample weights with it
    loss: Literal["warp", "bpr", "logistic"] = "warp"
    no_components: int = Field(64, ge=1, le=1024)
    epochs: int = Field(30, ge=1, le=1000, description="the most epochs (see tune_epochs)")
    learning_rate: float = Field(0.05, gt=0)
    item_alpha: float = Field(1e-6, ge=0, description="L2 penalty on item features")
    user_alpha: float = Field(1e-6, ge=0, description="L2 penalty on user features")
    max_sampled: int = Field(10, ge=1, description="WARP's most negatives sampled per positive")
    threads: int = Field(2, ge=1, le=64)
    random_state: int = 42
    item_features: list[ItemFeature] = Field(
        default_factory=lambda: list(ITEM_FEATURES),
        description="dim_movie bridges used as item features, next to each movie's identity",
    )
    min_feature_movies: int = Field(
        2, ge=1, description="a keyword or company tagging fewer movies is not a feature"
    )
    tune_epochs: bool = Field(
        True,
        description="pick the number of epochs (<= epochs, every epoch_step) on a validation "
        "split carved from the training part (never the test part)",
    )
    epoch_step: int = Field(5, ge=1)


class AlsSettings(BaseModel):
    """The implicit ALS baseline (implicit.cpu.als.AlternatingLeastSquares)."""

    factors: int = Field(64, ge=1)
    regularization: float = Field(0.05, ge=0)
    alpha: float = Field(10.0, gt=0, description="confidence = 1 + alpha * weight")
    iterations: int = Field(15, ge=1)
    tune: bool = Field(
        True, description="pick factors/regularization/alpha on the validation split too"
    )


class ItemModelSettings(BaseModel):
    """What the item x item candidates (:mod:`~.itemmodels`) share: a dense matrix over the
    items with pairs, so a bound on their number."""

    enabled: bool = True
    tune: bool = Field(True, description="pick the parameters on the validation split")
    max_items: int = Field(
        5000,
        ge=1,
        description="above this many items with pairs the dense candidate is not trained "
        "(EASE turns sparse, see ease.sparse_neighbours; RP3beta is skipped; the run says "
        "which): its dense matrix takes items^2 x 8 bytes (5,000: 200 MB) to build",
    )


class EaseSettings(ItemModelSettings):
    """The EASE^R candidate (closed form; its inverse takes items^3 time)."""

    lam: float = Field(100.0, gt=0, description="L2 penalty lambda when not tuned")
    sparse_neighbours: int = Field(
        100,
        ge=0,
        description="above max_items, fit each item's column over its this many most "
        "co-occurring items (a sparse matrix, no dense inverse) rather than skip EASE "
        "(0: skip it)",
    )


class Rp3Settings(ItemModelSettings):
    """The RP3beta candidate (a 3-step random walk user-item-user-item, its transition
    probabilities raised to ``alpha``, divided by the target item's popularity^``beta``)."""

    alpha: float = Field(0.5, gt=0, description="when not tuned")
    beta: float = Field(0.5, ge=0, description="when not tuned")
    neighbours: int = Field(100, ge=1, description="the most similar items kept per item")


class EvaluationSettings(BaseModel):
    """The time-based split: each user's latest interactions are held out."""

    test_fraction: float = Field(0.2, gt=0, lt=1, description="share of each user's pairs held out")
    min_user_pairs: int = Field(
        5, ge=2, description="users with fewer (user, movie) pairs stay train-only"
    )
    k: int = Field(10, ge=1, le=100, description="cut-off of precision, recall and NDCG")
    refit: bool = Field(
        True,
        description="serve the chosen model refitted with its chosen parameters on every pair "
        "of the window (false: the model fitted on the training part, as measured)",
    )
    min_improvement: float = Field(
        0.0,
        ge=0,
        description="publish only when NDCG@k beats the published model's by more than this "
        "fraction (0: any improvement)",
    )


class HistorySettings(BaseModel):
    """Fresh recommendations: serving reads a user's history from the facts at request time
    (cached briefly) and scores it, so their latest events count without retraining."""

    enabled: bool = Field(
        True,
        description="score a user's history read from the facts at request time (false: the "
        "history the model was trained on, i.e. the precomputed top-N)",
    )
    ttl_s: float = Field(
        5.0,
        ge=0,
        description="how long a user's history read from the facts is reused (0: no cache, "
        "every request reads it)",
    )
    cache_size: int = Field(10_000, ge=1, description="the most users' histories cached")
    timeout_s: float = Field(
        0.5,
        gt=0,
        description="longest wait for a history read; past it (or on any database error) the "
        "answer is the precomputed top-N, with strategy model_stale",
    )
    connections: int = Field(
        4, ge=1, le=64, description="database connections for history reads (beside 2 others)"
    )


class RecommenderSettings(KeyedServiceSettings):
    """The ``auth`` block (``CINEPULSE_AUTH__*``, refused off in production) comes from
    :class:`~cinepulse_common.access.KeyedServiceSettings`: the same as the api's; only
    ``serve`` uses it."""

    postgres: PostgresSettings
    host: str = "0.0.0.0"  # noqa: S104 - listens inside its pod
    port: int = Field(8001, ge=1, le=65535)
    metrics_port: int = metrics_port_field()
    pushgateway_url: str | None = Field(
        None, description="Prometheus Pushgateway: `train` pushes its run's metrics there"
    )
    weights: WeightSettings = WeightSettings()
    model: ModelSettings = ModelSettings()
    als: AlsSettings = AlsSettings()
    ease: EaseSettings = EaseSettings()
    rp3beta: Rp3Settings = Rp3Settings()
    blend: bool = Field(
        True, description="also try a blend of the best factor and item models (weight tuned)"
    )
    evaluation: EvaluationSettings = EvaluationSettings()
    history: HistorySettings = HistorySettings()
    window_days: int | None = Field(
        None, ge=1, description="train on the last N days of events (None: every event)"
    )
    top_n: int = Field(
        100, ge=1, le=1000, description="recommendations precomputed per known user at load"
    )
    poll_interval_s: float = Field(
        30.0, gt=0, description="how often the server asks the registry for a newer model"
    )
    readiness_timeout_s: float = Field(2.0, gt=0, description="deadline of the /readyz check")
    registry_timeout_s: float = Field(
        5.0, gt=0, description="longest wait for a database connection when polling the registry"
    )

    @model_validator(mode="after")
    def _k_within_top_n(self) -> RecommenderSettings:
        if self.evaluation.k > self.top_n:
            raise ValueError("evaluation.k must not exceed top_n")
        return self
