"""The protocol's frames on their own: parsing commands, refusing bad frames, building answers.

No sockets here: `test_ws.py` checks the same frames over a real connection.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from {{ cookiecutter.package_name }}.realtime import protocol
from {{ cookiecutter.package_name }}.realtime.limits import TokenBucket
from {{ cookiecutter.package_name }}.realtime.protocol import (
    BadFrame,
    Command,
    Connect,
    Ping,
    Publish,
    Refresh,
    Subscribe,
    Unsubscribe,
)


def frame(**fields: Any) -> str:
    return json.dumps(fields)


@pytest.mark.parametrize(
    ("text", "command"),
    [
        (frame(type="connect", token="t.o.k"), Connect("t.o.k")),
        (frame(type="connect"), Connect(None)),
        (frame(type="connect", token=None), Connect(None)),
        (frame(type="subscribe", id=1, channel="chat:42"), Subscribe(1, "chat:42")),
        (frame(type="unsubscribe", id="u-1", channel="chat:42"), Unsubscribe("u-1", "chat:42")),
        (
            frame(type="publish", id=2.5, channel="c", data={"b": [1, 2], "a": None}),
            Publish(2.5, "c", '{"b":[1,2],"a":null}'),
        ),
        (frame(type="publish", id=3, channel="c", data=None), Publish(3, "c", "null")),
        (frame(type="refresh", id=4, token="new"), Refresh(4, "new")),
        (frame(type="ping", id=5), Ping(5)),
        (frame(type="ping", id="x" * protocol.MAX_ID_LENGTH), Ping("x" * protocol.MAX_ID_LENGTH)),
        # Fields it does not know are ignored, for clients newer than the server.
        (frame(type="ping", id=6, extra=[1]), Ping(6)),
    ],
    ids=[
        "connect",
        "connect-without-token",
        "connect-null-token",
        "subscribe",
        "unsubscribe-string-id",
        "publish-float-id",
        "publish-null-data",
        "refresh",
        "ping",
        "longest-id",
        "unknown-field",
    ],
)
def test_each_command_parses_to_its_type(text: str, command: Command) -> None:
    assert protocol.parse(text) == command


def test_published_data_is_kept_as_compact_json_text() -> None:
    parsed = protocol.parse('{"type": "publish", "id": 1, "channel": "c", "data": [ 1,  "é" ]}')
    assert isinstance(parsed, Publish)
    assert parsed.data_json == '[1,"\\u00e9"]'
    assert json.loads(parsed.data_json) == [1, "é"]


@pytest.mark.parametrize(
    ("text", "expected_id", "reason"),
    [
        ("not json", None, "not valid JSON"),
        ('{"type": "ping", "id": 1', None, "not valid JSON"),
        ("", None, "not valid JSON"),
        ('{"type": "ping", "id": 1} {}', None, "not valid JSON"),
        ("[1, 2]", None, "JSON object"),
        ('"ping"', None, "JSON object"),
        ("null", None, "JSON object"),
        (frame(type="dance", id=7), 7, "unknown type 'dance'"),
        (frame(id=8), 8, "string type"),
        (frame(type=9, id=9), 9, "string type"),
        (frame(type="subscribe", id=10), 10, "subscribe needs channel"),
        (frame(type="subscribe", id=11, channel=11), 11, "subscribe needs channel"),
        (frame(type="unsubscribe", id=12, channel=None), 12, "unsubscribe needs channel"),
        (frame(type="publish", id=13, data=1), 13, "publish needs channel"),
        (frame(type="publish", id=14, channel="c"), 14, "publish needs data"),
        (frame(type="refresh", id=15), 15, "refresh needs token"),
        (frame(type="refresh", id=16, token=16), 16, "refresh needs token"),
        (frame(type="connect", token=17), None, "token must be a string"),
        (frame(type="ping"), None, "needs an id"),
        (frame(type="ping", id=None), None, "needs an id"),
        (frame(type="ping", id=True), None, "needs an id"),
        (frame(type="ping", id=[1]), None, "needs an id"),
        (frame(type="ping", id={"n": 1}), None, "needs an id"),
        (frame(type="ping", id="x" * 65), None, "longer than 64"),
        ('{"type": "ping", "id": 1e400}', None, "finite"),
        ('{"type": "publish", "id": 18, "channel": "c", "data": NaN}', None, "NaN is not JSON"),
        ('{"type": "publish", "id": 19, "channel": "c", "data": -Infinity}', None, "not JSON"),
        ('{"type": "publish", "id": 20, "channel": "c", "data": 1e400}', 20, "not JSON"),
        (
            '{"type": "publish", "id": 21, "channel": "c", "data": ' + "[" * 100_000,
            None,
            "nested too deeply",
        ),
        ('{"type": "ping", "id": ' + "9" * 5000 + "}", None, "a number with too many digits"),
    ],
    ids=[
        "not-json",
        "truncated",
        "empty",
        "two-values",
        "array",
        "string",
        "null",
        "unknown-type",
        "missing-type",
        "number-type",
        "missing-channel",
        "number-channel",
        "null-channel",
        "publish-missing-channel",
        "publish-without-data",
        "refresh-missing-token",
        "refresh-number-token",
        "connect-number-token",
        "missing-id",
        "null-id",
        "bool-id",
        "list-id",
        "object-id",
        "overlong-id",
        "infinite-id",
        "nan",
        "infinity",
        "infinite-data",
        "nested-too-deeply",
        "5000-digit-id",
    ],
)
def test_a_bad_frame_is_refused_with_its_id_when_it_has_a_usable_one(
    text: str, expected_id: protocol.CommandId | None, reason: str
) -> None:
    with pytest.raises(BadFrame, match=reason) as refused:
        protocol.parse(text)
    assert refused.value.id == expected_id
    assert refused.value.reason == str(refused.value)
    assert "sys." not in refused.value.reason  # the interpreter's settings are not the client's
    assert protocol.command_id(refused.value) == expected_id


def test_an_unknown_type_is_shortened_in_the_reason() -> None:
    with pytest.raises(BadFrame) as refused:
        protocol.parse(frame(type="x" * 1000, id=1))
    assert len(refused.value.reason) < 100


def test_only_connect_has_no_id_to_answer() -> None:
    assert protocol.command_id(Connect("t")) is None
    assert protocol.command_id(Ping("p")) == "p"
    assert protocol.command_id(Publish(3, "c", "1")) == 3


def test_a_reply_echoes_the_id_and_carries_its_fields() -> None:
    assert json.loads(protocol.reply(1)) == {"type": "reply", "id": 1}
    assert json.loads(protocol.reply("a", channel="c", offset=2)) == {
        "type": "reply",
        "id": "a",
        "channel": "c",
        "offset": 2,
    }


def test_an_error_carries_its_code_reason_and_id_only_when_there_is_one() -> None:
    assert json.loads(protocol.error(protocol.FORBIDDEN, "no", 4)) == {
        "type": "error",
        "id": 4,
        "code": "forbidden",
        "reason": "no",
    }
    assert json.loads(protocol.error(protocol.BAD_FRAME, "why \ud800")) == {
        "type": "error",
        "code": "bad_frame",
        "reason": "why \ud800",
    }


def test_error_codes_are_the_documented_names() -> None:
    codes = {
        protocol.BAD_FRAME,
        protocol.BAD_CHANNEL,
        protocol.FORBIDDEN,
        protocol.ALREADY_SUBSCRIBED,
        protocol.TOO_MANY_SUBSCRIPTIONS,
        protocol.RATE_LIMITED,
        protocol.UNAVAILABLE,
        protocol.UNAUTHORIZED,
    }
    assert codes == {
        "bad_frame",
        "bad_channel",
        "forbidden",
        "already_subscribed",
        "too_many_subscriptions",
        "rate_limited",
        "unavailable",
        "unauthorized",
    }
    closes = (
        protocol.CLOSE_UNAUTHORIZED,
        protocol.CLOSE_POLICY_VIOLATION,
        protocol.CLOSE_TOO_MANY_REQUESTS,
    )
    assert closes == (4001, 4008, 4029)


def test_welcome_names_the_connection_and_its_limits() -> None:
    welcome = json.loads(protocol.welcome("c1", "alice", 1_700_000_000, "o1", 1024, 8, 50.0, 100))
    assert welcome == {
        "type": "welcome",
        "client": "c1",
        "user": "alice",
        "expires_at": 1_700_000_000,
        "origin": "o1",
        "max_message_size": 1024,
        "max_subscriptions": 8,
        "rate": 50.0,
        "burst": 100,
    }
    anonymous = json.loads(protocol.welcome("c2", None, None, "o1", 1024, 8, 50.0, 100))
    assert anonymous["user"] is None
    assert anonymous["expires_at"] is None


class Clock:
    """A `time.monotonic` that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    # The bucket reads `time.monotonic` at each call.
    monkeypatch.setattr(time, "monotonic", clock)
    return clock


def test_a_bucket_allows_a_burst_then_refuses(clock: Clock) -> None:
    bucket = TokenBucket(rate=2.0, burst=3)
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    assert not bucket.take(), "a refusal spends nothing, and nothing came back"


def test_a_bucket_refills_at_its_rate(clock: Clock) -> None:
    bucket = TokenBucket(rate=2.0, burst=3)
    for _ in range(3):
        assert bucket.take()
    clock.now += 0.25  # half a token
    assert not bucket.take()
    clock.now += 0.25  # the other half
    assert bucket.take()
    assert not bucket.take()
    clock.now += 1.0  # two tokens
    assert [bucket.take() for _ in range(3)] == [True, True, False]


def test_a_bucket_never_holds_more_than_its_burst(clock: Clock) -> None:
    bucket = TokenBucket(rate=10.0, burst=2)
    clock.now += 3600.0
    assert [bucket.take() for _ in range(3)] == [True, True, False]
