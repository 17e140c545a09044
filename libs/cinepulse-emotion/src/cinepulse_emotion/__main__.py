"""``python -m cinepulse_emotion train | evaluate | classify``.

``train`` is a no-op when a usable artefact is already there (``--force`` retrains), so
``make setup`` can run it every time; without GoEmotions it trains a demo model from the
shipped sample (:mod:`cinepulse_emotion.sample`). A demo model is replaced once
GoEmotions is there; a model trained from GoEmotions is never replaced by a demo one. Errors
(no data set, no model) exit 2 with a message. ``sample`` cuts the shipped sample.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from cinepulse_emotion.goemotions import SPLITS, DatasetError, default_data_dir
from cinepulse_emotion.model import (
    MODEL_ENV,
    EmotionClassifier,
    EmotionModelError,
    default_model_path,
)
from cinepulse_emotion.sample import SAMPLE_DIR, SAMPLE_SEED, cut_sample, training_data
from cinepulse_emotion.training import evaluate, train

PROG = "python -m cinepulse_emotion"
DEMO_HINT = (
    "the full model: `cinepulse-data fetch goemotions`, then `make setup` (or "
    f"`{PROG} train`) replaces the demo model"
)


def _say(message: str) -> None:
    print(f"[emotion] {message}", file=sys.stderr, flush=True)


def _train(args: argparse.Namespace) -> int:
    out: Path = args.out or default_model_path()
    present = None
    if out.exists():
        try:
            present = EmotionClassifier.load(out)
        except EmotionModelError as exc:
            _say(f"retraining: {exc}")
    if present is not None and not present.is_demo and not args.force:
        # a full model: nothing to do, whatever the data (none needed, none read)
        _say(f"model {present.describe()} present at {out}; nothing to do (--force retrains)")
        return 0
    try:
        source = training_data(args.data)
    except DatasetError as exc:
        if present is None or args.force:
            raise
        _say(f"keeping {present.describe()} at {out}: {exc}")
        return 0
    if present is None and out.exists() and source.demo:
        # an artefact that does not load (another scikit-learn, another format) may be a
        # full model: kept aside, never overwritten by a demo one
        kept = out.with_name(out.name + ".unloadable")
        out.replace(kept)
        _say(f"the artefact that does not load is kept as {kept}")
    if present is not None and source.demo and not present.is_demo:
        # a demo model never replaces one trained from GoEmotions, not even with --force
        _say(
            f"keeping {present.describe()} at {out}: GoEmotions is not found "
            "(`cinepulse-data where goemotions`), and a demo model never replaces a full one"
        )
        if args.force:
            raise EmotionModelError(
                f"refusing to replace the full model at {out} with a demo model: fetch "
                "GoEmotions (`cinepulse-data fetch goemotions`) or pass --out elsewhere"
            )
        return 0
    if present is not None and not args.force:
        if not (present.is_demo and not source.demo):
            _say(f"model {present.describe()} present at {out}; nothing to do (--force retrains)")
            if present.is_demo:
                _say(DEMO_HINT)
            return 0
        _say(f"replacing the demo model at {out} with one trained from GoEmotions")
    metadata = train(source.data.root, out, n_jobs=args.jobs, progress=_say)
    dev, test = metadata["dev"], metadata["test"]
    if metadata["demo"]:
        _say(
            f"DEMO MODEL {metadata['version']}: trained on the shipped sample of "
            f"{metadata['train_comments']:,} GoEmotions comments (GoEmotions itself is not "
            "found: `cinepulse-data where goemotions`); macro-F1 "
            f"{test['macro_f1']:.4f} on the sample's "
            f"{test['comments']:,} held-out comments (dev {dev['macro_f1']:.4f})"
        )
        _say(DEMO_HINT)
    else:
        _say(
            f"{metadata['version']}: dev macro-F1 {dev['macro_f1']:.4f}, "
            f"test macro-F1 {test['macro_f1']:.4f}"
        )
    return 0


def _sample(args: argparse.Namespace) -> int:
    source = args.data or default_data_dir()
    cut_sample(source, args.out, seed=args.seed)
    _say(f"sample of {source} written to {args.out}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    classifier = EmotionClassifier.load(args.model)
    print(json.dumps(evaluate(classifier, args.data, args.split), indent=2))
    return 0


def _classify(args: argparse.Namespace) -> int:
    classifier = EmotionClassifier.load(args.model)
    for emotion in classifier.classify(args.texts):
        print(json.dumps(asdict(emotion), ensure_ascii=False))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Cinepulse's emotion + sentiment classifier for comment text."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    data_help = f"GoEmotions folder (default: {default_data_dir()})"
    model_help = f"model artefact (default: ${MODEL_ENV} or {default_model_path()})"

    p = commands.add_parser(
        "train",
        help="train the model from GoEmotions, else from the shipped sample (a demo model); "
        "skips if present",
    )
    p.add_argument("--data", type=Path, default=None, help=data_help)
    p.add_argument("--out", type=Path, default=None, help=model_help)
    p.add_argument("--force", action="store_true", help="retrain even if the artefact exists")
    p.add_argument("--jobs", type=int, default=-1, help="worker processes (default: all cores)")
    p.set_defaults(run=_train)

    p = commands.add_parser(
        "sample", help="cut a sample of GoEmotions in its format (how the shipped one was made)"
    )
    p.add_argument("--data", type=Path, default=None, help=data_help)
    p.add_argument("--out", type=Path, default=SAMPLE_DIR, help=f"default: {SAMPLE_DIR}")
    p.add_argument("--seed", type=int, default=SAMPLE_SEED)
    p.set_defaults(run=_sample)

    p = commands.add_parser("evaluate", help="macro-F1 and per-class F1 on a GoEmotions split")
    p.add_argument("--data", type=Path, default=None, help=data_help)
    p.add_argument("--model", type=Path, default=None, help=model_help)
    p.add_argument("--split", choices=SPLITS, default="test")
    p.set_defaults(run=_evaluate)

    p = commands.add_parser("classify", help="classify texts; one JSON object per line")
    p.add_argument("texts", nargs="+", metavar="TEXT")
    p.add_argument("--model", type=Path, default=None, help=model_help)
    p.set_defaults(run=_classify)

    args = parser.parse_args(argv)
    try:
        code: int = args.run(args)
    except (DatasetError, EmotionModelError) as exc:
        print(f"{PROG} {args.command}: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    raise SystemExit(main())
