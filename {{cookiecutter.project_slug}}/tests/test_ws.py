"""WS /ws/{channel} over real sockets: frames, envelopes, bad input, limits, origins."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from websockets.frames import Frame, Opcode
from websockets.typing import Origin

from {{ cookiecutter.package_name }} import __main__ as entry_point
from {{ cookiecutter.package_name }}.main import create_app
from {{ cookiecutter.package_name }}.settings import Settings, get_settings

from .live import Live, closed_with, joined, receive, serve

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
async def live() -> AsyncIterator[Live]:
    """One server for the module (starting one per test is most of a test's time);
    each test uses channels of its own."""
    async with serve(create_app(Settings(_env_file=None))) as live:
        yield live


async def test_welcome_names_the_client_the_channel_and_the_limit(live: Live) -> None:
    async with connect(live.ws("/ws/lobby")) as ws:
        welcome = await joined(ws)
    assert welcome["channel"] == "lobby"
    assert welcome["client"]
    assert welcome["origin"] == live.hub.origin
    assert welcome["max_message_size"] == 64 * 1024


async def test_a_json_frame_reaches_every_subscriber_the_sender_included(live: Live) -> None:
    async with connect(live.ws("/ws/chat")) as alice, connect(live.ws("/ws/chat")) as bob:
        alice_id = (await joined(alice))["client"]
        await joined(bob)
        await alice.send(json.dumps({"text": "hi", "n": [1, 2.5, None]}))
        for ws in (alice, bob):
            envelope = await receive(ws)
            assert envelope["type"] == "message"
            assert envelope["channel"] == "chat"
            assert envelope["seq"] == 1
            assert envelope["origin"] == live.hub.origin
            assert envelope["sender"] == alice_id
            assert envelope["ts"].endswith("Z")
            assert envelope["data"] == {"text": "hi", "n": [1, 2.5, None]}
        await bob.send('"second"')
        assert (await receive(alice))["seq"] == 2
        assert (await receive(bob))["data"] == "second"


async def test_fan_out_reaches_fifty_clients_in_order(live: Live) -> None:
    clients = [await connect(live.ws("/ws/crowd")) for _ in range(50)]
    try:
        for ws in clients:
            await joined(ws)
        for n in range(5):
            await clients[n].send(json.dumps(n))
        for ws in clients:
            assert [(await receive(ws))["data"] for _ in range(5)] == [0, 1, 2, 3, 4]
    finally:
        await asyncio.gather(*(ws.close() for ws in clients))


async def test_channels_are_isolated(live: Live) -> None:
    async with connect(live.ws("/ws/red")) as red, connect(live.ws("/ws/blue")) as blue:
        await joined(red)
        await joined(blue)
        await red.send('{"for": "red"}')
        assert (await receive(red))["data"] == {"for": "red"}
        # Red's message was fanned out before red got it: had it leaked to
        # blue, it would arrive there before blue's own.
        await blue.send('{"for": "blue"}')
        assert (await receive(blue))["data"] == {"for": "blue"}


@pytest.mark.parametrize(
    ("frame", "error"),
    [
        ("not json", "invalid_json"),
        ("[1, 2", "invalid_json"),
        ("NaN", "invalid_json"),
        (b"\x00\x01", "binary_frame"),
    ],
    ids=["text", "truncated", "nan", "binary"],
)
async def test_a_bad_frame_gets_an_error_and_the_connection_stays_open(
    live: Live, frame: str | bytes, error: str
) -> None:
    async with connect(live.ws(f"/ws/bad-frame-{error}")) as ws:
        await joined(ws)
        await ws.send(frame)
        answer = await receive(ws)
        assert answer["type"] == "error"
        assert answer["error"] == error
        assert answer["reason"]
        await ws.send('{"still": "here"}')
        assert (await receive(ws))["data"] == {"still": "here"}


async def test_answers_come_in_the_order_the_frames_were_sent(live: Live) -> None:
    frames = [Frame(Opcode.TEXT, text.encode()) for text in ('"one"', "not json", '"two"')]
    frames += [Frame(Opcode.BINARY, b"binary"), Frame(Opcode.TEXT, b'"three"')]
    async with connect(live.ws("/ws/in-order")) as ws:
        await joined(ws)
        # One TCP write, so the server reads every frame in one event-loop step.
        ws.transport.write(b"".join(frame.serialize(mask=True) for frame in frames))
        answers = [await receive(ws) for _ in range(5)]
    assert [a.get("data", a.get("error")) for a in answers] == [
        "one",
        "invalid_json",
        "two",
        "binary_frame",
        "three",
    ]


async def test_repeated_bad_frames_close_with_1008(live: Live) -> None:
    async with connect(live.ws("/ws/bad-frames")) as ws:
        await joined(ws)
        for _ in range(4):
            await ws.send("nope")
            assert (await receive(ws))["type"] == "error"
        await ws.send(b"binary")
        assert (await receive(ws))["type"] == "error"
        code, reason = await closed_with(ws)
    assert code == 1008
    assert reason == "5 bad frames"


@pytest.mark.parametrize(
    ("channel", "reason"),
    [("a b", "letters, digits"), ("-lead", "start alphanumeric"), ("x" * 65, "longer than 64")],
    ids=["space", "leading-dash", "too-long"],
)
async def test_a_bad_channel_name_is_closed_with_1008_and_a_reason(
    live: Live, channel: str, reason: str
) -> None:
    async with connect(live.ws(f"/ws/{channel.replace(' ', '%20')}")) as ws:
        code, text = await closed_with(ws)
    assert code == 1008
    assert text is not None
    assert reason in text
    assert channel not in live.hub.stats().channels


async def test_a_frame_of_exactly_the_limit_is_published(live: Live) -> None:
    data = json.dumps("x" * (64 * 1024 - 2))  # the quotes make it 64 KiB
    async with connect(live.ws("/ws/big")) as ws:
        await joined(ws)
        await ws.send(data)
        assert len((await receive(ws))["data"]) == 64 * 1024 - 2


async def test_a_frame_over_the_limit_closes_with_1009_under_plain_uvicorn(live: Live) -> None:
    # `live` runs uvicorn with its defaults: it would take frames up to 16 MiB.
    async with connect(live.ws("/ws/too-big")) as ws:
        await joined(ws)
        await ws.send(json.dumps("x" * (64 * 1024 - 1)))
        code, reason = await closed_with(ws)
    assert code == 1009
    assert reason == "message larger than 65536 bytes"


async def test_python_m_makes_uvicorn_itself_refuse_a_frame_over_the_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # What `python -m` passes to uvicorn, with a limit below the app's own.
    options: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: options.update(kw))
    monkeypatch.setenv("WS_MAX_MESSAGE_SIZE", "1000")
    get_settings.cache_clear()
    try:
        entry_point.main()
    finally:
        get_settings.cache_clear()
    assert options["ws_max_size"] == 1000
    app = create_app(Settings(_env_file=None))
    async with (
        serve(app, ws_max_size=options["ws_max_size"]) as live,
        connect(live.ws("/ws/big")) as ws,
    ):
        await joined(ws)
        await ws.send(json.dumps("x" * 1000))
        code, _ = await closed_with(ws)
    assert code == 1009


async def test_no_origin_is_allowed(live: Live) -> None:
    async with connect(live.ws("/ws/no-origin")) as ws:
        await joined(ws)


@pytest.mark.parametrize(
    "origin", ["http://localhost:5173", "http://127.0.0.1:8080", "http://[::1]:3000"]
)
async def test_a_local_development_origin_is_allowed(live: Live, origin: str) -> None:
    async with connect(live.ws("/ws/local-origin"), origin=Origin(origin)) as ws:
        await joined(ws)


@pytest.mark.parametrize(
    "origin", ["https://evil.example", "http://localhost.evil.example", "null"]
)
async def test_a_foreign_origin_is_refused_with_403(live: Live, origin: str) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(live.ws("/ws/refused"), origin=Origin(origin)):
            pass
    assert refused.value.response.status_code == 403
    assert "refused" not in live.hub.stats().channels


async def test_only_the_services_own_origin_when_none_is_configured() -> None:
    app = create_app(Settings(_env_file=None, ws_allowed_origins=[]))
    async with serve(app) as live:
        own = f"http://127.0.0.1:{live.port}"
        async with connect(live.ws("/ws/room"), origin=Origin(own)) as ws:
            await joined(ws)
        with pytest.raises(InvalidStatus) as refused:
            async with connect(live.ws("/ws/room"), origin=Origin("http://localhost:1")):
                pass
        assert refused.value.response.status_code == 403
