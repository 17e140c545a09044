"""``cinepulse-explorer``: check the settings, then ``streamlit run`` the explorer in this
process: :mod:`cinepulse_explorer.server`, an ``st.App`` serving the page (``app.py``) and
``/metrics``.

The server runs headless (no browser opened, no e-mail prompt), sends no usage statistics,
watches no files and offers viewers no developer menu. With ``CINEPULSE_OIDC__*`` set, it
reads the login's secrets from a private file written here (:mod:`cinepulse_explorer.auth`).
Probes: ``GET /_stcore/health``; Prometheus: ``GET /metrics`` on ``CINEPULSE_METRICS_PORT`` (a thread of this process, before
Streamlit starts), or on the same port when it is 0.
"""

from __future__ import annotations

import argparse
import atexit
import shutil
from pathlib import Path

from cinepulse_common.settings import load_settings
from cinepulse_explorer.settings import ExplorerSettings

APP = Path(__file__).with_name("app.py")
SERVER = Path(__file__).with_name("server.py")


def streamlit_args(
    settings: ExplorerSettings, address: str, port: int, secrets: Path | None = None
) -> list[str]:
    """The ``streamlit run`` command line (without the program name); ``secrets``: the
    login's secrets file (:func:`cinepulse_explorer.auth.write_secrets`), the only one read."""
    return [
        "run",
        str(SERVER),
        "--server.headless=true",
        f"--server.address={address}",
        f"--server.port={port}",
        "--server.fileWatcherType=none",
        "--server.runOnSave=false",
        "--browser.gatherUsageStats=false",
        "--client.toolbarMode=viewer",
        f"--logger.level={settings.log_level.lower()}",
        *([f"--secrets.files={secrets}"] if secrets else []),
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="cinepulse-explorer",
        description="Serve the Streamlit data explorer. Configuration comes from CINEPULSE_* "
        "variables (see the README); flags override address and port.",
    )
    parser.add_argument("--address", help="listen address (default: CINEPULSE_ADDRESS)")
    parser.add_argument("--port", type=int, help="listen port (default: CINEPULSE_PORT)")
    args = parser.parse_args(argv)  # before the settings: --help needs none
    # fail here, with the variable's name, rather than on the first page view
    settings = load_settings(ExplorerSettings)
    address = args.address or settings.address
    if settings.metrics_port:
        from cinepulse_common.observability import start_metrics_server

        start_metrics_server(settings.metrics_port, addr=address)

    secrets = None
    if settings.oidc:
        from cinepulse_explorer.auth import write_secrets

        secrets = write_secrets(settings.oidc)
        # removed at a normal exit; a SIGTERM ends Streamlit's server without running exit
        # handlers, leaving the 0700 directory (in the chart: the pod's /tmp emptyDir, gone
        # with the pod)
        atexit.register(shutil.rmtree, secrets.parent, ignore_errors=True)

    from streamlit.web import cli as streamlit_cli

    streamlit_cli.main.main(
        args=streamlit_args(settings, address, args.port or settings.port, secrets),
        prog_name="streamlit",
    )


if __name__ == "__main__":
    main()
