"""Tokens for the baked service: the harness plays the team's identity service.

Every run of the baked service has authentication on: the harness hands the server an
`AUTH_SECRET` and signs each client's token with it (PyJWT, HS256), as an identity service
would. Each client gets its own `sub`; the claims allow every channel, so no permission
check refuses a benchmark's subscribe or publish (every check still runs).
"""

from __future__ import annotations

import itertools
import secrets
import time
from dataclasses import dataclass, field

import jwt

# Longer than any run: the service closes a connection whose token expires (4001).
TTL_SECONDS = 24 * 3600


def new_secret() -> str:
    """A fresh HS256 key: 43 URL-safe characters, over the service's 32-byte minimum."""
    return secrets.token_urlsafe(32)


def mint(secret: str, user: str, ttl: float = TTL_SECONDS) -> str:
    """A token for `user` that may subscribe and publish to every channel."""
    claims = {
        "sub": user,
        "exp": int(time.time() + ttl),
        "channels": ["*"],
        "publish": ["*"],
    }
    return jwt.encode(claims, secret, algorithm="HS256")


@dataclass(frozen=True)
class Credential:
    """A client's user and the token that proves it."""

    user: str
    token: str


@dataclass
class Issuer:
    """Mints one token per client, each for a user of its own (`bench-1`, `bench-2`, ...)."""

    secret: str = field(default_factory=new_secret)
    _users: itertools.count[int] = field(default_factory=lambda: itertools.count(1), repr=False)

    def issue(self) -> Credential:
        user = f"bench-{next(self._users)}"
        return Credential(user, mint(self.secret, user))
