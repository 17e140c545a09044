"""``python -m cinepulse_common.emotion train | evaluate | classify``.

``train`` is a no-op when a usable artefact is already there (``--force`` retrains), so
``make setup`` can run it every time. Errors (no data set, no model) exit 2 with a message.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from cinepulse_common.emotion.goemotions import SPLITS, DatasetError, default_data_dir
from cinepulse_common.emotion.model import (
    MODEL_ENV,
    EmotionClassifier,
    EmotionModelError,
    default_model_path,
)
from cinepulse_common.emotion.training import evaluate, train

PROG = "python -m cinepulse_common.emotion"


def _say(message: str) -> None:
    print(f"[emotion] {message}", file=sys.stderr, flush=True)


def _train(args: argparse.Namespace) -> int:
    out: Path = args.out or default_model_path()
    if out.exists() and not args.force:
        try:
            present = EmotionClassifier.load(out)
        except EmotionModelError as exc:
            _say(f"retraining: {exc}")
        else:
            _say(f"model {present.version} present at {out}; nothing to do (--force retrains)")
            return 0
    metadata = train(args.data, out, n_jobs=args.jobs, progress=_say)
    _say(
        f"{metadata['version']}: dev macro-F1 {metadata['dev']['macro_f1']:.4f}, "
        f"test macro-F1 {metadata['test']['macro_f1']:.4f}"
    )
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

    p = commands.add_parser("train", help="train the model from GoEmotions (skips if present)")
    p.add_argument("--data", type=Path, default=None, help=data_help)
    p.add_argument("--out", type=Path, default=None, help=model_help)
    p.add_argument("--force", action="store_true", help="retrain even if the artefact exists")
    p.add_argument("--jobs", type=int, default=-1, help="worker processes (default: all cores)")
    p.set_defaults(run=_train)

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
