"""``cinepulse-archiver``: run the faust worker (configuration from CINEPULSE_* variables)."""

from __future__ import annotations

import argparse
import logging
import sys

from cinepulse_archiver import __version__
from cinepulse_archiver.app import create_app
from cinepulse_archiver.settings import ArchiverSettings
from cinepulse_common.logging import configure_logging
from cinepulse_common.observability import record_build_info
from cinepulse_common.settings import load_settings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="cinepulse-archiver",
        description="Archive every Kafka record (user events and movies) to MongoDB, "
        "dead-letter what cannot be parsed, keep live counters. Configuration comes from "
        "CINEPULSE_* variables (see the README).",
    )
    parser.add_argument("--web-port", type=int, help="port of /metrics and the counters")
    args = parser.parse_args(argv)
    overrides = {"web_port": args.web_port} if args.web_port else {}
    settings = load_settings(ArchiverSettings, **overrides)
    configure_logging("archiver", settings.log_level, settings.log_json)
    record_build_info("archiver", __version__)
    app = create_app(settings, loghandlers=list(logging.getLogger().handlers))
    sys.argv = [
        "cinepulse-archiver",
        "worker",
        "--loglevel",
        settings.log_level.lower(),
        "--web-port",
        str(settings.web_port),
        "--web-host",
        settings.web_host,
    ]
    app.main()


if __name__ == "__main__":
    main()
