"""The chart's database logins per service (migration 0012's roles): generated and kept in
their own Secret, made by the migrations Job, and each service and job connecting with its
own login's DSN; an operator's database keeps the owner's DSN unless the operator gives the
logins (``postgresqlLogins.existingSecret``), made by the migrations Job or by their DBA; an
external MongoDB with a user per service (``externalMongodb.usersSecret``) gives each its URL."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import urlsplit

from cinepulse_devstack import chart
from cinepulse_migrations.logins import ENV_PREFIX, SERVICES, login_name
from tests.unit.chart_support import DEFAULT, SCENARIOS, job_of, pods_of, require_tools

require_tools("helm")

LOGINS = "cp-cinepulse-postgresql-logins"
#: every workload that talks to PostgreSQL -> the login it must use (None: the owner's DSN)
EXPECTED = {
    "Deployment/cp-cinepulse-api": "api",
    "Deployment/cp-cinepulse-recommender": "recommender",
    "Deployment/cp-cinepulse-explorer": "explorer",
    "CronJob/cp-cinepulse-tmdb-incremental": "fetcher",
    "CronJob/cp-cinepulse-recommender-train": "recommender",
    "CronJob/cp-cinepulse-quality-reconcile": "quality",
    "Job/cp-cinepulse-migrations-install": None,
}


def _dsn_refs(docs: list[dict[str, Any]]) -> dict[str, tuple[str, str]]:
    """``Kind/name`` -> (Secret, key) of CINEPULSE_POSTGRES__DSN, pods and Spark drivers."""
    refs = {}
    for name, spec in pods_of(docs):
        for c in spec["containers"]:
            for e in c.get("env", []):
                if e["name"] == "CINEPULSE_POSTGRES__DSN":
                    ref = e["valueFrom"]["secretKeyRef"]
                    refs[name] = (ref["name"], ref["key"])
    for d in docs:
        if d["kind"] == "SparkApplication":
            for e in d["spec"]["driver"]["env"]:
                if e["name"] == "CINEPULSE_POSTGRES__DSN":
                    ref = e["valueFrom"]["secretKeyRef"]
                    refs[f"SparkApplication/{d['metadata']['name']}"] = (ref["name"], ref["key"])
    return refs


def _render(*set_values: str, upgrade: bool = False) -> list[dict[str, Any]]:
    jobs = ["jobs.cronJobs.enabled=true", "jobs.tmdbTokenSecret=tmdb"]  # the CronJobs too
    r = chart.render([DEFAULT], [*set_values, *jobs], is_upgrade=upgrade)
    assert r.returncode == 0, r.stderr
    return chart.documents(r.stdout)


def test_each_service_connects_with_its_own_login() -> None:
    docs = _render()
    refs = _dsn_refs(docs)
    for name, service in EXPECTED.items():
        key = f"{service}-dsn" if service else "dsn"
        secret = LOGINS if service else "cp-cinepulse-postgresql"
        assert refs[name] == (secret, key), name
    spark = [n for n in refs if n.startswith("SparkApplication/")]
    assert spark and all(refs[n] == (LOGINS, "spark-dsn") for n in spark)
    # nothing else connects as the owner but the migrations (and Metabase's setup, off here)
    owners = {n for n, ref in refs.items() if ref[0] != LOGINS}
    assert owners == {"Job/cp-cinepulse-migrations-install"}


def test_the_logins_secret_is_kept_and_matches_the_migrations_services() -> None:
    docs = _render()
    (secret,) = [d for d in docs if d["kind"] == "Secret" and d["metadata"]["name"] == LOGINS]
    notes = secret["metadata"]["annotations"]
    assert notes["helm.sh/resource-policy"] == "keep"
    # before the migrations' pre-upgrade hook (weight 0), which reads it
    assert notes["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert int(notes["helm.sh/hook-weight"]) < 0
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert set(data) == {f"{s}-{k}" for s in SERVICES for k in ("password", "dsn")}
    passwords = set()
    for service in SERVICES:
        dsn = urlsplit(data[f"{service}-dsn"])
        assert dsn.username == login_name(service)
        assert dsn.password == data[f"{service}-password"] and len(dsn.password) == 32
        assert (dsn.hostname, dsn.port, dsn.path) == ("cp-cinepulse-postgresql", 5432, "/cinepulse")
        passwords.add(dsn.password)
    assert len(passwords) == len(SERVICES)  # one password per login
    # the migrations Job gets every password (cinepulse_migrations.logins reads them)
    env = {
        e["name"]: e["valueFrom"]["secretKeyRef"]
        for e in job_of(docs, "migrations")["spec"]["template"]["spec"]["containers"][0]["env"]
        if e["name"].startswith(ENV_PREFIX)
    }
    assert env == {
        f"{ENV_PREFIX}{s.upper()}": {"name": LOGINS, "key": f"{s}-password"} for s in SERVICES
    }
    # and so on upgrade, where the migrations are a pre-upgrade hook
    upgrade = _render(upgrade=True)
    assert any(d["metadata"]["name"] == LOGINS for d in upgrade if d["kind"] == "Secret")


def test_an_operators_database_keeps_its_dsn_and_gets_no_generated_logins() -> None:
    for name, docs in (
        ("external", chart.documents(chart.render([SCENARIOS["external"]]).stdout)),
        ("existing secret", _render("postgresql.existingSecret=mine")),
    ):
        assert not [d for d in docs if d["metadata"]["name"] == LOGINS], name
        refs = _dsn_refs(docs)
        assert refs, name
        assert all(key != "api-dsn" and secret != LOGINS for secret, key in refs.values()), name


def _migration_passwords(docs: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    return {
        e["name"]: e["valueFrom"]["secretKeyRef"]
        for e in job_of(docs, "migrations")["spec"]["template"]["spec"]["containers"][0]["env"]
        if e["name"].startswith(ENV_PREFIX)
    }


def test_an_operators_logins_secret_gives_each_service_its_login_on_an_external_database() -> None:
    external = chart.render([SCENARIOS["external"]], ["postgresqlLogins.existingSecret=pg-logins"])
    assert external.returncode == 0, external.stderr
    docs = chart.documents(external.stdout)
    assert not [d for d in docs if d["metadata"]["name"] == LOGINS]  # nothing generated
    refs = _dsn_refs(docs)
    # the scenario gives the explorer a DSN of its own (explorer.readonlyDsnSecret), which wins
    for name, service in EXPECTED.items():
        if service and service != "explorer":
            assert refs[name] == ("pg-logins", f"{service}-dsn"), name
    spark = [n for n in refs if n.startswith("SparkApplication/")]
    assert spark and all(refs[n] == ("pg-logins", "spark-dsn") for n in spark)
    # the migrations (and Metabase's setup) still connect as the owner, the operator's DSN
    assert refs["Job/cp-cinepulse-migrations"] == ("cinepulse-postgres", "dsn")
    assert _migration_passwords(docs) == {
        f"{ENV_PREFIX}{s.upper()}": {"name": "pg-logins", "key": f"{s}-password"} for s in SERVICES
    }


def test_logins_made_by_the_dba_are_used_but_not_made_by_the_migrations() -> None:
    docs = _render(
        "postgresql.existingSecret=mine",
        "postgresqlLogins.existingSecret=pg-logins",
        "postgresqlLogins.create=false",
    )
    assert not [d for d in docs if d["metadata"]["name"] == LOGINS]
    assert _dsn_refs(docs)["Deployment/cp-cinepulse-recommender"] == (
        "pg-logins",
        "recommender-dsn",
    )
    assert _migration_passwords(docs) == {}


def _mongo_refs(docs: list[dict[str, Any]]) -> dict[str, tuple[str, str]]:
    """``Kind/name`` -> (Secret, key) of CINEPULSE_MONGO__URL."""
    refs = {}
    for name, spec in pods_of(docs):
        for c in spec["containers"]:
            for e in c.get("env", []):
                if e["name"] == "CINEPULSE_MONGO__URL":
                    ref = e["valueFrom"]["secretKeyRef"]
                    refs[name] = (ref["name"], ref["key"])
    return refs


def test_an_external_mongodb_with_users_gives_each_service_its_own_url() -> None:
    jobs = ["jobs.cronJobs.enabled=true", "jobs.tmdbTokenSecret=tmdb"]
    plain = chart.render([SCENARIOS["external"]], jobs)
    users = chart.render(
        [SCENARIOS["external"]], [*jobs, "externalMongodb.usersSecret=mongo-users"]
    )
    assert plain.returncode == 0 and users.returncode == 0, plain.stderr + users.stderr
    before = _mongo_refs(chart.documents(plain.stdout))
    after = _mongo_refs(chart.documents(users.stdout))
    expected = {
        "Deployment/cp-cinepulse-archiver": "archiver",
        "CronJob/cp-cinepulse-tmdb-incremental": "fetcher",
        "CronJob/cp-cinepulse-quality-reconcile": "quality",
    }
    assert set(before) == set(after) == set(expected)  # nothing else reads MongoDB
    assert len(set(before.values())) == 1  # without users: the one URL for all
    assert after == {name: ("mongo-users", f"{s}-url") for name, s in expected.items()}
