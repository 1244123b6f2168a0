"""The frames the hub fans out, the check that published data is JSON, and the
check that an envelope received from another process is one of ours.

The hub sends two kinds of frame, each one JSON object whose `type` says
what it is: `message` envelopes and `resync`. (The frames of the WebSocket
protocol around them, replies and errors, are `realtime/protocol.py`'s.)
A message envelope is built and serialised
once, by the process that publishes it; the published data is spliced in as
the JSON text it arrived as, so it is never parsed into Python objects and
dumped again on its way to the clients.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple

# typing_extensions' TypedDict, which pydantic can read on Python < 3.12 too
# (GET /channels/{channel}/history documents its messages with it).
from typing_extensions import TypedDict


class Envelope(TypedDict):
    """What subscribers receive for each published message (documents the shape)."""

    type: Literal["message"]
    channel: str
    # 1, 2, 3, ... per channel, the same in every process and for every subscriber:
    # a gap means a message was missed.
    offset: int
    # Names the channel's history; offsets restart under a new epoch when
    # history may have been lost (see broadcast/history.py).
    epoch: str
    # The publishing process (hub).
    origin: str
    # Who published: a client id from its welcome frame, "http", or a server job's name.
    sender: str
    # When it was published: ISO 8601, UTC, milliseconds.
    ts: str
    data: Any


class Position(NamedTuple):
    """A place in a channel's history: the offset of a message and its epoch."""

    offset: int
    epoch: str


_ENVELOPE_KEYS = frozenset(Envelope.__required_keys__)
# The envelope's text around its data is shorter than this (in characters):
# every field but the data is short, by the patterns below.
MAX_HEAD_LENGTH = 1024
# What the service writes in each field but the data, and all a received
# envelope may carry: an epoch as `new_epoch` makes it, a hub's origin
# (12 hexadecimal digits), a sender (a client id, "http", or a job's name:
# SENDER), a time as `now` writes it.
_EPOCH = re.compile(r"[0-9a-f]{1,32}")
_ORIGIN = re.compile(r"[0-9a-f]{12}")
SENDER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
_TS = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")
# The `ts` field as the envelope's text carries it, and the length of its value.
_TS_FIELD = ',"ts":"'
_TS_LENGTH = len("2025-01-31T12:00:00.000Z")


class NotOurs(ValueError):
    """Received text that is not an envelope this service would have published there."""


class InvalidJSON(ValueError):
    """Text that is not one complete JSON value (or uses NaN/Infinity, which JSON lacks)."""


def _refuse_constant(name: str) -> Any:
    raise InvalidJSON(f"{name} is not JSON")


def parse_json(text: str) -> Any:
    """The JSON value `text` holds; raises InvalidJSON with a reason fit to show a client."""
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except InvalidJSON:
        raise
    except json.JSONDecodeError as exc:
        raise InvalidJSON(f"not valid JSON: {exc}") from exc
    except ValueError as exc:
        # An integer past sys.get_int_max_str_digits() (CVE-2020-10735); the
        # interpreter's own message is about its settings, not the client's JSON.
        raise InvalidJSON("not valid JSON: a number with too many digits") from exc
    except RecursionError as exc:  # "[[[[...": deeper than the parser allows
        raise InvalidJSON("not valid JSON: nested too deeply") from exc


def check_json(text: str) -> None:
    """Return if `text` is valid JSON; raise InvalidJSON with the reason otherwise."""
    parse_json(text)


def json_text(value: Any) -> str:
    """`value` as compact JSON text; raises ValueError for NaN or Infinity."""
    # ASCII-only: a lone surrogate in a str becomes an escape, not a frame
    # that fails to encode as UTF-8 on its way out.
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


def now() -> str:
    """The current time as envelopes carry it."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_epoch() -> str:
    """A fresh epoch: 8 random hexadecimal digits."""
    return secrets.token_hex(4)


@dataclass(frozen=True, slots=True)
class Draft:
    """An envelope before its position is known: `before` + offset + epoch + `after`.

    The backend assigns the offset (and knows the epoch) as it stores the
    message, in Redis inside a script, so the envelope is completed there by
    plain concatenation: `complete` is the one definition of that join.
    """

    before: str
    after: str

    def complete(self, position: Position) -> str:
        """The serialised Envelope at `position`."""
        return f'{self.before}{position.offset},"epoch":"{position.epoch}"{self.after}'


def draft(channel: str, origin: str, sender: str, data_json: str) -> Draft:
    """An Envelope around `data_json`, which must already be valid JSON text, stamped now."""
    return _draft(channel, origin, sender, now(), data_json)


def _draft(channel: str, origin: str, sender: str, ts: str, data_json: str) -> Draft:
    before = '{"type":"message","channel":' + json_text(channel) + ',"offset":'
    # `json_text` of the fields ends with "}": reopen it to splice the data in unchanged.
    fields = json_text({"origin": origin, "sender": sender, "ts": ts})
    return Draft(before, f',{fields[1:-1]},"data":{data_json}}}')


def message_frame(
    channel: str, position: Position, origin: str, sender: str, data_json: str
) -> str:
    """A serialised Envelope around `data_json` (valid JSON text) at `position`."""
    return draft(channel, origin, sender, data_json).complete(position)


def read_envelope(channel: str, text: str, max_data_bytes: int) -> Position:
    """The position of `text` if it is an envelope this service publishes on `channel`,
    with data of at most `max_data_bytes` bytes (UTF-8); raises NotOurs saying why not.

    For text that arrives from outside the process (Redis): anyone who can
    PUBLISH there could otherwise send clients a fake `resync`, text that is
    not JSON, or a message larger than the limit their welcome frame states.
    The test is strict: the envelope must be exactly what `message_frame`
    writes (its fields, their order and types, compact), which also locates
    the data, so its size is measured exactly.
    """
    if len(text) > max_data_bytes + MAX_HEAD_LENGTH:  # characters <= bytes: cheap, before parsing
        raise NotOurs(f"larger than {max_data_bytes} bytes of data allow")
    try:
        value = parse_json(text)
    except InvalidJSON as exc:
        raise NotOurs(str(exc)) from None
    if not isinstance(value, dict) or value.keys() != _ENVELOPE_KEYS or value["type"] != "message":
        raise NotOurs("not a message envelope")
    if value["channel"] != channel:
        raise NotOurs(f"its channel is {value['channel']!r}")
    offset, epoch = value["offset"], value["epoch"]
    origin, sender, ts = value["origin"], value["sender"], value["ts"]
    if (
        type(offset) is not int
        or offset < 1
        or not (isinstance(epoch, str) and _EPOCH.fullmatch(epoch))
    ):
        raise NotOurs("malformed offset or epoch")
    if not _matches((_ORIGIN, origin), (SENDER, sender), (_TS, ts)):
        raise NotOurs("an origin, sender or ts this service does not write")
    position = Position(offset, epoch)
    expected = _draft(channel, origin, sender, ts, "")
    head = expected.complete(position)[:-1]  # up to the data
    if not (text.startswith(head) and text.endswith("}")):
        raise NotOurs("not serialised as this service serialises envelopes")
    size = len(text[len(head) : -1].encode())  # `head` is ASCII: characters are bytes
    if size > max_data_bytes:
        raise NotOurs(f"its data is {size} bytes, over the {max_data_bytes} byte limit")
    return position


def _matches(*fields: tuple[re.Pattern[str], object]) -> bool:
    return all(isinstance(value, str) and pattern.fullmatch(value) for pattern, value in fields)


def resync_frame(channel: str, position: Position | None, origin: str, reason: str) -> str:
    """Messages may have been missed: the client should reload whatever state it keeps.

    `position`, when known, is the channel's now: what follows the frame comes after it.
    """
    frame: dict[str, Any] = {"type": "resync", "channel": channel}
    if position is not None:
        frame |= {"offset": position.offset, "epoch": position.epoch}
    return json_text(frame | {"origin": origin, "reason": reason})


def published_at(text: str) -> float | None:
    """When the message envelope `text` was published (its `ts`), in seconds since the
    epoch; None for a frame without one (`resync`). Reads only the `ts` field."""
    # The first `,"ts":"` is the field: the channel before it is JSON-escaped
    # (no bare quote inside), and the data comes after it.
    start = text.find(_TS_FIELD)
    if start < 0:
        return None
    start += len(_TS_FIELD)
    try:
        return datetime.fromisoformat(text[start : start + _TS_LENGTH]).timestamp()
    except ValueError:
        return None
