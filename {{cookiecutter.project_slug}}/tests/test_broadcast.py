"""The broadcast building blocks on their own: names, frames, origins, the memory backend."""

from __future__ import annotations

import gc
import json
from typing import Any

import pytest
from websockets.frames import Frame, Opcode

from {{ cookiecutter.package_name }}.api.origins import origin_allowed, origin_patterns
from {{ cookiecutter.package_name }}.broadcast.backend import BroadcastUnavailable
from {{ cookiecutter.package_name }}.broadcast.channels import channel_problem
from {{ cookiecutter.package_name }}.broadcast.client import text_frame
from {{ cookiecutter.package_name }}.broadcast.envelope import (
    Draft,
    InvalidJSON,
    NotOurs,
    Position,
    check_json,
    draft,
    json_text,
    message_frame,
    read_envelope,
    resync_frame,
)
from {{ cookiecutter.package_name }}.broadcast.memory import MemoryBackend
from {{ cookiecutter.package_name }}.main import create_app
from {{ cookiecutter.package_name }}.realtime.collector import THRESHOLDS
from {{ cookiecutter.package_name }}.settings import Settings

DEV = ["http://localhost:*", "http://127.0.0.1:*", "http://[::1]:*"]


@pytest.mark.parametrize("name", ["a", "lobby", "room-1", "user:42", "v1.updates", "A_B", "x" * 64])
def test_valid_channel_names(name: str) -> None:
    assert channel_problem(name) is None


@pytest.mark.parametrize(
    "name",
    ["", "x" * 65, "-a", ".a", "a b", "a/b", "a\n", "é", "a%20"],
)
def test_invalid_channel_names_have_a_reason(name: str) -> None:
    assert channel_problem(name)


@pytest.mark.parametrize("text", ["{}", "[]", "0", '"s"', "null", ' {"a": [1, 2.5e3, true]} '])
def test_json_text_is_accepted(text: str) -> None:
    check_json(text)


@pytest.mark.parametrize(
    "text", ["", "{", "{'a': 1}", "NaN", "-Infinity", "[1] [2]", "[" * 100_000]
)
def test_what_is_not_json_is_refused_with_a_reason(text: str) -> None:
    with pytest.raises(InvalidJSON, match="JSON"):
        check_json(text)


def test_a_message_frame_splices_the_data_in_as_sent() -> None:
    data = '{"b": 1,  "a": [ 2 ]}'
    frame = message_frame("room", Position(7, "beef"), "origin1", "client1", data)
    assert '"data":{"b": 1,  "a": [ 2 ]}}' in frame
    envelope = json.loads(frame)
    fields = ["type", "channel", "offset", "epoch", "origin", "sender", "ts", "data"]
    assert list(envelope) == fields
    assert envelope["type"] == "message"
    assert envelope["channel"] == "room"
    assert (envelope["offset"], envelope["epoch"]) == (7, "beef")
    assert envelope["origin"] == "origin1"
    assert envelope["sender"] == "client1"
    assert envelope["data"] == {"b": 1, "a": [2]}


GOOD = message_frame("lobby", Position(2, "2b45aad8"), "8db07f570e69", "http", '{"hi":1}')


def test_a_well_formed_envelope_is_read() -> None:
    assert read_envelope("lobby", GOOD, 64 * 1024) == Position(2, "2b45aad8")


@pytest.mark.parametrize(
    ("field", "forged"),
    [
        # The service writes `ts` as UTC, ISO 8601 with milliseconds, `origin` as 12
        # hexadecimal digits, `sender` as a client id, "http" or a job's name.
        ("ts", "z"),
        ("ts", "not a time at all"),
        ("ts", "2025-01-31T12:00:00Z"),
        ("origin", "x"),
        ("origin", "<script>"),
        ("origin", "8DB07F570E69"),
        ("sender", ""),
        ("sender", "<img src=x>"),
        ("sender", "s" * 65),
        ("epoch", "2B45AAD8"),
    ],
)
def test_an_envelope_whose_fields_this_service_never_writes_is_not_ours(
    field: str, forged: str
) -> None:
    written = json.loads(GOOD)[field]
    text = GOOD.replace(f'"{field}":"{written}"', f'"{field}":"{forged}"')
    assert text != GOOD
    with pytest.raises(NotOurs):
        read_envelope("lobby", text, 64 * 1024)


def test_a_resync_frame_names_its_channel_and_position_and_keeps_any_reason_encodable() -> None:
    frame = resync_frame("room", Position(3, "beef"), "origin1", "why \ud800")
    frame.encode()  # a lone surrogate is escaped, so the frame is valid UTF-8
    assert json.loads(frame) == {
        "type": "resync",
        "channel": "room",
        "offset": 3,
        "epoch": "beef",
        "origin": "origin1",
        "reason": "why \ud800",
    }


@pytest.mark.parametrize("value", [float("nan"), float("inf"), [float("-inf")]])
def test_json_text_refuses_what_json_cannot_carry(value: object) -> None:
    with pytest.raises(ValueError, match="JSON"):
        json_text(value)


@pytest.mark.parametrize(
    ("origin", "host", "allowed", "expected"),
    [
        (None, "svc:8000", [], True),
        ("http://svc:8000", "svc:8000", [], True),
        ("https://svc", "svc", [], True),
        ("http://other:8000", "svc:8000", [], False),
        ("http://localhost:5173", "svc", DEV, True),
        ("http://localhost", "svc", DEV, True),
        ("http://localhost.evil.example", "svc", DEV, False),
        ("http://localhost:5173.evil.example", "svc", DEV, False),
        ("https://localhost:5173", "svc", DEV, False),
        ("https://app.example.com", "svc", ["https://app.example.com"], True),
        ("https://APP.example.com", "svc", ["https://app.example.com/"], True),
        ("https://app.example.com:8443", "svc", ["https://app.example.com"], False),
        ("null", "svc", DEV, False),
        ("https://anything", "svc", ["*"], True),
        # Default ports written or left out, on either side (RFC 6454 section 5).
        ("https://rt.example.com", "rt.example.com:443", [], True),
        ("https://rt.example.com:443", "rt.example.com", [], True),
        ("http://rt.example.com", "rt.example.com:80", [], True),
        ("wss://rt.example.com", "RT.example.com:443", [], True),
        ("https://rt.example.com", "rt.example.com:80", [], False),
        ("https://rt.example.com:8443", "rt.example.com", [], False),
        ("https://rt.example.com", "svc", ["https://rt.example.com:443"], True),
        ("https://rt.example.com:443", "svc", ["https://RT.example.com"], True),
        ("http://rt.example.com:80", "svc", ["http://rt.example.com"], True),
        ("http://rt.example.com", "svc", ["https://rt.example.com"], False),
        ("http://[::1]:3000", "[::1]:3000", [], True),
        ("http://localhost:99999", "svc", DEV, False),
        ("http://localhost:5173/path", "svc", DEV, False),
        # Names read as TRUSTED_HOSTS reads them: a trailing dot, IPv6 written long.
        ("https://rt.example.com", "rt.example.com.", [], True),
        ("https://rt.example.com.", "rt.example.com:443", [], True),
        ("http://[0::1]", "[::1]:80", [], True),
        ("http://[::1]:3000", "[0:0:0:0:0:0:0:1]:3000", [], True),
        ("https://app.example.com", "svc", ["https://app.example.com."], True),
        ("http://[0::1]:5173", "svc", DEV, True),
        ("https://user@rt.example.com", "rt.example.com", [], False),
        ("https://rt.example.com", "rt.example.com:", [], False),
        ("https://rt.example.com", "a@rt.example.com", [], False),
    ],
)
def test_origin_policy(origin: str | None, host: str, allowed: list[str], expected: bool) -> None:
    assert origin_allowed(origin, host, allowed) is expected


@pytest.mark.parametrize(
    "entry",
    [
        "*",
        "https://app.example.com",
        "https://APP.example.com:8443/",
        "http://localhost:*",
        "http://[::1]:3000",
        "chrome-extension://abcdefghijklmnop",
        "https://rt.example.com.",
    ],
)
def test_an_origin_entry_is_kept_as_written(entry: str) -> None:
    assert origin_patterns([entry]) == [entry]


@pytest.mark.parametrize(
    "entry",
    [
        "app.example.com",  # no scheme
        "https://*.example.com",  # no wildcard names
        "*.example.com",
        "https://app.example.com/path",
        "https://app.example.com?x=1",
        "https://user@app.example.com",
        "https://app.example.com:99999",
        "https://app.example.com:port",
        "https://",
        "https://app example.com",
        '{"a":1}',
        '"https://app.example.com"',
        "null",
        "",
    ],
)
def test_an_entry_no_origin_can_match_is_refused(entry: str) -> None:
    with pytest.raises(ValueError, match="is not an origin"):
        origin_patterns(["http://localhost:*", entry])


class Recorder:
    def __init__(self) -> None:
        self.delivered: list[tuple[str, Any, Position]] = []

    def deliver(self, channel: str, message: str, position: Position) -> None:
        self.delivered.append((channel, json.loads(message)["data"], position))

    def interrupted(self) -> None:
        raise AssertionError("the memory backend is never interrupted")

    def resumed(self) -> None:
        raise AssertionError("the memory backend is never interrupted")


def data(text: str) -> Draft:
    return draft("a", "origin", "sender", json.dumps(text))


@pytest.mark.anyio
async def test_the_memory_backend_numbers_every_message_and_delivers_subscribed_channels_only() -> (
    None
):
    backend = MemoryBackend()
    receiver = Recorder()
    with pytest.raises(BroadcastUnavailable):
        await backend.publish("a", data("x"))
    assert backend.ready() is not None
    await backend.start(receiver)
    assert backend.ready() is None
    await backend.subscribe("a")
    first = await backend.publish("a", data("1"))
    await backend.publish("b", data("2"))
    await backend.unsubscribe("a")
    third = await backend.publish("a", data("3"))
    assert receiver.delivered == [("a", "1", first)]
    assert (first.offset, third.offset) == (1, 2)
    assert first.epoch == third.epoch
    await backend.subscribe("b")
    await backend.stop()
    await backend.stop()
    assert backend.channels == frozenset()
    with pytest.raises(BroadcastUnavailable):
        await backend.subscribe("a")


def test_a_websocket_app_raises_the_collectors_thresholds_and_freezes_startup_objects() -> None:
    gc.set_threshold(700, 10, 10)  # CPython's defaults
    gc.unfreeze()
    create_app(Settings(_env_file=None))
    assert gc.get_threshold() == THRESHOLDS
    assert gc.get_freeze_count() > 0


@pytest.mark.parametrize("length", [0, 1, 125, 126, 127, 65_535, 65_536, 70_000])
def test_a_text_frame_is_what_the_websockets_library_frames_for_a_server(length: int) -> None:
    text = "x" * length
    assert text_frame(text) == Frame(Opcode.TEXT, text.encode()).serialize(mask=False)


def test_a_text_frame_carries_its_text_as_utf8() -> None:
    assert text_frame("é€") == Frame(Opcode.TEXT, "é€".encode()).serialize(mask=False)
