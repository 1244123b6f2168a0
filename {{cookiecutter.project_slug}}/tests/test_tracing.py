"""Traces: off unless configured, and then probes and scrapes left out."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from opentelemetry.trace import SpanKind

from {{ cookiecutter.package_name }} import tracing
from {{ cookiecutter.package_name }}.main import create_app
from {{ cookiecutter.package_name }}.settings import Settings

from .tracing import Recorder, global_recorder


def test_a_request_is_a_server_span_and_probes_and_scrapes_are_none(
    settings: Settings, recorder: Recorder
) -> None:
    with TestClient(create_app(settings, tracer_provider=recorder.provider)) as client:
        for path in ("/health", "/ready", "/metrics"):
            client.get(path)
        assert not recorder.spans
        assert client.get("/openapi.json").status_code == 200
    [span] = recorder.spans
    assert (span.name, span.kind) == ("GET /openapi.json", SpanKind.SERVER)


def test_probes_behind_a_root_path_are_left_out_too(settings: Settings, recorder: Recorder) -> None:
    proxied = settings.model_copy(update={"root_path": "/realtime"})
    app = create_app(proxied, tracer_provider=recorder.provider)
    with TestClient(app, root_path="/realtime") as client:
        assert client.get("/realtime/health").status_code == 200
    assert not recorder.spans


def test_without_configuration_nothing_is_traced_even_with_a_global_provider(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    installed = global_recorder()
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    with TestClient(create_app(settings)) as client:
        assert client.get("/openapi.json").status_code == 200
        assert client.get("/nowhere").status_code == 404
    assert not installed.spans


@pytest.mark.parametrize(
    ("environment", "on"),
    [
        ({}, False),
        ({"OTEL_SERVICE_NAME": "realtime"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": " "}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "TRUE"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"}, False),
    ],
    ids=["nothing", "name-only", "endpoint", "traces-endpoint", "blank", "sdk-off", "no-exporter"],
)
def test_traces_are_on_only_when_the_environment_names_an_otlp_endpoint(
    environment: dict[str, str], on: bool
) -> None:
    assert tracing.configured(environment) is on
