"""Traces of publishing: one span per publish, whoever publishes, and none per delivered frame."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from opentelemetry.trace import SpanKind
from websockets.asyncio.client import connect

from {{ cookiecutter.package_name }}.main import create_app
from {{ cookiecutter.package_name }}.settings import Settings

from .live import joined, published, receive, serve
from .processes import until
from .tracing import Recorder, global_recorder, parent_id, span_id


def test_an_http_publish_is_a_request_span_with_the_backend_publish_as_its_child(
    settings: Settings, recorder: Recorder
) -> None:
    with TestClient(create_app(settings, tracer_provider=recorder.provider)) as client:
        response = client.post("/channels/news/messages", json={"headline": "hi"})
    assert response.status_code == 202
    request, publish = sorted(recorder.spans, key=lambda span: span.kind != SpanKind.SERVER)
    assert (request.name, request.kind) == ("POST /channels/{channel}/messages", SpanKind.SERVER)
    assert (publish.name, publish.kind) == ("publish", SpanKind.PRODUCER)
    assert parent_id(publish) == span_id(request)
    assert dict(publish.attributes or {}) == {
        "messaging.destination.name": "news",
        "messaging.operation.type": "send",
        "broadcast.offset": response.json()["offset"],
        "broadcast.epoch": response.json()["epoch"],
    }


@pytest.mark.anyio
async def test_a_websocket_fan_out_traces_each_publish_and_no_frame(
    settings: Settings, recorder: Recorder
) -> None:
    async with serve(create_app(settings, tracer_provider=recorder.provider)) as live:
        async with connect(live.ws("/ws")) as alice, connect(live.ws("/ws")) as bob:
            await joined(alice, "room")
            await joined(bob, "room")
            for number in range(5):
                await published(alice, "room", number)
                assert (await receive(bob))["data"] == number

        async def both_connections_ended() -> bool:
            return sum(span.kind == SpanKind.SERVER for span in recorder.spans) == 2

        await until(both_connections_ended)
    connections = {span_id(span) for span in recorder.spans if span.kind == SpanKind.SERVER}
    publishes = [span for span in recorder.spans if span.kind != SpanKind.SERVER]
    # Ten frames delivered, five publishes traced: each a child of Alice's connection.
    assert [span.name for span in publishes] == ["publish"] * 5
    offsets = [(span.attributes or {}).get("broadcast.offset") for span in publishes]
    assert offsets == [1, 2, 3, 4, 5]
    [parent] = {parent_id(span) for span in publishes}
    assert parent in connections


def test_without_configuration_a_publish_is_not_traced_even_with_a_global_provider(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    installed = global_recorder()
    with TestClient(create_app(settings)) as client:
        assert client.post("/channels/news/messages", json="hi").status_code == 202
    assert not installed.spans
