"""``cinepulse-explorer``: check the settings, then ``streamlit run`` the explorer in this
process: :mod:`cinepulse_explorer.server`, an ``st.App`` serving the page (``app.py``) and
``/metrics``.

The server runs headless (no browser opened, no e-mail prompt), sends no usage statistics,
watches no files and offers viewers no developer menu. Probes: ``GET /_stcore/health``;
Prometheus: ``GET /metrics`` on the same port.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cinepulse_common.settings import load_settings
from cinepulse_explorer.settings import ExplorerSettings

APP = Path(__file__).with_name("app.py")
SERVER = Path(__file__).with_name("server.py")


def streamlit_args(settings: ExplorerSettings, address: str, port: int) -> list[str]:
    """The ``streamlit run`` command line (without the program name)."""
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

    from streamlit.web import cli as streamlit_cli

    streamlit_cli.main.main(
        args=streamlit_args(settings, args.address or settings.address, args.port or settings.port),
        prog_name="streamlit",
    )


if __name__ == "__main__":
    main()
