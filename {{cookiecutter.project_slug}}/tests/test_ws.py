"""WS /ws over real sockets: commands and answers, errors, limits, multiplexing, origins, hosts.

Authentication is off here (the settings name no key): `test_ws_auth.py`
covers tokens and permissions.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus
from websockets.frames import Frame, Opcode
from websockets.typing import Origin

from {{ cookiecutter.package_name }}.api import ws as ws_route
from {{ cookiecutter.package_name }}.main import create_app
from {{ cookiecutter.package_name }}.realtime import transport
from {{ cookiecutter.package_name }}.settings import Settings

from .live import WAIT, Live, closed_with, command, connected, joined, receive, serve

pytestmark = pytest.mark.anyio

# How often a wait on the hub's state looks again.
POLL = 0.005


@pytest.fixture(scope="module")
async def live() -> AsyncIterator[Live]:
    """One server for the module (starting one per test is most of a test's time);
    each test uses channels of its own."""
    async with serve(create_app(Settings(_env_file=None))) as live:
        yield live


@asynccontextmanager
async def server(**settings: Any) -> AsyncIterator[Live]:
    """A server of its own, for a test that needs settings the shared one lacks."""
    async with serve(create_app(Settings(_env_file=None, **settings))) as live:
        yield live


async def answer_to(ws: ClientConnection, frame: str | bytes) -> dict[str, Any]:
    """Send `frame` as it is (text or binary) and return the next frame."""
    await ws.send(frame)
    return await receive(ws)


async def until(condition: Callable[[], bool]) -> None:
    """Wait until `condition()` holds, within WAIT seconds."""
    async with asyncio.timeout(WAIT):
        # The hub signals no change of its counts, so this looks again.
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(POLL)


async def assert_still_serving(ws: ClientConnection) -> None:
    ping = await command(ws, "ping")
    assert ping["type"] == "reply", ping


# The welcome and every command's reply


async def test_welcome_names_the_client_the_process_and_the_limits(live: Live) -> None:
    async with connect(live.ws("/ws")) as ws:
        welcome = await connected(ws)
    assert set(welcome) == {
        "type",
        "client",
        "user",
        "expires_at",
        "origin",
        "max_message_size",
        "max_subscriptions",
        "rate",
        "burst",
    }
    assert welcome["client"]
    assert welcome["user"] is None, "authentication is off: nobody in particular"
    assert welcome["expires_at"] is None
    assert welcome["origin"] == live.hub.origin
    assert welcome["max_message_size"] == 64 * 1024
    assert welcome["max_subscriptions"] == 128
    assert (welcome["rate"], welcome["burst"]) == (50, 100)


async def test_connect_may_leave_the_token_out_while_authentication_is_off(live: Live) -> None:
    async with connect(live.ws("/ws")) as ws:
        welcome = await answer_to(ws, '{"type": "connect"}')
    assert welcome["type"] == "welcome"


async def test_each_command_gets_its_reply(live: Live) -> None:
    async with connect(live.ws("/ws")) as ws:
        await connected(ws)
        subscribed = await command(ws, "subscribe", channel="replies")
        epoch = subscribed["epoch"]
        assert subscribed == {
            "type": "reply",
            "id": subscribed["id"],
            "channel": "replies",
            "offset": 0,
            "epoch": epoch,
        }
        published = await command(ws, "publish", channel="replies", data={"n": 1})
        assert published == {
            "type": "reply",
            "id": published["id"],
            "channel": "replies",
            "offset": 1,
            "epoch": epoch,
        }
        ping = await command(ws, "ping")
        assert ping == {"type": "reply", "id": ping["id"]}
        refreshed = await command(ws, "refresh", token="anything")
        assert refreshed == {"type": "reply", "id": refreshed["id"], "expires_at": None}
        left = await command(ws, "unsubscribe", channel="replies")
        assert left == {"type": "reply", "id": left["id"], "channel": "replies"}
        again = await command(ws, "unsubscribe", channel="replies")
        assert again["type"] == "reply", "unsubscribing is idempotent"


async def test_an_id_is_echoed_exactly_as_sent(live: Live) -> None:
    async with connect(live.ws("/ws")) as ws:
        await connected(ws)
        for command_id in ("a-string", 7, 2.5, -1, "x" * 64):
            frame = json.dumps({"type": "ping", "id": command_id})
            assert await answer_to(ws, frame) == {"type": "reply", "id": command_id}


async def test_a_published_message_reaches_every_subscriber_the_publisher_included(
    live: Live,
) -> None:
    async with connect(live.ws("/ws")) as alice, connect(live.ws("/ws")) as bob:
        alice_id = (await joined(alice, "chat"))["client"]
        await joined(bob, "chat")
        data = {"text": "hi", "n": [1.5]}
        publish = {"type": "publish", "id": "p", "channel": "chat", "data": data}
        await alice.send(json.dumps(publish))
        # The publisher gets its reply and, being subscribed, its own message.
        alices = {frame["type"]: frame for frame in [await receive(alice), await receive(alice)]}
        epoch = alices["message"]["epoch"]
        assert alices["reply"] == {
            "type": "reply",
            "id": "p",
            "channel": "chat",
            "offset": 1,
            "epoch": epoch,
        }
        for envelope in (alices["message"], await receive(bob)):
            assert envelope["type"] == "message"
            assert envelope["channel"] == "chat"
            assert (envelope["offset"], envelope["epoch"]) == (1, epoch)
            assert envelope["origin"] == live.hub.origin
            assert envelope["sender"] == alice_id
            assert envelope["ts"].endswith("Z")
            assert envelope["data"] == data
        assert (await command(bob, "publish", channel="chat", data="second"))["offset"] == 2
        assert (await receive(alice))["data"] == "second"


async def test_a_publisher_need_not_be_subscribed(live: Live) -> None:
    async with connect(live.ws("/ws")) as publisher, connect(live.ws("/ws")) as reader:
        await connected(publisher)
        await joined(reader, "outside-in")
        reply = await command(publisher, "publish", channel="outside-in", data="hello")
        assert reply["type"] == "reply"
        assert reply["offset"] == 1
        assert (await receive(reader))["data"] == "hello"
        # Not subscribed, so its own message does not come back: the next
        # frame it receives is the answer to its ping.
        await publisher.send('{"type": "ping", "id": "after"}')
        assert await receive(publisher) == {"type": "reply", "id": "after"}


async def test_fan_out_reaches_fifty_clients_in_order(live: Live) -> None:
    clients = [await connect(live.ws("/ws")) for _ in range(50)]
    try:
        for ws in clients:
            await joined(ws, "crowd")
        publisher = clients[0]
        for n in range(5):
            await publisher.send(
                json.dumps({"type": "publish", "id": n, "channel": "crowd", "data": n})
            )
        for ws in clients[1:]:
            assert [(await receive(ws))["data"] for _ in range(5)] == [0, 1, 2, 3, 4]
        frames = [await receive(publisher) for _ in range(10)]
        assert [f["data"] for f in frames if f["type"] == "message"] == [0, 1, 2, 3, 4]
        assert [f["id"] for f in frames if f["type"] == "reply"] == [0, 1, 2, 3, 4]
    finally:
        await asyncio.gather(*(ws.close() for ws in clients))


# Multiplexing: one connection, many channels


async def test_one_connection_gets_each_of_its_channels_and_none_after_unsubscribing(
    live: Live,
) -> None:
    channels = ("multi-a", "multi-b", "multi-c")
    async with connect(live.ws("/ws")) as reader, connect(live.ws("/ws")) as publisher:
        await joined(reader, *channels)
        await connected(publisher)
        for n, channel in enumerate(channels):
            await command(publisher, "publish", channel=channel, data=n)
        received = [await receive(reader) for _ in channels]
        assert [(m["type"], m["channel"], m["data"]) for m in received] == [
            ("message", "multi-a", 0),
            ("message", "multi-b", 1),
            ("message", "multi-c", 2),
        ]
        left = await command(reader, "unsubscribe", channel="multi-b")
        assert left["type"] == "reply"
        await command(publisher, "publish", channel="multi-b", data="after")
        await command(publisher, "publish", channel="multi-c", data="still")
        # Had multi-b's message reached it, it would come first.
        message = await receive(reader)
        assert (message["channel"], message["data"]) == ("multi-c", "still")
        await command(publisher, "publish", channel="multi-a", data="also")
        assert (await receive(reader))["data"] == "also"
        assert "multi-b" not in live.hub.stats().channels


async def test_channels_are_isolated(live: Live) -> None:
    async with connect(live.ws("/ws")) as red, connect(live.ws("/ws")) as blue:
        await joined(red, "red")
        await joined(blue, "blue")
        await command(red, "publish", channel="red", data={"for": "red"})
        # Red's message was fanned out before red got its reply: had it
        # leaked to blue, it would arrive there before blue's own.
        await blue.send('{"type": "publish", "id": 1, "channel": "blue", "data": {"for": "blue"}}')
        first = await receive(blue)
        assert first["type"] == "message"
        assert first["data"] == {"for": "blue"}


# Errors: each leaves the connection open


@pytest.mark.parametrize(
    ("frame", "expected_id"),
    [
        ("not json", None),
        ('{"type": "ping", "id": 1', None),
        ("[1, 2]", None),
        ('{"type": "dance", "id": "d"}', "d"),
        ('{"type": "subscribe", "id": "s"}', "s"),
        ('{"type": "subscribe", "id": "s", "channel": 5}', "s"),
        ('{"type": "publish", "id": "p", "channel": "c"}', "p"),
        ('{"type": "refresh", "id": "r"}', "r"),
        ('{"type": "ping"}', None),
        ('{"type": "ping", "id": true}', None),
        ('{"type": "ping", "id": "' + "x" * 65 + '"}', None),
        ('{"type": "ping", "id": 1e400}', None),
        ('{"type": "publish", "id": "n", "channel": "c", "data": NaN}', None),
        ('{"type": "publish", "id": "i", "channel": "c", "data": 1e400}', "i"),
        ('{"type": "publish", "id": "deep", "channel": "c", "data": ' + "[" * 10_000, None),
        ('{"type": "connect"}', None),
        (b'{"type": "ping", "id": "b"}', None),
    ],
    ids=[
        "not-json",
        "truncated",
        "not-an-object",
        "unknown-type",
        "missing-field",
        "ill-typed-field",
        "publish-without-data",
        "refresh-without-token",
        "missing-id",
        "bool-id",
        "overlong-id",
        "infinite-id",
        "nan",
        "infinite-data",
        "nested-too-deeply",
        "connect-again",
        "binary",
    ],
)
async def test_a_bad_frame_gets_bad_frame_with_its_id_and_the_connection_stays_open(
    live: Live, frame: str | bytes, expected_id: str | None
) -> None:
    async with connect(live.ws("/ws")) as ws:
        await connected(ws)
        error = await answer_to(ws, frame)
        assert error["type"] == "error"
        assert error["code"] == "bad_frame"
        assert error["reason"]
        assert error.get("id") == expected_id
        assert ("id" in error) is (expected_id is not None)
        await assert_still_serving(ws)


@pytest.mark.parametrize("kind", ["subscribe", "unsubscribe", "publish"])
@pytest.mark.parametrize(
    ("channel", "reason"),
    [
        ("a b", "letters, digits"),
        ("-lead", "start alphanumeric"),
        ("x" * 65, "longer than 64"),
        ("", "empty"),
    ],
    ids=["space", "leading-dash", "too-long", "empty"],
)
async def test_a_bad_channel_name_is_refused_with_bad_channel_and_a_reason(
    live: Live, kind: str, channel: str, reason: str
) -> None:
    async with connect(live.ws("/ws")) as ws:
        await connected(ws)
        error = await command(ws, kind, channel=channel, data="x")
        assert error["type"] == "error"
        assert error["code"] == "bad_channel"
        assert reason in error["reason"]
        await assert_still_serving(ws)
    assert channel not in live.hub.stats().channels


async def test_subscribing_twice_is_refused_with_already_subscribed(live: Live) -> None:
    async with connect(live.ws("/ws")) as ws:
        await joined(ws, "twice")
        error = await command(ws, "subscribe", channel="twice")
        assert error["code"] == "already_subscribed"
        await assert_still_serving(ws)


async def test_subscriptions_beyond_the_limit_are_refused_until_one_is_left() -> None:
    async with server(ws_max_subscriptions=2) as live, connect(live.ws("/ws")) as ws:
        welcome = await joined(ws, "first", "second")
        assert welcome["max_subscriptions"] == 2
        error = await command(ws, "subscribe", channel="third")
        assert error["code"] == "too_many_subscriptions"
        assert "at most 2" in error["reason"]
        await command(ws, "unsubscribe", channel="first")
        assert (await command(ws, "subscribe", channel="third"))["type"] == "reply"
        assert live.hub.stats().channels == {"second": 1, "third": 1}


async def test_a_command_before_connect_is_refused_with_bad_frame(live: Live) -> None:
    async with connect(live.ws("/ws")) as ws:
        error = await command(ws, "subscribe", channel="early")
        assert error["code"] == "bad_frame"
        assert "connect" in error["reason"]
        await joined(ws, "early")


async def test_no_connect_within_the_timeout_closes_with_4001() -> None:
    async with server(ws_connect_timeout=0.2) as live, connect(live.ws("/ws")) as prompt:
        await connected(prompt)
        async with connect(live.ws("/ws")) as silent:
            code, reason = await closed_with(silent)
        assert code == 4001
        assert reason == "no connect within 0.2s"
        # It connected before `silent` did, and is still served after
        # `silent`'s timeout: connecting stopped its timer.
        await assert_still_serving(prompt)


async def test_repeated_bad_frames_close_with_4008(live: Live) -> None:
    async with connect(live.ws("/ws")) as ws:
        await connected(ws)
        for frame in ("nope", b"binary", "[]", '{"type": "ping"}'):
            assert (await answer_to(ws, frame))["code"] == "bad_frame"
        await ws.send("the fifth")
        code, reason = await closed_with(ws)
    assert code == 4008
    assert reason == "5 bad frames"


async def test_a_good_command_between_bad_frames_starts_the_count_again(live: Live) -> None:
    async with connect(live.ws("/ws")) as ws:
        await connected(ws)
        for _ in range(2):
            for _ in range(4):
                assert (await answer_to(ws, "nope"))["code"] == "bad_frame"
            await assert_still_serving(ws)
        await assert_still_serving(ws)


# Rate limits: a token bucket per connection


async def test_over_rate_commands_are_refused_and_other_clients_are_unaffected() -> None:
    # No refill to speak of while the test runs: five commands, then refusals.
    settings = {"ws_rate": 0.01, "ws_burst": 5, "ws_max_bad_frames": 100}
    async with (
        server(**settings) as live,
        connect(live.ws("/ws")) as flooder,
        connect(live.ws("/ws")) as other,
    ):
        await joined(flooder, "limited")  # one command
        for n in range(20):
            await flooder.send(json.dumps({"type": "ping", "id": n}))
        answers = [await receive(flooder) for _ in range(20)]
        assert [a["id"] for a in answers] == list(range(20))
        assert [a["type"] for a in answers[:4]] == ["reply"] * 4
        for refused in answers[4:]:
            assert refused["type"] == "error"
            assert refused["code"] == "rate_limited"
        # Another connection has a bucket of its own: five commands, all served.
        await joined(other, "limited")
        for n in range(3):
            reply = await command(other, "publish", channel="limited", data=n)
            assert reply["type"] == "reply"
        await assert_still_serving(other)
        # The flooder stays connected and still receives its channel.
        assert [(await receive(flooder))["data"] for _ in range(3)] == [0, 1, 2]
        assert (await command(flooder, "ping"))["code"] == "rate_limited"


async def test_persistent_over_rate_closes_with_4029() -> None:
    async with server(ws_rate=0.01, ws_burst=1) as live, connect(live.ws("/ws")) as ws:
        await connected(ws)
        await assert_still_serving(ws)
        for _ in range(4):
            assert (await command(ws, "ping"))["code"] == "rate_limited"
        await ws.send('{"type": "ping", "id": "fifth"}')
        code, reason = await closed_with(ws)
    assert code == 4029
    assert reason == "rate limit exceeded"


# Order and size


async def test_answers_come_in_the_order_the_frames_were_sent(live: Live) -> None:
    texts = [
        '{"type": "publish", "id": 1, "channel": "in-order", "data": "one"}',
        "not json",
        '{"type": "publish", "id": 3, "channel": "in-order", "data": "two"}',
    ]
    frames = [Frame(Opcode.TEXT, text.encode()) for text in texts]
    frames += [Frame(Opcode.BINARY, b"binary"), Frame(Opcode.TEXT, b'{"type": "ping", "id": 5}')]
    async with connect(live.ws("/ws")) as ws:
        await joined(ws, "in-order")
        # One TCP write, so the server reads every frame in one event-loop step.
        ws.transport.write(b"".join(frame.serialize(mask=True) for frame in frames))
        received = [await receive(ws) for _ in range(7)]
    answers = [(f["type"], f.get("id")) for f in received if f["type"] != "message"]
    assert answers == [("reply", 1), ("error", None), ("reply", 3), ("error", None), ("reply", 5)]
    assert [f["data"] for f in received if f["type"] == "message"] == ["one", "two"]


def publish_frame(channel: str, size: int) -> str:
    """A publish command of exactly `size` bytes, its data a string of x's."""
    head = '{"type": "publish", "id": 1, "channel": "' + channel + '", "data": "'
    tail = '"}'
    return head + "x" * (size - len(head) - len(tail)) + tail


async def test_a_frame_of_exactly_the_limit_is_published(live: Live) -> None:
    frame = publish_frame("big", 64 * 1024)
    assert len(frame.encode()) == 64 * 1024
    async with connect(live.ws("/ws")) as ws:
        await joined(ws, "big")
        await ws.send(frame)
        received = {f["type"]: f for f in [await receive(ws), await receive(ws)]}
    assert received["reply"]["id"] == 1
    assert received["message"]["data"] == json.loads(frame)["data"]


async def test_a_frame_over_the_limit_closes_with_1009_under_plain_uvicorn(live: Live) -> None:
    # `live` runs uvicorn with its defaults: it would take frames up to 16 MiB.
    async with connect(live.ws("/ws")) as ws:
        await joined(ws, "too-big")
        await ws.send(publish_frame("too-big", 64 * 1024 + 1))
        code, reason = await closed_with(ws)
    assert code == 1009
    assert reason == "message larger than 65536 bytes"


async def test_python_m_makes_uvicorn_itself_refuse_a_frame_over_the_limit(
    uvicorn_options: Callable[..., dict[str, Any]],
) -> None:
    # What `python -m` passes to uvicorn, with a limit below the app's own.
    options = uvicorn_options(WS_MAX_MESSAGE_SIZE="1000")
    assert options["ws_max_size"] == 1000
    app = create_app(Settings(_env_file=None))
    async with (
        serve(app, ws_max_size=options["ws_max_size"]) as live,
        connect(live.ws("/ws")) as ws,
    ):
        await joined(ws, "big")
        await ws.send(publish_frame("big", 1001))
        code, _ = await closed_with(ws)
    assert code == 1009


# Handshakes: the connection limit, origins, the old path


async def test_a_handshake_beyond_max_connections_gets_503_until_one_closes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with (
        server(ws_max_connections=2) as live,
        connect(live.ws("/ws")) as first,
        connect(live.ws("/ws")) as second,
    ):
        await joined(second)
        with pytest.raises(InvalidStatus) as refused:
            async with connect(live.ws("/ws")):
                pass
        assert refused.value.response.status_code == 503
        assert b"try again later" in refused.value.response.body
        # A full server refusing is ordinary: a warning, never an error an alert would fire on.
        assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
        await first.close()
        await until(lambda: live.hub.stats().clients == 1)
        async with connect(live.ws("/ws")) as third:
            await joined(third)


async def test_no_origin_is_allowed(live: Live) -> None:
    async with connect(live.ws("/ws")) as ws:
        await joined(ws, "no-origin")


@pytest.mark.parametrize(
    "origin", ["http://localhost:5173", "http://127.0.0.1:8080", "http://[::1]:3000"]
)
async def test_a_local_development_origin_is_allowed(live: Live, origin: str) -> None:
    async with connect(live.ws("/ws"), origin=Origin(origin)) as ws:
        await joined(ws, "local-origin")


@pytest.mark.parametrize(
    "origin", ["https://evil.example", "http://localhost.evil.example", "null"]
)
async def test_a_foreign_origin_is_refused_with_403_and_logged_with_its_cause(
    live: Live, origin: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO), pytest.raises(InvalidStatus) as refused:
        async with connect(live.ws("/ws"), origin=Origin(origin)):
            pass
    assert refused.value.response.status_code == 403
    assert refused.value.response.body == b"origin not allowed"
    host = f"127.0.0.1:{live.port}"
    assert [m for m in caplog.messages if "refused WebSocket" in m] == [
        f"refused WebSocket from origin {origin!r} with Host {host!r}:"
        " neither the service's own nor in WS_ALLOWED_ORIGINS"
    ]
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_only_the_services_own_origin_when_none_is_configured() -> None:
    async with server(ws_allowed_origins=[]) as live:
        own = f"http://127.0.0.1:{live.port}"
        async with connect(live.ws("/ws"), origin=Origin(own)) as ws:
            await joined(ws, "room")
        with pytest.raises(InvalidStatus) as refused:
            async with connect(live.ws("/ws"), origin=Origin("http://localhost:1")):
                pass
        assert refused.value.response.status_code == 403


@pytest.mark.parametrize("path", ["/ws/lobby", "/ws/", "/ws/lobby/", "/ws/a%2Fb", "/WS", "/nope"])
async def test_a_handshake_to_a_path_no_route_serves_gets_404_logged_once(
    live: Live, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Over real uvicorn: a 404 told apart from an origin refusal (403) and a full server (503).
    with caplog.at_level(logging.INFO), pytest.raises(InvalidStatus) as refused:
        async with connect(live.ws(path)):
            pass
    assert refused.value.response.status_code == 404
    assert [m for m in caplog.messages if "refused WebSocket" in m] == [
        f"refused WebSocket to {path!r}: no such endpoint".replace("%2F", "/")
    ]
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert live.hub.stats().channels == {} or "lobby" not in live.hub.stats().channels


async def test_a_handshake_answer_carries_the_request_id_accepted_or_refused(live: Live) -> None:
    given = {"X-Request-ID": "handshake-7"}
    async with connect(live.ws("/ws"), additional_headers=given) as ws:
        assert ws.response is not None
        assert ws.response.headers.get_all("X-Request-ID") == ["handshake-7"]
        await joined(ws, "request-ids")
    for path, origin, status in [("/ws", "https://evil.example", 403), ("/nope", None, 404)]:
        with pytest.raises(InvalidStatus) as refused:
            async with connect(
                live.ws(path), origin=Origin(origin) if origin else None, additional_headers=given
            ):
                pass
        assert refused.value.response.status_code == status
        assert refused.value.response.headers.get_all("X-Request-ID") == ["handshake-7"]
    # No id, or one that is not valid: a new one, never the client's.
    for headers in [{}, {"X-Request-ID": "not valid!"}]:
        async with connect(live.ws("/ws"), additional_headers=headers) as ws:
            assert ws.response is not None
            (answered,) = ws.response.headers.get_all("X-Request-ID")
            assert len(answered) == 32
            assert answered != headers.get("X-Request-ID")


# Handshakes and requests by Host (TRUSTED_HOSTS, hosts.py), over real sockets

UNTRUSTED = b"untrusted Host header"
# What a request (not a handshake) gets: the ErrorBody of every other error.
UNTRUSTED_REQUEST = b'{"detail":"untrusted Host header"}'
UPGRADE = (
    b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
)


@pytest.fixture(scope="module")
async def loopback_live() -> AsyncIterator[Live]:
    """A server on the development defaults: TRUSTED_HOSTS None, whatever conftest set."""
    async with serve(create_app(Settings(_env_file=None, trusted_hosts=None))) as live:
        yield live


async def answer(live: Live, request: bytes) -> tuple[int, bytes]:
    """Send a raw HTTP request, Host and all, exactly as written; the status and body
    (none after a 101: the connection is then dropped)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", live.port)
    try:
        async with asyncio.timeout(WAIT):
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status_line, *lines = head.decode("latin-1").lower().split("\r\n")
            headers = dict(line.split(": ", 1) for line in lines if line)
            status = int(status_line.split(" ")[1])
            length = int(headers.get("content-length", 0)) if status != 101 else 0
            body = await reader.readexactly(length)
    finally:
        writer.close()
    return status, body


def with_host(host: str | None, first_line: bytes, extra: bytes = b"") -> bytes:
    header = b"" if host is None else b"Host: " + host.encode() + b"\r\n"
    return first_line + b"\r\n" + header + extra + b"\r\n"


LOOPBACK_HOSTS = [
    "localhost",
    "localhost:8000",
    "LOCALHOST",
    "localhost.",
    "127.0.0.1",
    "127.0.0.1:8000",
    "[::1]",
    "[::1]:8000",
]
FOREIGN_HOSTS = [
    "attacker.example:8000",
    "localhost.attacker.example",
    "evil.com@localhost",
    "localhost:abc",
    "localhost/x",
    "localhost..",
    "[::1",
    "::1",
    "",
    None,
]


@pytest.mark.parametrize("host", LOOPBACK_HOSTS)
async def test_a_loopback_host_however_written_is_answered_by_default(
    loopback_live: Live, host: str
) -> None:
    handshake = with_host(host, b"GET /ws HTTP/1.1", UPGRADE)
    assert (await answer(loopback_live, handshake))[0] == 101
    request = with_host(host, b"GET /health HTTP/1.1", b"Connection: close\r\n")
    assert await answer(loopback_live, request) == (200, b'{"status":"ok"}')


@pytest.mark.parametrize("host", FOREIGN_HOSTS)
async def test_any_other_host_gets_400_for_a_handshake_and_a_request_logged_once_each(
    loopback_live: Live, host: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        handshake = with_host(host, b"GET /ws HTTP/1.1", UPGRADE)
        assert await answer(loopback_live, handshake) == (400, UNTRUSTED)
        # HTTP/1.0 may leave Host out; with TRUSTED_HOSTS it may not.
        request = with_host(host, b"GET /health HTTP/1.0")
        assert await answer(loopback_live, request) == (400, UNTRUSTED_REQUEST)
    refusals = [m for m in caplog.messages if "TRUSTED_HOSTS" in m]
    assert [m.split(":", 1)[0] for m in refusals] == [
        "refused WebSocket '/ws'",
        "refused GET '/health'",
    ]
    if host is not None:
        assert all(f"Host {host!r} is not in TRUSTED_HOSTS" in m for m in refusals), refusals
    # A denial response, not a close: uvicorn logs no "returned without completing handshake".
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


@pytest.mark.parametrize(
    "target",
    [
        b"http://attacker.example/ws",
        b"ws://attacker.example:8000/ws",
        b"http://localhost@attacker.example/ws",
    ],
)
async def test_a_handshake_whose_target_names_another_host_gets_400(
    loopback_live: Live, target: bytes
) -> None:
    # RFC 9112 section 3.2.2: an absolute-form target names the host, not Host. uvicorn's
    # WebSocket protocols keep it in `raw_path` whichever HTTP parser handed them the request.
    handshake = with_host("localhost", b"GET " + target + b" HTTP/1.1", UPGRADE)
    assert await answer(loopback_live, handshake) == (400, UNTRUSTED)


async def test_dns_rebinding_gets_past_the_origin_check_but_not_the_host_check(
    loopback_live: Live,
) -> None:
    # A page of attacker.example, the name re-resolved to 127.0.0.1: same-origin to the
    # browser, and to an Origin check against Host.
    attack = b"Host: attacker.example:8000\r\nOrigin: http://attacker.example:8000\r\n"
    handshake = b"GET /ws HTTP/1.1\r\n" + attack + UPGRADE + b"\r\n"
    publish = (
        b"POST /channels/rebound/messages HTTP/1.1\r\n"
        + attack
        + b"Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
    )
    assert await answer(loopback_live, handshake) == (400, UNTRUSTED)
    assert await answer(loopback_live, publish) == (400, UNTRUSTED_REQUEST)
    # What the check stops: with any host trusted, the Origin check lets both through.
    async with server(trusted_hosts=["*"]) as anyhost:
        assert (await answer(anyhost, handshake))[0] == 101
        assert (await answer(anyhost, publish))[0] == 202


@pytest.mark.parametrize("compression", [None, "deflate"], ids=["plain", "permessage-deflate"])
async def test_fanned_out_frames_arrive_whole_at_every_length_framed_by_us_unless_compressed(
    live: Live, monkeypatch: pytest.MonkeyPatch, compression: str | None
) -> None:
    # The hub frames a fan-out once and writes it straight to the transport
    # (realtime/transport.py) unless the connection negotiated compression.
    written: list[bool] = []

    def counting(websocket: Any) -> Callable[[bytes], bool] | None:
        write = transport.frame_writer(websocket)
        if write is None:
            return None

        def write_frame(frame: bytes) -> bool:
            written.append(write(frame))
            return written[-1]

        return write_frame

    monkeypatch.setattr(ws_route, "frame_writer", counting)
    channel = f"lengths-{compression}"
    # Envelopes on both sides of the 125/126-byte and 65,535/65,536-byte length encodings.
    sizes = [0, 1, 20, 60, 70, 200, 30_000, 65_420]
    async with connect(live.ws("/ws"), compression=compression) as subscriber:
        await joined(subscriber, channel)
        async with connect(live.ws("/ws"), compression=compression) as publisher:
            await connected(publisher)
            for size in sizes:
                await command(publisher, "publish", channel=channel, data="é" + "x" * size)
        for size in sizes:
            assert (await receive(subscriber))["data"] == "é" + "x" * size
    assert written, "the subscriber's connection offered no frame writer"
    assert all(written) if compression is None else not any(written)
