"""Who may do what on which channel: the one rule every check goes through.

`can` is called for every WebSocket subscribe and publish and every HTTP
publish, looked up on this module at call time. Replace its body with your
own rule (a database lookup, a call to your permission service): it may
await, and the callers stay as they are. The default reads the token's
claims:

- `channels`: patterns of channels the user may subscribe to;
- `publish`: patterns of channels the user may publish to;
- a pattern is an exact channel name or a prefix ending in `*` (`chat:*`);
  `*` alone matches every channel;
- every user may always subscribe to its own channel, `user:<sub>`.

While authentication is off (development without a key), anyone may do anything.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from .tokens import Identity

Action = Literal["subscribe", "publish"]


async def can(identity: Identity, action: Action, channel: str) -> bool:
    """Whether `identity` may `action` on `channel` (a valid channel name)."""
    if identity.anonymous:
        return True
    if action == "subscribe":
        return channel == f"user:{identity.user}" or matches_any(identity.channels, channel)
    return matches_any(identity.publish, channel)


def matches_any(patterns: Iterable[str], channel: str) -> bool:
    """Whether any of `patterns` covers `channel` (exact, or a prefix before a final `*`)."""
    for pattern in patterns:
        if pattern.endswith("*"):
            if channel.startswith(pattern[:-1]):
                return True
        elif pattern == channel:
            return True
    return False
