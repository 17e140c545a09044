"""The explorer against a real, migrated PostgreSQL database, read as a LOGIN role that is a
member of ``cinepulse_readonly`` (migration 0008): movies, events and aggregates are those of
``test_api`` (the real load step plus aggregate rows), with a week of daily activity added.

The page itself runs as ``python -m cinepulse_explorer`` (a Streamlit server on a free port)
and is opened in headless Debian chromium through Selenium, with the Debian chromedriver
(Selenium Manager is never asked to download anything). Screenshots of every tab go to the
test's tmp dir and to ``results/explorer-*.png`` (``results/explorer.png``: the top movies).
"""

from __future__ import annotations

import json
import shutil
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar, cast

import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families
from psycopg import sql
from psycopg.conninfo import make_conninfo

from cinepulse_common.paths import repo_root
from cinepulse_common.postgres import connect
from cinepulse_common.settings import PostgresSettings
from cinepulse_explorer import data
from tests.integration.services import ServiceProcess, free_port, service_env
from tests.integration.test_api import TODAY, fill_warehouse

pytestmark = pytest.mark.integration

T = TypeVar("T")

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
needs_browser = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="Debian chromium and chromium-driver are not installed (scripts/setup.sh installs "
    "them: apt-get install chromium chromium-driver)",
)

#: events per day of the seeded week, by type
ACTIVITY = {"watch": 30, "rate": 20, "comment": 6, "click": 12}


def _seed_activity(pg: PostgresSettings) -> None:
    """A week of ``agg_daily_activity`` ending TODAY, as the aggregation job writes it."""
    with connect(pg) as conn:
        for back in range(7):
            day = TODAY - timedelta(days=back)
            for event_type, events in ACTIVITY.items():
                conn.execute(
                    """INSERT INTO agg_daily_activity (date_key, event_type, events, users,
                           movies, source_flag) VALUES (%s, %s, %s, %s, %s, 'spark')""",
                    (int(day.strftime("%Y%m%d")), event_type, events + back, 3, 2),
                )


@pytest.fixture
def readonly_pg(pg_settings: PostgresSettings) -> Iterator[PostgresSettings]:
    """The seeded database, as a LOGIN role of this test's own in ``cinepulse_readonly``."""
    fill_warehouse(pg_settings)
    _seed_activity(pg_settings)
    role, password = f"explorer_{uuid.uuid4().hex[:10]}", uuid.uuid4().hex
    with connect(pg_settings, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} IN ROLE cinepulse_readonly").format(
                sql.Identifier(role), sql.Literal(password)
            )
        )
    dsn = make_conninfo(pg_settings.dsn.get_secret_value(), user=role, password=password)
    try:
        yield PostgresSettings(dsn=dsn)
    finally:
        with connect(pg_settings, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def test_the_readonly_role_reads_what_the_explorer_shows(readonly_pg: PostgresSettings) -> None:
    with connect(readonly_pg) as conn:
        conn.read_only = True
        assert data.fetch_date_span(conn) == (date(2026, 10, 11), date(2026, 12, 1))
        assert data.fetch_genres(conn) == ["Action", "Comedy", "Drama"]
        # the ranking function of migration 0010, called as the read-only role
        week = data.window_bounds("week", TODAY)
        top = data.fetch_top_movies(conn, *week)
        assert list(top.movies["title"]) == ["Beta", "Alpha", "Gamma"]  # as /api/top_movies
        assert list(top.movies["score"]) == pytest.approx([4.3541667, 4.21875, 3.53125])
        assert top.window_mean == pytest.approx(130 / 32)
        beta = top.movies.iloc[0]
        assert (beta["genres"], beta["watches"], beta["comments"], beta["clicks"]) == (
            "Comedy, Drama",
            4,
            1,
            2,
        )
        assert list(data.fetch_top_movies(conn, *week, genre="Drama").movies["movie_id"]) == [2, 1]
        # movie 5 has clicks but no dim_movie row (and no rating): never ranked
        nothing = data.fetch_top_movies(conn, *week, min_votes=1000)
        assert nothing.movies.empty and nothing.window_mean == pytest.approx(130 / 32)
        everything = data.fetch_top_movies(conn, None, TODAY)
        assert everything.movies["title"].iloc[0] == "Delta"

        activity = data.fetch_daily_activity(conn, TODAY - timedelta(days=2), TODAY)
        wide = data.daily_pivot(
            activity,
            series="event_type",
            metric="events",
            date_from=TODAY - timedelta(days=2),
            date_to=TODAY,
        )
        assert list(wide.columns) == ["watch", "rate", "click", "comment"]
        assert wide["watch"].tolist() == [32, 31, 30]
        genres = data.fetch_genre_daily(conn, TODAY, TODAY)
        assert genres.set_index("genre")["ratings"].to_dict() == {"Comedy": 22, "Drama": 14}

        first, last = date(2026, 10, 1), date(2026, 12, 31)
        everyone = data.fetch_emotion_daily(conn, first, last)
        weekly = data.emotion_trends(everyone, "week")
        assert weekly.comments.sum().to_dict() == {"neutral": 4, "joy": 3, "anger": 2, "sadness": 1}
        alpha = data.emotion_trends(data.fetch_emotion_daily(conn, first, last, movie_id=1), "day")
        assert alpha.comments.to_dict("list") == {"joy": [2, 0], "sadness": [0, 1]}
        comedy = data.emotion_trends(
            data.fetch_emotion_daily(conn, first, last, genre="Comedy"), "month"
        )
        assert comedy.comments.sum().to_dict() == {"anger": 2, "joy": 1}
        assert comedy.sentiment["mean_sentiment"].tolist() == pytest.approx([(0.4 - 1.0) / 3])
        movies = data.fetch_commented_movies(conn)
        assert movies.iloc[0].to_dict() == {"movie_id": 5, "title": "#5", "comments": 4}

        critic = data.fetch_user_activity(conn, "critic")
        assert critic is not None
        assert {k: critic[k] for k in ("watches", "ratings", "comments", "clicks")} == {
            "watches": 2,
            "ratings": 4,
            "comments": 1,
            "clicks": 3,
        }
        assert critic["mean_rating"] == pytest.approx(4.25)
        assert data.fetch_user_activity(conn, "nobody") is None
        assert data.fetch_recent_users(conn) == ["critic"]
        assert data.fetch_movie_titles(conn, [1, 3, 99]) == {1: "Alpha", 3: "Gamma"}
        conn.rollback()

        # the role sees the views only, and the explorer's session cannot write
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT count(*) FROM fact_rating")
        conn.rollback()
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("CREATE TEMPORARY TABLE scratch (i int)")


# --- in a real browser ----------------------------------------------------------------


#: the explorer's key, which the stand-in recommender requires (as the real one does)
EXPLORER_KEY = "explorer-key"


class _Recommender(BaseHTTPRequestHandler):
    """A stand-in for the recommender's ``/api/recommendations`` (movie 3 without a title:
    the explorer takes it from the warehouse); 401 without the explorer's key."""

    def do_GET(self) -> None:
        if self.headers.get("X-API-Key") != EXPLORER_KEY:
            refused = b'{"detail": "missing X-API-Key header"}'
            self.send_response(401)
            self.send_header("WWW-Authenticate", "X-API-Key")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(refused)))
            self.end_headers()
            self.wfile.write(refused)
            return
        body = json.dumps(
            {
                "items": [
                    {"movie_id": 2, "title": "Beta", "score": 0.42},
                    {"movie_id": 3, "score": 0.91},
                ],
                "strategy": "lightfm",
                "model_version": "test-1",
            }
        ).encode()
        self.send_response(200 if self.path.startswith("/api/recommendations?") else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture
def recommender_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recommender)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def explorer(
    readonly_pg: PostgresSettings, tmp_path: Path
) -> Iterator[Callable[..., ServiceProcess]]:
    """Start ``python -m cinepulse_explorer`` with the given recommender URL (and any other
    variables, e.g. the login's); ready once Streamlit's ``/_stcore/health`` answers."""
    started: list[ServiceProcess] = []

    def start(recommender: str, **extra: str) -> ServiceProcess:
        port = free_port()
        env = service_env(
            CINEPULSE_POSTGRES__DSN=readonly_pg.dsn.get_secret_value(),
            CINEPULSE_RECOMMENDER_URL=recommender,
            CINEPULSE_RECOMMENDER_API_KEY=EXPLORER_KEY,
            CINEPULSE_RECOMMENDER_TIMEOUT_S="1",
            **extra,
        )
        proc = ServiceProcess(
            "cinepulse_explorer",
            env,
            port,
            tmp_path / f"explorer-{port}.log",
            args=["--address", "127.0.0.1", "--port", str(port)],
        )
        started.append(proc)
        return proc.start(ready_path="/_stcore/health", timeout_s=90)

    yield start
    for proc in started:
        proc.stop()


@pytest.fixture
def browser() -> Iterator[Any]:
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("Debian chromium and chromium-driver are not installed")
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1400,1700",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


class Page:
    """The explorer as the browser shows it; every wait takes a screenshot when it fails."""

    def __init__(self, driver: Any, shots: Path) -> None:
        from selenium.webdriver.support.ui import WebDriverWait

        self.driver = driver
        self.wait = WebDriverWait(driver, 60, poll_frequency=0.25)
        self.shots = shots

    def until(self, condition: Callable[[], T | None]) -> T:
        """``condition()`` once it is truthy (within 60 s)."""
        try:
            return cast(T, self.wait.until(lambda _driver: condition() or False))
        except Exception:
            self.shot("timeout")
            raise

    def find(self, css: str, root: Any = None) -> list[Any]:
        from selenium.webdriver.common.by import By

        return list((root or self.driver).find_elements(By.CSS_SELECTOR, css))

    def panel(self) -> Any:
        """The tab panel on show (None while the page loads)."""
        shown = [p for p in self.find('[data-testid="stTabPanel"]') if p.is_displayed()]
        return shown[0] if shown else None

    def open_tab(self, name: str) -> None:
        tab = self.until(
            lambda: next((t for t in self.find('[data-testid="stTab"]') if t.text == name), None)
        )
        tab.click()
        self.until(lambda: tab.get_attribute("aria-selected") == "true")

    def wait_text(self, *needles: str) -> str:
        """The shown panel's text once it holds every needle."""

        def ready() -> str | None:
            panel = self.panel()
            text = str(panel.text) if panel is not None else ""
            return text if all(n in text for n in needles) else None

        return self.until(ready)

    def wait_table(self) -> Any:
        """The first table (``st.dataframe``) of the shown panel."""
        return self.until(
            lambda: next(iter(self.find('[data-testid="stDataFrame"]', self.panel())), None)
        )

    def wait_charts(self, count: int) -> list[Any]:
        """At least ``count`` charts drawn (an SVG or canvas of non-zero size) in the panel."""

        def drawn() -> list[Any] | None:
            charts = self.find('[data-testid="stVegaLiteChart"]', self.panel())
            marks = [
                c for c in charts if any(m.size["width"] > 0 for m in self.find("svg, canvas", c))
            ]
            return marks if len(marks) >= count else None

        return self.until(drawn)

    def assert_no_traceback(self) -> None:
        assert not self.find('[data-testid="stException"]'), "the page shows a traceback"

    def shot(self, name: str) -> Path:
        path = self.shots / f"explorer-{name}.png"
        self.driver.save_screenshot(str(path))
        return path


def _publish(path: Path, name: str) -> None:
    """Keep a copy under results/ (git-ignored), beside the benchmark report."""
    results = repo_root() / "results"
    results.mkdir(exist_ok=True)
    shutil.copyfile(path, results / name)


@needs_browser
def test_the_explorer_shows_the_seeded_data_in_a_browser(
    explorer: Callable[[str], ServiceProcess], recommender_url: str, browser: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    app = explorer(recommender_url)
    page = Page(browser, tmp_path)
    browser.get(app.url)

    # top movies: the month ending at the latest day with data, best first, and its chart
    page.wait_text("Ranked by a Bayesian average")
    table = page.wait_table()

    def titles() -> list[str] | None:
        cells = [
            c.get_attribute("textContent")
            for c in table.find_elements(By.CSS_SELECTOR, '[data-testid^="glide-cell-2-"]')
        ]
        return cells if len(cells) == 3 else None

    assert page.until(titles) == ["Beta", "Alpha", "Gamma"]
    page.wait_charts(1)
    text = page.wait_text("Beta", "Alpha", "Gamma", "score")
    assert "Delta" not in text  # 40 days before: outside the month
    page.assert_no_traceback()
    top = page.shot("top-movies")
    _publish(top, "explorer.png")

    # activity over time: the seeded week, per event type, and per genre
    page.open_tab("Activity")
    text = page.wait_text("Events per day", "By genre", "watch", "rate", "Comedy", "Drama")
    page.wait_charts(2)
    page.assert_no_traceback()
    _publish(page.shot("activity"), "explorer-activity.png")

    # emotions: comments per emotion and the mean sentiment, per week
    page.open_tab("Emotions")
    page.wait_text("Comments per emotion, per week", "Mean sentiment", "joy", "anger")
    page.wait_charts(2)
    page.assert_no_traceback()
    _publish(page.shot("emotions"), "explorer-emotions.png")

    # the user's counts and the recommender's list, titles completed from the warehouse
    page.open_tab("User")
    text = page.wait_text("Watches", "Mean rating", "4.25", "strategy lightfm, model test-1")
    recs = page.wait_table()
    page.until(lambda: "Gamma" in (recs.get_attribute("textContent") or ""))
    content = recs.get_attribute("textContent") or ""
    assert content.index("Gamma") < content.index("Beta")  # by score, best first
    page.assert_no_traceback()
    _publish(page.shot("user"), "explorer-user.png")
    assert top.stat().st_size > 10_000

    # /metrics on the explorer's own port: the page's queries, counted and timed
    metrics = httpx.get(f"{app.url}/metrics", timeout=10)
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(metrics.text)
        for s in family.samples
    }
    ok = ("outcome", "ok")
    for query in ("date_span", "top_movies", "daily_activity", "recommendations"):
        key = ("cinepulse_explorer_queries_total", (ok, ("query", query)))
        assert samples.get(key, 0) >= 1, query
    assert ("cinepulse_build_info", (("service", "explorer"), ("version", "0.1.0"))) in samples


def test_the_explorer_serves_metrics_on_its_port(
    explorer: Callable[[str], ServiceProcess],
) -> None:
    """No browser: the server (st.App) answers /metrics beside Streamlit's health and page."""
    app = explorer(f"http://127.0.0.1:{free_port()}")
    assert httpx.get(f"{app.url}/_stcore/health", timeout=10).text == "ok"
    assert "<html" in httpx.get(app.url, timeout=10).text.lower()
    metrics = httpx.get(f"{app.url}/metrics", timeout=10)
    assert metrics.status_code == 200
    assert 'cinepulse_build_info{service="explorer",version="0.1.0"} 1.0' in metrics.text
    assert "# TYPE cinepulse_explorer_queries_total counter" in metrics.text


@needs_browser
def test_a_recommender_that_is_down_is_a_notice_not_a_traceback(
    explorer: Callable[[str], ServiceProcess], browser: Any, tmp_path: Path
) -> None:
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    app = explorer(closed)
    page = Page(browser, tmp_path)
    browser.get(app.url)
    page.open_tab("User")
    text = page.wait_text("Watches", "Recommender unavailable")
    assert f"the recommender at {closed} did not answer" in text
    alerts = page.find('[data-testid="stAlert"]', page.panel())
    assert any("Recommender unavailable" in a.text for a in alerts)
    page.assert_no_traceback()
    _publish(page.shot("recommender-down"), "explorer-recommender-down.png")
