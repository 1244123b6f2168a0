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
from datetime import UTC, datetime
from typing import Any, Literal, TypedDict


class Envelope(TypedDict):
    """What subscribers receive for each published message (documents the shape)."""

    type: Literal["message"]
    channel: str
    # 1, 2, 3, ... per channel per publishing process: a gap means a message was lost.
    seq: int
    # The publishing process (hub) that numbered it.
    origin: str
    # Who published: a client id from its welcome frame, "http", or a server job's name.
    sender: str
    # When it was published: ISO 8601, UTC, milliseconds.
    ts: str
    data: Any


_ENVELOPE_KEYS = frozenset(Envelope.__required_keys__)
# Longest origin, sender or ts an envelope may carry (in characters). With the
# longest channel name, and each character escaped (\uXXXX), the envelope's
# text around its data stays under MAX_HEAD_LENGTH characters.
MAX_FIELD_LENGTH = 128
MAX_HEAD_LENGTH = 4096


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


def message_frame(channel: str, seq: int, origin: str, sender: str, data_json: str) -> str:
    """A serialised Envelope around `data_json`, which must already be valid JSON text."""
    return f"{_head(channel, seq, origin, sender, now())}{data_json}}}"


def _head(channel: str, seq: int, origin: str, sender: str, ts: str) -> str:
    """An envelope's text up to its data: `{"type":"message",...,"ts":"...","data":`."""
    fields = {"channel": channel, "seq": seq, "origin": origin, "sender": sender, "ts": ts}
    head = json_text({"type": "message", **fields})
    # `head` ends with "}": reopen it, ready for the data to be spliced in unchanged.
    return f'{head[:-1]},"data":'


def envelope_problem(channel: str, text: str, max_data_bytes: int) -> str | None:
    """None if `text` is an envelope this service publishes on `channel`, with data of
    at most `max_data_bytes` bytes (UTF-8); else why not, in a few words.

    For text that arrives from outside the process (Redis): anyone who can
    PUBLISH there could otherwise send clients a fake `resync`, text that is
    not JSON, or a message larger than the limit their welcome frame states.
    The test is strict: the envelope must be exactly what `message_frame`
    writes (its fields, their order and types, compact), which also locates
    the data, so its size is measured exactly.
    """
    if len(text) > max_data_bytes + MAX_HEAD_LENGTH:  # characters <= bytes: cheap, before parsing
        return f"larger than {max_data_bytes} bytes of data allow"
    try:
        value = parse_json(text)
    except InvalidJSON as exc:
        return str(exc)
    if not isinstance(value, dict) or value.keys() != _ENVELOPE_KEYS or value["type"] != "message":
        return "not a message envelope"
    if value["channel"] != channel:
        return f"its channel is {value['channel']!r}"
    seq, origin, sender, ts = value["seq"], value["origin"], value["sender"], value["ts"]
    if not (type(seq) is int and seq >= 1 and _short_strings(origin, sender, ts)):
        return "malformed seq, origin, sender or ts"
    head = _head(channel, seq, origin, sender, ts)
    if not (text.startswith(head) and text.endswith("}")):
        return "not serialised as this service serialises envelopes"
    size = len(text[len(head) : -1].encode())  # `head` is ASCII: characters are bytes
    if size > max_data_bytes:
        return f"its data is {size} bytes, over the {max_data_bytes} byte limit"
    return None


def _short_strings(*values: object) -> bool:
    return all(isinstance(v, str) and len(v) <= MAX_FIELD_LENGTH for v in values)


def resync_frame(channel: str, origin: str, reason: str) -> str:
    """Messages may have been missed: the client should reload whatever state it keeps."""
    return json_text({"type": "resync", "channel": channel, "origin": origin, "reason": reason})
