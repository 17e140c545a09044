"""The explorer's login against a real OpenID Connect provider: ``oidc-provider-mock`` (an
Authlib provider for tests) on a free port of this process, the real explorer
(``python -m cinepulse_explorer``, with ``CINEPULSE_OIDC__*``) over the seeded warehouse of
``test_explorer``, and headless Debian chromium (that module's fixtures and ``Page``) going
through the provider's own authorization page:

* a visitor who is not logged in gets the login button and no data (no query runs);
* an analyst (``groups``: ``analysts``) sees the data tabs, and the User tab refuses;
* an internal user (``groups``: ``cinepulse-internal``) sees the user's stats and
  recommendations.

Screenshots go to ``results/explorer-login*.png``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from cinepulse_explorer.auth import NEEDS_INTERNAL
from tests.integration import test_explorer as base
from tests.integration.services import ServiceProcess
from tests.integration.test_explorer import CHROMEDRIVER, CHROMIUM, Page, _publish

# test_explorer's fixtures, found by name here: the seeded warehouse as a read-only login,
# the stand-in recommender, the explorer's process and the browser
readonly_pg = base.readonly_pg
recommender_url = base.recommender_url
explorer = base.explorer
browser = base.browser

pytestmark = pytest.mark.integration

ANALYST = "analyst@example.com"
OPERATOR = "operator@example.com"
COOKIE_SECRET = "explorer-login-test-cookie-secret-0123456789"


@pytest.fixture
def chromium() -> None:
    """Fail (not skip) without the browser: these tests are the login's only proof."""
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.fail(
            "Debian chromium and chromium-driver are not installed (scripts/setup.sh installs "
            "them: apt-get install chromium chromium-driver)"
        )


@pytest.fixture
def provider() -> Iterator[str]:
    """The provider's base URL; two predefined users, one of them internal."""
    from oidc_provider_mock import User, run_server_in_thread

    users = [
        User(sub=ANALYST, claims={"email": ANALYST, "groups": ["analysts"]}),
        User(sub=OPERATOR, claims={"email": OPERATOR, "groups": ["ops", "cinepulse-internal"]}),
    ]
    with run_server_in_thread(port=0, user_claims=users) as server:
        yield f"http://localhost:{server.server_port}"


@pytest.fixture
def app(
    chromium: None,
    provider: str,
    explorer: Callable[..., ServiceProcess],
    recommender_url: str,
) -> ServiceProcess:
    """The explorer with the login on; its redirect URI on its own port (Streamlit fills in
    ``{port}``)."""
    return explorer(
        recommender_url,
        CINEPULSE_OIDC__SERVER_METADATA_URL=f"{provider}/.well-known/openid-configuration",
        CINEPULSE_OIDC__CLIENT_ID="cinepulse-explorer",
        CINEPULSE_OIDC__CLIENT_SECRET="explorer-client-secret",
        CINEPULSE_OIDC__REDIRECT_URI="http://127.0.0.1:{port}/oauth2callback",
        CINEPULSE_OIDC__COOKIE_SECRET=COOKIE_SECRET,
    )


def _queries(app: ServiceProcess) -> float:
    """Every warehouse query the explorer has run (its /metrics, on its port here)."""
    text = httpx.get(f"{app.url}/metrics", timeout=10).text
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "cinepulse_explorer_queries_total"
    )


def _login_page(page: Page) -> Any:
    """The explorer's login button, once the page shows it."""
    return page.until(
        lambda: next(
            (b for b in page.find('[data-testid="stButton"] button') if b.text == "Log in"), None
        )
    )


def _log_in(page: Page, who: str) -> None:
    """From the explorer's login button through the provider's authorization page."""
    _login_page(page).click()
    choice = page.until(
        lambda: next(
            (b for b in page.find('button[name="sub"]') if b.get_attribute("value") == who), None
        )
    )
    assert "Authorize Client" in page.driver.page_source  # the provider's own page
    choice.click()


def test_without_login_the_explorer_serves_no_data(
    app: ServiceProcess, browser: Any, tmp_path: Path
) -> None:
    page = Page(browser, tmp_path)
    browser.get(app.url)
    _login_page(page)
    body = browser.find_element("tag name", "body").text
    assert "Log in to explore" in body
    assert not page.find('[data-testid="stTab"]')
    for shown in ("Ranked by a Bayesian average", "Beta", "Watches", "Data from"):
        assert shown not in body
    page.assert_no_traceback()
    _publish(page.shot("login"), "explorer-login.png")
    # not one warehouse query ran for the visitor; Streamlit's callback refuses a forged code
    assert _queries(app) == 0
    forged = httpx.get(f"{app.url}/oauth2callback?code=forged&state=forged", timeout=10)
    assert forged.status_code < 500
    assert not any(name.startswith("_streamlit_user") for name in forged.cookies)
    assert _queries(app) == 0


def test_the_user_tab_needs_the_internal_role(
    app: ServiceProcess, browser: Any, tmp_path: Path
) -> None:
    page = Page(browser, tmp_path)
    browser.get(app.url)

    # an analyst: every data tab, the User tab refused
    _log_in(page, ANALYST)
    page.wait_text("Ranked by a Bayesian average", "Beta")
    sidebar = page.until(lambda: next(iter(page.find('[data-testid="stSidebar"]')), None))
    page.until(lambda: f"Logged in as {ANALYST}" in sidebar.text)
    page.open_tab("Activity")
    page.wait_text("Events per day")
    page.open_tab("User")
    text = page.wait_text("needs the internal role")
    assert text.strip() == NEEDS_INTERNAL
    assert "Watches" not in text and "Recommendations" not in text
    page.assert_no_traceback()
    _publish(page.shot("login-analyst"), "explorer-login-analyst.png")

    # a new session (the login cookies gone): the login button again, then an internal user
    browser.delete_all_cookies()
    browser.get(app.url)
    _log_in(page, OPERATOR)
    page.open_tab("User")
    text = page.wait_text("Watches", "Mean rating", "4.25", "strategy lightfm, model test-1")
    assert "needs the internal role" not in text
    recs = page.wait_table()
    page.until(lambda: "Gamma" in (recs.get_attribute("textContent") or ""))
    page.assert_no_traceback()
    _publish(page.shot("login-internal"), "explorer-login-internal.png")
