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


def test_kafka_extra_listener_advertises_its_own_address(tmp_path: Path) -> None:
    """The network drill's listener: bound on its port, advertised at the proxy's address;
    without one the broker's configuration is the usual one."""
    from cinepulse_devstack.components import Kafka

    def props(kafka: Kafka) -> dict[str, str]:
        lines = kafka._write_config().read_text().splitlines()
        return dict(line.split("=", 1) for line in lines)

    kafka = Kafka(StackSettings(root=tmp_path, kafka_port=9001, kafka_controller_port=9002))
    usual = props(kafka)
    assert usual["listeners"] == "PLAINTEXT://127.0.0.1:9001,CONTROLLER://127.0.0.1:9002"
    assert usual["advertised.listeners"] == "PLAINTEXT://127.0.0.1:9001"
    assert usual["listener.security.protocol.map"] == "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
    assert kafka.ports == [9001, 9002]

    kafka.extra_listeners = {"PROXIED": (9003, "127.0.0.1:9004")}
    extra = props(kafka)
    assert extra["listeners"] == (
        "PLAINTEXT://127.0.0.1:9001,PROXIED://127.0.0.1:9003,CONTROLLER://127.0.0.1:9002"
    )
    assert extra["advertised.listeners"] == "PLAINTEXT://127.0.0.1:9001,PROXIED://127.0.0.1:9004"
    assert "PROXIED:PLAINTEXT" in extra["listener.security.protocol.map"].split(",")
    assert extra["inter.broker.listener.name"] == "PLAINTEXT"
    assert kafka.ports == [9001, 9002, 9003]
