"""The frames the hub fans out, and the check that published data is JSON.

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
    head = json_text(
        {
            "type": "message",
            "channel": channel,
            "seq": seq,
            "origin": origin,
            "sender": sender,
            "ts": now(),
        }
    )
    # `head` ends with "}": reopen it and splice the data in unchanged.
    return f'{head[:-1]},"data":{data_json}}}'


def resync_frame(channel: str, origin: str, reason: str) -> str:
    """Messages may have been missed: the client should reload whatever state it keeps."""
    return json_text({"type": "resync", "channel": channel, "origin": origin, "reason": reason})
