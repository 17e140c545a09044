"""The container images that ``make images`` builds, run with podman as the chart runs them:
a read-only root filesystem with tmpfs at the paths the image declares writable
(``io.cinepulse.writable-paths``), the local stack reached over the host network.

Each image runs as the non-root user 10001 (its configured User and ``id`` inside); each
service answers its health check; each job answers ``--help`` with exit 0; the migrations
image migrates a fresh database; the Spark image finds Java, spark-submit, its jars and the
emotion classifier; the recommender imports lightfm (OpenMP).

``make test`` does not collect this folder; ``make test-images`` runs it. An image that was
not built is skipped (CINEPULSE_IMAGES_REQUIRED=1 turns that into a failure, for CI);
CINEPULSE_IMAGE_TAG picks the tag (default: the workspace version, e.g. 0.1.0).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import tomllib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from cinepulse_devstack import Stack

pytestmark = pytest.mark.images

ROOT = Path(__file__).resolve().parents[2]
UID = "10001"
START_TIMEOUT_S = 90


@dataclass(frozen=True)
class Service:
    """An image that serves: its health path, on the port given by ``port_env``."""

    name: str
    health: str
    needs: tuple[str, ...]  # stack components whose variables it gets
    args: tuple[str, ...] = ()
    port_env: str = "CINEPULSE_PORT"
    env: dict[str, str] = field(default_factory=dict)


SERVICES = (
    Service(
        "event-gateway",
        "/healthz",
        ("kafka",),
        env={"CINEPULSE_AUTH__KEYS": json.dumps({"images-test": "images-test-write-key"})},
    ),
    Service("api", "/healthz", ("postgres",)),
    Service("archiver", "/healthz", ("kafka", "mongo"), port_env="CINEPULSE_WEB_PORT"),
    Service("recommender", "/healthz", ("postgres",), args=("serve",)),
    Service("explorer", "/_stcore/health", ("postgres",)),
)
JOBS = ("tmdb-fetcher", "pandas-fallback", "quality", "migrations", "spark-jobs")
ALL = tuple(s.name for s in SERVICES) + JOBS


def _tag() -> str:
    if tag := os.environ.get("CINEPULSE_IMAGE_TAG"):
        return tag
    with (ROOT / "pyproject.toml").open("rb") as f:
        return str(tomllib.load(f)["project"]["version"])


def _image(podman: list[str], name: str) -> dict[str, Any]:
    """The image's inspect record; skipped (or failed, when required) if it is not built."""
    ref = f"cinepulse/{name}:{_tag()}"
    out = subprocess.run([*podman, "image", "inspect", ref], capture_output=True, text=True)
    if out.returncode != 0:
        message = f"{ref} is not built (make image-{name})"
        if os.environ.get("CINEPULSE_IMAGES_REQUIRED"):
            pytest.fail(message)
        pytest.skip(message)
    record: dict[str, Any] = json.loads(out.stdout)[0]
    return record


def _run_args(image: dict[str, Any]) -> list[str]:
    """`podman run` options as in the chart: read-only root, tmpfs where the image writes."""
    labels = image["Config"]["Labels"]
    writable = [p for p in labels["io.cinepulse.writable-paths"].split(",") if p]
    args = ["--rm", "--read-only", "--network", "host", "--pull", "never"]
    for path in writable:
        args += ["--tmpfs", f"{path}:rw,mode=1777"]
    return args


def _podman_run(
    podman: list[str], name: str, *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    image = _image(podman, name)
    cmd = [*podman, "run", *_run_args(image), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def _env_args(env: dict[str, str]) -> list[str]:
    return [arg for key, value in env.items() for arg in ("-e", f"{key}={value}")]


def _ref(name: str) -> str:
    return f"cinepulse/{name}:{_tag()}"


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    """The local stack: started for this session, or reused if it is already up."""
    with Stack().running() as s:
        yield s


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.mark.parametrize("name", ALL)
def test_runs_as_non_root(podman: list[str], name: str) -> None:
    image = _image(podman, name)
    user = str(image["Config"].get("User", ""))
    assert user.split(":")[0] == UID, f"configured User is {user!r}"
    out = _podman_run(podman, name, "--entrypoint", "id", _ref(name))
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"uid={UID}(cinepulse) gid={UID}(cinepulse)"), out.stdout
    labels = image["Config"]["Labels"]
    assert labels["org.opencontainers.image.version"], labels


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.name)
def test_service_answers_health(podman: list[str], stack: Stack, service: Service) -> None:
    image = _image(podman, service.name)
    port = _free_port()
    run_id = uuid.uuid4().hex[:8]
    container = f"cinepulse-images-test-{service.name}-{run_id}"
    env = {service.port_env: str(port), **service.env}
    for component in service.needs:
        env.update(getattr(stack, component).env())
    if service.name == "archiver":  # its own consumer group, topics and database
        env |= {
            "CINEPULSE_APP_ID": f"images-test-{run_id}",
            "CINEPULSE_KAFKA__TOPIC_PREFIX": f"img{run_id}.",
            "CINEPULSE_MONGO__DATABASE": f"raw_img{run_id}",
        }
    cmd = [*podman, "run", "--detach", "--name", container, *_run_args(image)[1:], *_env_args(env)]
    started = subprocess.run(
        [*cmd, _ref(service.name), *service.args], capture_output=True, text=True
    )
    assert started.returncode == 0, started.stderr
    try:
        url = f"http://127.0.0.1:{port}{service.health}"
        deadline = time.monotonic() + START_TIMEOUT_S
        status = None
        while time.monotonic() < deadline:
            try:
                status = httpx.get(url, timeout=2).status_code
            except httpx.HTTPError:
                status = None
            if status == 200:
                break
            state = subprocess.run(
                [*podman, "inspect", "--format", "{{.State.Running}}", container],
                capture_output=True,
                text=True,
            )
            if state.stdout.strip() != "true":
                break
            time.sleep(1)
        logs = subprocess.run([*podman, "logs", container], capture_output=True, text=True)
        assert status == 200, f"{url}: {status}\n{logs.stdout[-3000:]}{logs.stderr[-3000:]}"
    finally:
        subprocess.run([*podman, "rm", "--force", "--time", "5", container], capture_output=True)


@pytest.mark.parametrize("name", JOBS)
def test_job_answers_help(podman: list[str], name: str) -> None:
    out = _podman_run(podman, name, _ref(name), "--help")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "usage:" in out.stdout.lower(), out.stdout


def test_migrations_image_migrates_a_fresh_database(podman: list[str], stack: Stack) -> None:
    _image(podman, "migrations")
    db = f"t_images_{uuid.uuid4().hex[:8]}"
    dsn = stack.postgres.create_database(db)
    try:
        out = _podman_run(
            podman, "migrations", "-e", f"CINEPULSE_POSTGRES__DSN={dsn}", _ref("migrations")
        )
        assert out.returncode == 0, out.stderr[-3000:]
        import psycopg

        with psycopg.connect(dsn) as conn:
            row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        assert row is not None and row[0], row
    finally:
        stack.postgres.drop_database(db)


def test_migrations_image_runs_the_metabase_commands(podman: list[str]) -> None:
    """The chart's metabase-setup hook and Metabase's init container run
    ``python -m cinepulse_metabase ...`` from the migrations image."""
    out = _podman_run(
        podman,
        "migrations",
        "--entrypoint",
        "python",
        _ref("migrations"),
        "-m",
        "cinepulse_metabase",
        "--help",
    )
    assert out.returncode == 0, out.stderr[-3000:]
    for command in ("prepare-database", "provision", "wait-database"):
        assert command in out.stdout, out.stdout


def test_recommender_image_loads_lightfm(podman: list[str]) -> None:
    code = "import lightfm, implicit; from lightfm import LightFM; LightFM(no_components=2)"
    out = _podman_run(
        podman, "recommender", "--entrypoint", "python", _ref("recommender"), "-c", code
    )
    assert out.returncode == 0, out.stderr[-3000:]


@pytest.mark.parametrize("name", ["pandas-fallback", "spark-jobs"])
def test_emotion_classifier_is_baked_in(podman: list[str], name: str) -> None:
    code = (
        "from cinepulse_emotion.model import classify_comments as c;"
        "print(c(['what a wonderful film'])[0].emotion)"
    )
    out = _podman_run(podman, name, "--entrypoint", "python", _ref(name), "-c", code)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip(), out.stdout


def test_spark_image_has_java_submit_and_jars(podman: list[str]) -> None:
    code = (
        "import os; from cinepulse_spark_jobs.jars import needed_jars; from pathlib import Path;"
        "print(len(needed_jars(Path(os.environ['CINEPULSE_JARS_DIR']))))"
    )
    out = _podman_run(
        podman, "spark-jobs", "--entrypoint", "python", _ref("spark-jobs"), "-c", code
    )
    assert out.returncode == 0, out.stderr[-3000:]
    submit = _podman_run(podman, "spark-jobs", _ref("spark-jobs"), "spark-submit", "--version")
    assert submit.returncode == 0, submit.stderr[-3000:]
    assert "version 4." in submit.stderr + submit.stdout
    # the SparkApplication's mainApplicationFile, run by spark-submit as the driver does
    main = _podman_run(
        podman,
        "spark-jobs",
        _ref("spark-jobs"),
        "spark-submit",
        "/opt/cinepulse/spark_main.py",
        "--help",
    )
    assert main.returncode == 0, main.stderr[-3000:]
    assert "usage: cinepulse-spark-jobs" in main.stdout, main.stdout


def test_spark_image_runs_the_aggregates_batch(podman: list[str], stack: Stack) -> None:
    """Spark in local mode inside the image (read-only root): JVM, pyspark, JDBC jar."""
    _image(podman, "spark-jobs")
    from cinepulse_migrations.cli import upgrade

    db = f"t_images_{uuid.uuid4().hex[:8]}"
    dsn = stack.postgres.create_database(db)
    try:
        upgrade(dsn, "head")
        env = {**stack.kafka.env(), "CINEPULSE_POSTGRES__DSN": dsn}
        out = _podman_run(
            podman,
            "spark-jobs",
            *_env_args(env),
            _ref("spark-jobs"),
            "aggregate",
            "--from",
            "2026-11-01",
            "--to",
            "2026-11-02",
            timeout=300,
        )
        assert out.returncode == 0, out.stderr[-3000:]
        assert '"job": "daily_aggregates"' in out.stdout, out.stdout[-2000:]
    finally:
        stack.postgres.drop_database(db)
