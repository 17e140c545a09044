"""The images of the chart's bundled dependencies (``make images-deps``), each run with podman
the way the chart's StatefulSet runs it, then checked with a real client.

The chart is rendered (``helm template``: the default scenario with these images and the
FerretDB readiness probe) and each podman command is made from the StatefulSet: the pod's
runAsUser/runAsGroup, a read-only root where the container sets readOnlyRootFilesystem, its
dropped capabilities, its env (secretKeyRef values read from the rendered Secret), each
emptyDir as a tmpfs owned by the user (what fsGroup gives) and the data claim as a podman
volume. One change, since the tests share the host network: the ports move to free loopback
ports through the images' own variables (PGPORT, FERRETDB_LISTEN_ADDR, the Kafka listeners)
and the Service names in the URLs become 127.0.0.1.

An image not built is skipped (CINEPULSE_IMAGES_REQUIRED=1 makes it a failure); the chart
tools come from ``make setup``.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from cinepulse_devstack import chart
from cinepulse_devstack.config import StackSettings
from tests.images.chart_pod import Pod
from tests.integration.services import free_port

pytestmark = pytest.mark.images

ROOT = Path(__file__).resolve().parents[2]


def _pin(variable: str) -> str:
    """A Debian package's version, as scripts/images-deps.sh pins it."""
    text = (ROOT / "scripts" / "images-deps.sh").read_text()
    found = re.search(rf"^{variable}=(\S+)$", text, re.MULTILINE)
    assert found, f"{variable} is not in scripts/images-deps.sh"
    return found.group(1)


_STACK = StackSettings()
IMAGES = {
    "kafka": f"localhost/cinepulse/kafka:{_STACK.kafka_version}",
    "postgresql": f"localhost/cinepulse/postgres:{_pin('POSTGRES_MAJOR')}",
    "mongodb": f"localhost/cinepulse/mongodb:{_STACK.ferretdb_version.removeprefix('v')}",
    "prometheus": f"localhost/cinepulse/prometheus:{_pin('PROMETHEUS_VERSION')}",
    "pushgateway": f"localhost/cinepulse/pushgateway:{_pin('PUSHGATEWAY_VERSION')}",
}
#: the values a cluster with these images sets (FerretDB has no mongosh for the default probe)
FERRETDB_READINESS = {
    "exec": {"command": ["ferretdb-entrypoint", "ping"]},
    "periodSeconds": 10,
    "timeoutSeconds": 5,
}


def _require(podman: list[str], ref: str) -> None:
    if subprocess.run([*podman, "image", "exists", ref]).returncode != 0:
        message = f"{ref} is not built (make images-deps)"
        if os.environ.get("CINEPULSE_IMAGES_REQUIRED"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="module")
def chart_docs(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    try:
        chart.tool("helm")
    except chart.ChartToolMissing as exc:
        pytest.skip(str(exc))
    values: dict[str, Any] = {}
    for component in ("kafka", "postgresql", "mongodb"):
        repository, tag = IMAGES[component].rsplit(":", 1)
        values[component] = {"image": {"repository": repository, "tag": tag}}
    values["mongodb"]["readinessProbe"] = FERRETDB_READINESS
    overlay = tmp_path_factory.mktemp("chart") / "dep-images-values.yaml"
    overlay.write_text(yaml.safe_dump(values))
    rendered = chart.render([chart.chart_dir() / "ci" / "default-values.yaml", overlay])
    assert rendered.returncode == 0, rendered.stderr
    return chart.documents(rendered.stdout)


@pytest.fixture
def pod(podman: list[str], chart_docs: list[dict[str, Any]]) -> Iterator[Callable[[str], Pod]]:
    made: list[Pod] = []

    def make(component: str) -> Pod:
        _require(podman, IMAGES[component])
        made.append(Pod(podman, chart_docs, component))
        return made[-1]

    yield make
    for p in made:
        p.remove()


@pytest.mark.parametrize("component", ["kafka", "postgresql", "mongodb"])
def test_image_runs_as_the_charts_user(
    podman: list[str], pod: Callable[[str], Pod], component: str
) -> None:
    p = pod(component)
    user = p.spec["securityContext"]["runAsUser"]
    inspect = subprocess.run(
        [*podman, "image", "inspect", "--format", "{{.Config.User}}", IMAGES[component]],
        capture_output=True,
        text=True,
    )
    assert inspect.stdout.strip() == f"{user}:{p.spec['securityContext']['runAsGroup']}"
    assert p.container["image"] == IMAGES[component]


def _start_kafka(p: Pod, *, read_only: bool | None = None) -> dict[str, str | int | float | bool]:
    """The chart's Kafka on free ports, advertised on 127.0.0.1; its client configuration."""
    from confluent_kafka.admin import AdminClient

    port, controller = free_port(), free_port()
    env = p.env()
    for key in ("KAFKA_LISTENERS", "KAFKA_ADVERTISED_LISTENERS", "KAFKA_CONTROLLER_QUORUM_VOTERS"):
        value = env[key].replace(":9092", f":{port}").replace(":9093", f":{controller}")
        env[key] = re.sub(r"//[^:/]+:", "//127.0.0.1:", value)
    p.start(env, read_only=read_only)
    bootstrap: dict[str, str | int | float | bool] = {"bootstrap.servers": f"127.0.0.1:{port}"}
    p.until(lambda: AdminClient(bootstrap).list_topics(timeout=2), "Kafka answers metadata")
    return bootstrap


def test_kafka_starts_on_a_read_only_root(pod: Callable[[str], Pod]) -> None:
    """The chart leaves Kafka's root writable (the official launcher writes into
    /opt/kafka/config); this image writes only /tmp and its data volume."""
    _start_kafka(pod("kafka"), read_only=True)


def test_kafka_produces_and_consumes(pod: Callable[[str], Pod]) -> None:
    from confluent_kafka import Consumer, Producer

    p = pod("kafka")
    bootstrap = _start_kafka(p)

    producer = Producer(bootstrap)
    producer.produce("movie", key=b"user-1", value=b'{"id": 1}')
    assert producer.flush(30) == 0

    def consume_the_record() -> None:
        group = f"images-test-{uuid.uuid4().hex[:8]}"
        consumer = Consumer({**bootstrap, "group.id": group, "auto.offset.reset": "earliest"})
        consumer.subscribe(["movie"])
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                msg = consumer.poll(1)
                if msg is not None and msg.error() is None:
                    assert (msg.key(), msg.value()) == (b"user-1", b'{"id": 1}')
                    return
            raise AssertionError("no record consumed in 30 s")
        finally:
            consumer.close()

    consume_the_record()
    p.restart()  # formatted storage is kept, not formatted again
    p.until(consume_the_record, "the record after a restart")
    assert p.logs().count("kafka-run: formatting") == 1, p.logs()[-3000:]


def test_postgresql_takes_the_generated_password(pod: Callable[[str], Pod]) -> None:
    import psycopg

    p = pod("postgresql")
    port = free_port()
    p.start({**p.env(), "PGPORT": str(port)})  # postgres and pg_isready both read PGPORT
    dsn = re.sub(r"@[^/@]+:5432/", f"@127.0.0.1:{port}/", p.password_secret("dsn"))
    p.until(lambda: psycopg.connect(dsn, connect_timeout=2).close(), "PostgreSQL accepts the DSN")
    p.probe("readinessProbe")
    p.probe("livenessProbe")
    with psycopg.connect(dsn) as conn:
        conn.execute("CREATE TABLE images_test (id int)")
        conn.execute("INSERT INTO images_test VALUES (1)")
        user, db = conn.execute("SELECT current_user, current_database()").fetchone() or ()
    env = p.env()
    assert (user, db) == (env["POSTGRES_USER"], env["POSTGRES_DB"])
    wrong = re.sub(r"://([^:]+):[^@]+@", r"://\1:wrong@", dsn)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(wrong, connect_timeout=5)
    p.restart()  # an initialised PGDATA is started as it is
    p.until(lambda: psycopg.connect(dsn, connect_timeout=2).close(), "PostgreSQL after a restart")
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT id FROM images_test").fetchall() == [(1,)]


def test_ferretdb_checks_the_generated_credentials(pod: Callable[[str], Pod]) -> None:
    from pymongo import MongoClient
    from pymongo.errors import OperationFailure

    p = pod("mongodb")
    port = free_port()
    p.start({**p.env(), "FERRETDB_LISTEN_ADDR": f":{port}"})
    url = p.password_secret("url")
    assert url.endswith(":27017/?authSource=admin"), url  # the chart's URL form
    url = re.sub(r"@[^/@]+:27017/", f"@127.0.0.1:{port}/", url)

    def client(u: str = url) -> MongoClient[dict[str, Any]]:
        return MongoClient(u, serverSelectionTimeoutMS=3000)

    p.until(lambda: client().raw.command("listCollections"), "FerretDB takes the chart's URL")
    p.probe("readinessProbe")
    client().raw.images_test.insert_one({"_id": "r1", "topic": "movie"})
    assert client().raw.images_test.find_one({"_id": "r1"}) == {"_id": "r1", "topic": "movie"}

    wrong = re.sub(r"://([^:]+):[^@]+@", r"://\1:wrong@", url)
    with pytest.raises(OperationFailure, match="Authentication failed"):
        client(wrong).raw.images_test.find_one()
    with pytest.raises(OperationFailure, match="requires authentication"):
        client(f"mongodb://127.0.0.1:{port}/").raw.images_test.insert_one({"x": 1})

    p.restart()  # the user was made on the first start and is kept, as the data is
    p.until(lambda: client().raw.command("listCollections"), "FerretDB after a restart")
    assert client().raw.images_test.count_documents({}) == 1


#: the images' own commands with the port moved (Prometheus: the image's CMD, port changed)
MONITORING_ARGS = {
    "prometheus": [
        "--config.file=/etc/prometheus/prometheus.yml",
        "--storage.tsdb.path=/prometheus",
    ],
    "pushgateway": [],
}


@pytest.mark.parametrize("name", MONITORING_ARGS)
def test_monitoring_image_is_ready_as_nobody(podman: list[str], name: str) -> None:
    """Not in the chart (the cluster's own monitoring): non-root, read-only root, /-/ready."""
    ref = IMAGES[name]
    _require(podman, ref)
    port, container = free_port(), f"cinepulse-deps-test-{name}-{uuid.uuid4().hex[:8]}"
    args = [*MONITORING_ARGS[name], f"--web.listen-address=127.0.0.1:{port}"]
    run = [*podman, "run", "--detach", "--name", container, "--network", "host", "--pull", "never"]
    run += ["--read-only", "--read-only-tmpfs=false", "--cap-drop", "ALL"]
    run += ["--tmpfs", "/prometheus:rw,U"]  # Prometheus's data volume (unused by the Pushgateway)
    assert subprocess.run([*run, ref, *args], capture_output=True, text=True).returncode == 0
    try:
        deadline, status = time.monotonic() + 60, None
        while time.monotonic() < deadline and status != 200:
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/-/ready", timeout=2).status_code
            except httpx.HTTPError:
                time.sleep(1)
        logs = subprocess.run([*podman, "logs", container], capture_output=True, text=True)
        assert status == 200, logs.stderr[-3000:]
        uid = subprocess.run(
            [*podman, "exec", container, "id", "-u"], capture_output=True, text=True
        )
        assert uid.stdout.strip() == "65534"
    finally:
        subprocess.run([*podman, "rm", "--force", "--time", "5", container], capture_output=True)
