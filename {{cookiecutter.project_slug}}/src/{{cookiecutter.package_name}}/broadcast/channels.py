"""Channel names: which are allowed, and why one is not.

Names travel in URL paths, Redis channel names and log lines, so they are
kept to a small, unambiguous alphabet.
"""

from __future__ import annotations

import re

MAX_CHANNEL_LENGTH = 64
# A letter or digit, then up to MAX_CHANNEL_LENGTH - 1 letters, digits, "_", "-", "." or ":".
CHANNEL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
_CHANNEL = re.compile(CHANNEL_PATTERN)


def channel_problem(name: str) -> str | None:
    """None if `name` is a valid channel name, else a short reason fit for a close frame."""
    if not name:
        return "channel name is empty"
    if len(name) > MAX_CHANNEL_LENGTH:
        return f"channel name is longer than {MAX_CHANNEL_LENGTH} characters"
    # fullmatch: "$" alone would let a trailing newline through.
    if _CHANNEL.fullmatch(name) is None:
        return "channel name must be letters, digits, '_', '-', '.', ':' and start alphanumeric"
    return None
