"""Who a connection or request is: JSON Web Tokens verified with PyJWT.

Tokens come from the team's own identity service; this service only
verifies them, with one of three keys (settings): `AUTH_SECRET` (HS256),
`AUTH_PUBLIC_KEY` (a PEM public key: RSA, EC or Ed25519/Ed448), or
`AUTH_JWKS_URL` (a JWK Set fetched and cached by PyJWT's `PyJWKClient`).
The algorithms a token may use follow from the key, never from the token:
that refuses `alg: none` and the HS256-signed-with-the-public-key forgery
(algorithm confusion, RFC 8725 section 2.1).

Claims: `sub` (required, the user id), `exp` (required, Unix seconds), and
optionally `channels` and `publish`, lists of channel patterns the user may
subscribe and publish to (see `permissions.py`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jwt

from ..limits import echoed
from ..settings import Settings
from .keys import public_key

# Every token must carry these (RFC 7519 registered claims).
REQUIRED_CLAIMS = ("sub", "exp")
# 9999-12-31T23:59:59Z: a later `exp` is no date a timer (or a client) can use.
LATEST_EXPIRY = 253_402_300_799
# Seconds PyJWKClient keeps a fetched JWK Set before fetching it again.
JWKS_CACHE_SECONDS = 300


class InvalidToken(Exception):
    """A token that cannot be trusted: bad signature, expired, wrong issuer, ... (str: which)."""


@dataclass(frozen=True)
class Identity:
    """Whoever holds a verified token, or anyone at all while authentication is off."""

    # The token's `sub`; None while authentication is off.
    user: str | None
    # The token's `exp`, Unix seconds; None while authentication is off.
    expires_at: int | None
    # Channel patterns from the `channels` and `publish` claims.
    channels: tuple[str, ...] = ()
    publish: tuple[str, ...] = ()
    # Every claim of the token, for a `can` that looks at more.
    claims: Mapping[str, Any] = field(default_factory=dict)

    @property
    def anonymous(self) -> bool:
        """True while authentication is off: such an identity may do anything."""
        return self.user is None


# Who a connection is while authentication is off.
ANONYMOUS = Identity(user=None, expires_at=None)


class Authenticator:
    """Verifies tokens with the configured key; `enabled` is False when no key is set."""

    def __init__(self, settings: Settings) -> None:
        self._issuer = settings.auth_issuer
        self._audience = settings.auth_audience
        self._leeway = settings.auth_leeway
        self._key: Any = None
        self._algorithms: Sequence[str] = ()
        self._jwks: jwt.PyJWKClient | None = None
        if settings.auth_secret is not None:
            self._key = settings.auth_secret.get_secret_value().encode()
            self._algorithms = ("HS256",)
        elif settings.auth_public_key is not None:
            self._key, self._algorithms = public_key(settings.auth_public_key)
        elif settings.auth_jwks_url is not None:
            self._jwks = jwt.PyJWKClient(
                settings.auth_jwks_url, cache_keys=True, lifespan=JWKS_CACHE_SECONDS, timeout=5
            )

    @property
    def enabled(self) -> bool:
        return self._key is not None or self._jwks is not None

    async def authenticate(self, token: str | None) -> Identity:
        """The identity `token` proves; ANONYMOUS while authentication is off.

        Raises InvalidToken for a missing, malformed, expired or forged token.
        With a JWKS URL, the first token (and one with an unknown `kid`)
        fetches the key set, in a worker thread.
        """
        if not self.enabled:
            return ANONYMOUS
        if not token:
            raise InvalidToken("a token is required")
        try:
            if self._jwks is not None:
                signing_key = await asyncio.to_thread(self._jwks.get_signing_key_from_jwt, token)
                if signing_key.algorithm_name.startswith("HS"):
                    raise InvalidToken("the key set offers a shared secret, not a public key")
                key, algorithms = signing_key, [signing_key.algorithm_name]
            else:
                key, algorithms = self._key, list(self._algorithms)
            claims = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": list(REQUIRED_CLAIMS)},
            )
        except jwt.PyJWKClientConnectionError as exc:
            raise InvalidToken("the signing keys could not be fetched") from exc
        except jwt.PyJWTError as exc:
            # Cut: PyJWT quotes parts of the token (an unknown `kid`), which
            # a 401 and a WebSocket error frame would echo whole.
            raise InvalidToken(echoed(str(exc)) or type(exc).__name__) from exc
        return identity(claims)


def identity(claims: Mapping[str, Any]) -> Identity:
    """The identity of verified `claims`; raises InvalidToken for claims of the wrong shape."""
    user = claims["sub"]
    if not isinstance(user, str) or not user:
        raise InvalidToken("sub must be a non-empty string")
    expires_at = int(claims["exp"])
    if expires_at > LATEST_EXPIRY:
        raise InvalidToken("exp is past the year 9999")
    return Identity(
        user=user,
        expires_at=expires_at,
        channels=_patterns(claims, "channels"),
        publish=_patterns(claims, "publish"),
        claims=dict(claims),
    )


def _patterns(claims: Mapping[str, Any], name: str) -> tuple[str, ...]:
    value = claims.get(name, [])
    if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
        raise InvalidToken(f"{name} must be a list of strings")
    return tuple(value)


def mint(
    secret: str,
    user: str,
    *,
    ttl: float,
    channels: Sequence[str] = (),
    publish: Sequence[str] = (),
    **claims: Any,
) -> str:
    """An HS256 token for `user`, valid for `ttl` seconds: for development, tests, the demo."""
    now = int(time.time())
    payload = {
        "sub": user,
        "iat": now,
        "exp": now + int(ttl),
        "channels": list(channels),
        "publish": list(publish),
        **claims,
    }
    return jwt.encode(payload, secret, algorithm="HS256")
