from __future__ import annotations

import json
from pathlib import Path

import yaml

from cinepulse_devstack.components import Prometheus
from cinepulse_devstack.config import StackSettings
from cinepulse_devstack.procs import StackError, pid_alive, require_tool


def test_prometheus_config_discovers_registered_services(tmp_path: Path) -> None:
    prom = Prometheus(StackSettings(root=tmp_path))
    conf = yaml.safe_load(yaml.safe_dump(prom.config()))
    jobs = {j["job_name"]: j for j in conf["scrape_configs"]}
    assert jobs["cinepulse"]["file_sd_configs"][0]["files"] == [f"{prom.targets_dir}/*.json"]
    path = prom.register_target("event-gateway", 8000)
    assert json.loads(path.read_text()) == [
        {"targets": ["127.0.0.1:8000"], "labels": {"service": "event-gateway"}}
    ]
    prom.unregister_target("event-gateway")
    assert not path.exists()


def test_missing_tool_is_named_with_a_fix() -> None:
    try:
        require_tool("surely-not-installed-xyz", "apt-get install xyz")
    except StackError as exc:
        assert "surely-not-installed-xyz not found on PATH: apt-get install xyz" in str(exc)
    else:
        raise AssertionError("expected StackError")


def test_pid_alive() -> None:
    import os

    assert pid_alive(os.getpid())
    assert not pid_alive(None)
    assert not pid_alive(2**22 + 12345)


def test_kafka_cluster_ids_never_read_as_an_option() -> None:
    from cinepulse_devstack.components import kafka_cluster_id

    ids = {kafka_cluster_id() for _ in range(2000)}
    assert len(ids) == 2000
    assert not any(i.startswith("-") for i in ids)
    assert all(len(i) == 22 for i in ids)
