"""The recommender's candidates at two catalogue sizes: training time and peak memory.

A synthetic catalogue (:func:`synthetic`): ``items`` movies in 20 genres, popularity Zipf
within each genre; as many users as movies, each keeping mostly to one genre with
:data:`PAIRS_PER_USER` pairs. Every candidate is fitted once, with its default parameters
and no tuning (the tuning trials multiply these times by their count: 36 for ALS, 6 for
RP3beta, 5 for EASE), in a fresh child process: ``peak`` is that process's peak resident
memory (``VmHWM``), ``fit peak`` the part above the memory it held before the fit (the data
and the libraries), with the high-water mark reset just before the fit. Not ``ru_maxrss``:
Linux keeps it across the fork and exec that start the child, so it reports the parent's
size at the fork (every row read 576 MB). Above the ``max_items`` bound (5,000) the trainer fits EASE^R
sparse (each item's column over its 100 most co-occurring items) and skips RP3beta, as
reported; the note gives what EASE's dense fit would need there.

``python -m bench.recommender_scale [items ...]`` prints one JSON line per (size, candidate).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.report import Figure, Table

SIZES = (2_500, 20_000)
PAIRS_PER_USER = 40
GENRES = 20
FAMILIES = ("popularity", "als", "lightfm", "rp3beta", "ease")


def synthetic(items: int, seed: int = 7) -> tuple[Any, Any]:
    """``(pairs, item features)`` of a synthetic catalogue of ``items`` movies."""
    from cinepulse_recommender.interactions import Pairs
    from cinepulse_recommender.models import item_features

    rng = np.random.default_rng(seed)
    users = items
    genre = np.arange(items) % GENRES
    members = [np.flatnonzero(genre == g) for g in range(GENRES)]
    zipf = [1.0 / np.arange(1, len(m) + 1) ** 0.8 for m in members]
    zipf = [z / z.sum() for z in zipf]
    user_rows, item_rows = [], []
    for u in range(users):
        g = int(rng.integers(GENRES))
        own = rng.choice(members[g], size=PAIRS_PER_USER * 3 // 4, replace=False, p=zipf[g])
        other = rng.choice(items, size=PAIRS_PER_USER - len(own), replace=False)
        picked = np.unique(np.concatenate([own, other]))
        user_rows.append(np.full(len(picked), u))
        item_rows.append(picked)
    user = np.concatenate(user_rows).astype(np.int64)
    item = np.concatenate(item_rows).astype(np.int64)
    pairs = Pairs(
        user_ids=np.array([f"u{u}" for u in range(users)], dtype=np.str_),
        item_ids=np.arange(1, items + 1, dtype=np.int64),
        user=user,
        item=item,
        weight=rng.choice([0.5, 0.8, 1.0, 2.0], size=len(user)).astype(np.float64),
        at=np.arange(len(user), dtype=np.float64),
    )
    features, _ = item_features(items, [(i, f"genre:g{genre[i]}") for i in range(items)], 2)
    return pairs, features


def _status_mb(field: str) -> float:
    """A ``/proc/self/status`` memory field (``VmHWM``: peak resident, ``VmRSS``: now), MB;
    per address space, so a fresh ``exec`` starts it anew (``ru_maxrss`` does not)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024  # kB
    raise RuntimeError(f"no {field} in /proc/self/status")


def _reset_peak() -> None:
    """Reset this process's resident high-water mark to its current size (Linux 4.0+)."""
    Path("/proc/self/clear_refs").write_text("5")


def _fit(family: str, items: int, out: Any) -> None:
    """In a child process: build the data, fit one candidate, report seconds and memory."""
    from cinepulse_recommender.itemmodels import Skipped, train_item_model
    from cinepulse_recommender.models import train_als, train_lightfm, train_popularity
    from cinepulse_recommender.settings import (
        AlsSettings,
        EaseSettings,
        ModelSettings,
        Rp3Settings,
    )

    pairs, features = synthetic(items)
    before = _status_mb("VmRSS")
    _reset_peak()
    t0 = time.perf_counter()
    if family == "popularity":
        trained: Any = train_popularity(pairs)
    elif family == "als":
        trained = train_als(pairs, AlsSettings(tune=False), 2, 10, None)
    elif family == "lightfm":
        trained = train_lightfm(pairs, features, ModelSettings(tune_epochs=False), 10, None)
    elif family == "rp3beta":
        trained = train_item_model(family, pairs, Rp3Settings(tune=False), 10, None)
    else:
        trained = train_item_model(family, pairs, EaseSettings(tune=False), 10, None)
    seconds = time.perf_counter() - t0
    peak = _status_mb("VmHWM")
    skipped = trained.reason if isinstance(trained, Skipped) else None
    sparse = bool(not skipped and trained.params.get("sparse"))
    out.put(
        {
            "items": items,
            "pairs": len(pairs),
            "family": family,
            "seconds": None if skipped else seconds,
            "peak_mb": peak,
            "fit_peak_mb": None if skipped else peak - before,
            "skipped": skipped,
            "sparse": sparse,
        }
    )


def measure(items: int, family: str) -> dict[str, Any]:
    ctx = mp.get_context("spawn")  # a fresh process: its peak memory is this fit's alone
    out = ctx.Queue()
    proc = ctx.Process(target=_fit, args=(family, items, out))
    proc.start()
    result: dict[str, Any] = out.get(timeout=3600)
    proc.join()
    return result


def table(results: list[dict[str, Any]]) -> Table:
    t = Table(
        f"Recommender training at scale (synthetic catalogue, as many users as movies, "
        f"~{PAIRS_PER_USER} pairs each; default parameters, no tuning; each fit in its own "
        "process)",
        "candidate",
    )
    for r in results:
        label = f"{r['family']} at {r['items']:,} items ({r['pairs']:,} pairs)"
        if r["skipped"]:
            label += f": skipped ({r['skipped']})"
        elif r.get("sparse"):
            label += ": sparse, 100 neighbours per item (above max_items)"
        t.add(
            label,
            {
                "fit": Figure(r["seconds"] if r["seconds"] is not None else float("nan"), "s"),
                "peak memory": Figure(r["peak_mb"], "MB", fmt=".0f"),
                "fit's own peak": Figure(
                    r["fit_peak_mb"] if r["fit_peak_mb"] is not None else float("nan"),
                    "MB",
                    fmt=".0f",
                ),
            },
            short=f"{r['family']} {r['items'] // 1000}k",
        )
    n = max(SIZES)
    t.notes.append(
        f"EASE^R at {n:,} items, if its bound were lifted: the Gram matrix and its inverse "
        f"are {n * n * 8 / 1e9:.1f} GB each in float64 (the fit holds both, plus copies), "
        f"and the inverse takes items^3 time: about {(n / 2_500) ** 3:.0f}x the 2,500-item fit"
    )
    return t


def run_all(sizes: tuple[int, ...] = SIZES) -> list[dict[str, Any]]:
    return [measure(items, family) for items in sizes for family in FAMILIES]


if __name__ == "__main__":
    chosen = tuple(int(a) for a in sys.argv[1:]) or SIZES
    for result in run_all(chosen):
        print(json.dumps(result), flush=True)
