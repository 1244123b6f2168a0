"""The WebSocket protocol's frames: a client's text frame in, typed commands; replies out.

Pure functions and data, no I/O. Every frame is one JSON object with a
`type`. A client sends `connect` first, then commands that each carry an
`id` of its choosing (a number, or a string of at most MAX_ID_LENGTH
characters); the server answers each command exactly once, with a `reply`
or an `error` carrying the same `id`. The README's "WebSocket protocol"
section is the reference for clients.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final

from ..broadcast.envelope import InvalidJSON, Position, json_text, parse_json

MAX_ID_LENGTH: Final = 64
# Longest epoch a `since` may name (the service's own are 8 characters).
MAX_EPOCH_LENGTH: Final = 32
# A command's `id`, echoed back as the client sent it.
CommandId = int | float | str

# Error codes, in `{"type": "error", "code": ...}` frames.
BAD_FRAME: Final = "bad_frame"
BAD_CHANNEL: Final = "bad_channel"
FORBIDDEN: Final = "forbidden"
ALREADY_SUBSCRIBED: Final = "already_subscribed"
TOO_MANY_SUBSCRIPTIONS: Final = "too_many_subscriptions"
RATE_LIMITED: Final = "rate_limited"
UNAVAILABLE: Final = "unavailable"
UNAUTHORIZED: Final = "unauthorized"

# Close codes of the application's range (4000-4999), as Pusher and Centrifugo use it.
CLOSE_UNAUTHORIZED: Final = 4001
CLOSE_POLICY_VIOLATION: Final = 4008
CLOSE_TOO_MANY_REQUESTS: Final = 4029


@dataclass(frozen=True, slots=True)
class Connect:
    token: str | None


@dataclass(frozen=True, slots=True)
class Subscribe:
    id: CommandId
    channel: str
    # The last position the client saw: recover every message after it.
    since: Position | None = None


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    id: CommandId
    channel: str


@dataclass(frozen=True, slots=True)
class Publish:
    id: CommandId
    channel: str
    # The published value, re-serialised as compact JSON text.
    data_json: str


@dataclass(frozen=True, slots=True)
class Refresh:
    id: CommandId
    token: str


@dataclass(frozen=True, slots=True)
class Ping:
    id: CommandId


Command = Connect | Subscribe | Unsubscribe | Publish | Refresh | Ping


class BadFrame(ValueError):
    """A frame that is not a command; `id` is the frame's own when it had a usable one."""

    def __init__(self, reason: str, id: CommandId | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.id = id


def command_id(command: Command | BadFrame) -> CommandId | None:
    """The `id` to answer `command` with; None for `connect`, which has none."""
    return None if isinstance(command, Connect) else command.id


def parse(text: str) -> Command:
    """The command in one text frame; raises BadFrame naming what is wrong.

    Checks shape only (types and required fields); whether a channel name
    is valid or allowed is the session's to answer.
    """
    try:
        frame = parse_json(text)
    except InvalidJSON as exc:
        raise BadFrame(str(exc)) from exc
    if not isinstance(frame, dict):
        raise BadFrame("a frame must be a JSON object")
    kind = frame.get("type")
    if kind == "connect":
        token = frame.get("token")
        if token is not None and not isinstance(token, str):
            raise BadFrame("connect: token must be a string")
        return Connect(token)
    command_id = _id(frame)
    if kind == "subscribe":
        channel = _string(frame, "channel", command_id)
        return Subscribe(command_id, channel, _since(frame.get("since"), command_id))
    if kind == "unsubscribe":
        return Unsubscribe(command_id, _string(frame, "channel", command_id))
    if kind == "publish":
        channel = _string(frame, "channel", command_id)
        if "data" not in frame:
            raise BadFrame("publish needs data", command_id)
        try:
            data_json = json_text(frame["data"])
        except ValueError as exc:
            # 1e400 parses as infinity, which JSON cannot carry.
            raise BadFrame(f"publish data is not JSON: {exc}", command_id) from exc
        return Publish(command_id, channel, data_json)
    if kind == "refresh":
        return Refresh(command_id, _string(frame, "token", command_id))
    if kind == "ping":
        return Ping(command_id)
    if not isinstance(kind, str):
        raise BadFrame("a frame needs a string type", command_id)
    raise BadFrame(f"unknown type {kind[:32]!r}", command_id)


def _id(frame: dict[str, Any]) -> CommandId:
    """The frame's `id`: a number (not a boolean) or a short string."""
    value = frame.get("id")
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        # A bad id is not echoed: the client could not match it anyway.
        raise BadFrame("every command but connect needs an id: a number or a string")
    if isinstance(value, str) and len(value) > MAX_ID_LENGTH:
        raise BadFrame(f"id longer than {MAX_ID_LENGTH} characters")
    if isinstance(value, float) and not math.isfinite(value):
        # 1e400 parses as infinity: no reply could echo it as JSON.
        raise BadFrame("id must be a finite number or a string")
    return value


def _since(value: Any, command_id: CommandId) -> Position | None:
    """A subscribe's `since`: absent or null, or {"offset": n >= 0, "epoch": "..."}."""
    if value is None:
        return None
    offset = value.get("offset") if isinstance(value, dict) else None
    epoch = value.get("epoch") if isinstance(value, dict) else None
    if type(offset) is not int or offset < 0 or not isinstance(epoch, str):
        raise BadFrame(
            'subscribe: since must be {"offset": a whole number >= 0, "epoch": a string}',
            command_id,
        )
    if not 0 < len(epoch) <= MAX_EPOCH_LENGTH:
        raise BadFrame(
            f"subscribe: since.epoch must be 1 to {MAX_EPOCH_LENGTH} characters", command_id
        )
    return Position(offset, epoch)


def _string(frame: dict[str, Any], key: str, command_id: CommandId) -> str:
    value = frame.get(key)
    if not isinstance(value, str):
        raise BadFrame(f"{frame['type']} needs {key}: a string", command_id)
    return value


def reply(command_id: CommandId, **fields: Any) -> str:
    """A command's success: `{"type": "reply", "id": ..., **fields}`."""
    return json_text({"type": "reply", "id": command_id, **fields})


def error(code: str, reason: str, command_id: CommandId | None = None) -> str:
    """A refused frame: `{"type": "error", "id": ..., "code": ..., "reason": ...}`.

    Without `command_id` (a frame with no usable id, or a connection-level
    problem), the frame carries no `id`. The connection stays open.
    """
    if command_id is None:
        return json_text({"type": "error", "code": code, "reason": reason})
    return json_text({"type": "error", "id": command_id, "code": code, "reason": reason})


def welcome(
    client: str,
    user: str | None,
    expires_at: int | None,
    origin: str,
    max_message_size: int,
    max_subscriptions: int,
    rate: float,
    burst: int,
) -> str:
    """The answer to `connect`: who the connection is, until when, and its limits."""
    return json_text(
        {
            "type": "welcome",
            # The client's id, as envelopes' `sender` names it.
            "client": client,
            "user": user,
            "expires_at": expires_at,
            # This process, as envelopes' `origin` names it.
            "origin": origin,
            "max_message_size": max_message_size,
            "max_subscriptions": max_subscriptions,
            # Commands it may send: `rate` per second on average, `burst` at once
            # (a token bucket); a client that paces itself by them is never refused.
            "rate": rate,
            "burst": burst,
        }
    )
