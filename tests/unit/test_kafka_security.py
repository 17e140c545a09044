"""The Kafka security settings reach every client: librdkafka's config, faust's broker
credentials (the archiver) and Spark's ``kafka.*`` source options (the streaming job), all
built from the one :class:`KafkaSettings` block."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import faust
import pytest
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from pydantic import ValidationError

from cinepulse_archiver.app import create_app
from cinepulse_archiver.settings import ArchiverSettings
from cinepulse_common.kafka import (
    base_config,
    faust_credentials,
    jaas_config,
    spark_kafka_options,
)
from cinepulse_common.settings import KafkaSettings, PostgresSettings
from cinepulse_spark_jobs.settings import SparkJobsSettings
from cinepulse_spark_jobs.stream import _source
from tests.unit.test_spark_stream_source import FakeSpark

SCRAM = KafkaSettings(
    bootstrap_servers="b1:9096,b2:9096",
    security_protocol="SASL_SSL",
    sasl_mechanism="SCRAM-SHA-512",
    sasl_username="cinepulse",
    sasl_password='s3cr"et\\',
)


def test_plaintext_needs_no_credentials() -> None:
    k = KafkaSettings(bootstrap_servers="k:9092")
    assert faust_credentials(k) is None
    assert spark_kafka_options(k) == {
        "kafka.bootstrap.servers": "k:9092",
        "kafka.security.protocol": "PLAINTEXT",
    }
    assert base_config(k)["security.protocol"] == "PLAINTEXT"


def test_sasl_ssl_scram_for_spark() -> None:
    opts = spark_kafka_options(SCRAM)
    assert opts["kafka.bootstrap.servers"] == "b1:9096,b2:9096"
    assert opts["kafka.security.protocol"] == "SASL_SSL"
    assert opts["kafka.sasl.mechanism"] == "SCRAM-SHA-512"
    # the JAAS value quotes and escapes the password (a quote or backslash in it)
    assert opts["kafka.sasl.jaas.config"] == (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        'username="cinepulse" password="s3cr\\"et\\\\";'
    )


def test_plain_mechanism_uses_the_plain_login_module() -> None:
    k = KafkaSettings(
        bootstrap_servers="k:9092",
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="PLAIN",
        sasl_username="u",
        sasl_password="p",
    )
    assert jaas_config(k).startswith("org.apache.kafka.common.security.plain.PlainLoginModule ")
    assert spark_kafka_options(k)["kafka.security.protocol"] == "SASL_PLAINTEXT"


def test_the_spark_source_carries_the_security_options() -> None:
    settings = SparkJobsSettings(
        kafka=SCRAM,
        postgres=PostgresSettings(dsn="postgresql://u:p@h/db"),
    )
    spark: Any = FakeSpark()
    _source(spark, settings, ["user_rating_log"], 1000)
    options = spark.readStream.options
    assert options["kafka.security.protocol"] == "SASL_SSL"
    assert options["kafka.sasl.mechanism"] == "SCRAM-SHA-512"
    assert "ScramLoginModule" in options["kafka.sasl.jaas.config"]
    assert options["failOnDataLoss"] == "true"


def test_faust_gets_sasl_over_tls() -> None:
    creds = faust_credentials(SCRAM)
    assert isinstance(creds, faust.SASLCredentials)
    auth = credentials_to_aiokafka_auth(creds)
    assert auth["security_protocol"] == "SASL_SSL"
    assert auth["sasl_mechanism"] == "SCRAM-SHA-512"
    assert auth["sasl_plain_username"] == "cinepulse"
    assert auth["sasl_plain_password"] == 's3cr"et\\'
    context = auth["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


def test_faust_gets_sasl_without_tls() -> None:
    k = SCRAM.model_copy(update={"security_protocol": "SASL_PLAINTEXT"})
    auth = credentials_to_aiokafka_auth(faust_credentials(k))
    assert auth["security_protocol"] == "SASL_PLAINTEXT"
    assert auth["ssl_context"] is None


def test_faust_gets_tls_alone() -> None:
    k = KafkaSettings(bootstrap_servers="k:9093", security_protocol="SSL")
    auth = credentials_to_aiokafka_auth(faust_credentials(k))
    assert auth["security_protocol"] == "SSL"
    assert isinstance(auth["ssl_context"], ssl.SSLContext)
    assert spark_kafka_options(k)["kafka.security.protocol"] == "SSL"


def test_the_archiver_app_passes_the_credentials_to_faust(tmp_path: Path) -> None:
    settings = ArchiverSettings(
        kafka=SCRAM,
        mongo={"url": "mongodb://127.0.0.1:9/"},
        data_dir=tmp_path,
    )
    app = create_app(settings)
    creds = app.conf.broker_credentials
    assert isinstance(creds, faust.SASLCredentials)
    assert creds.mechanism.value == "SCRAM-SHA-512" and creds.username == "cinepulse"


@pytest.mark.parametrize(
    "values",
    [
        {"security_protocol": "SASL_SSL"},  # no mechanism, no user
        {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN"},  # no user
        {"security_protocol": "SASL_SSL", "sasl_mechanism": "GSSAPI", "sasl_username": "u"},
    ],
)
def test_incomplete_sasl_settings_are_refused_at_start(values: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        KafkaSettings(bootstrap_servers="k:9092", **values)


def test_sasl_without_a_password_is_refused_with_a_clear_message() -> None:
    with pytest.raises(ValidationError, match="missing: sasl_password"):
        KafkaSettings(
            bootstrap_servers="k:9092",
            security_protocol="SASL_SSL",
            sasl_mechanism="SCRAM-SHA-512",
            sasl_username="cinepulse",
        )
