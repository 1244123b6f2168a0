"""HTTP authentication: `Authorization: Bearer <JWT>` (RFC 6750) as a FastAPI dependency."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, status

from .tokens import Authenticator, Identity, InvalidToken


async def bearer_identity(request: Request) -> Identity:
    """The identity of the request's bearer token; anyone while authentication is off.

    Raises 401 with `WWW-Authenticate: Bearer` (RFC 6750 section 3) for a
    missing, malformed, expired or forged token.
    """
    authenticator: Authenticator = request.app.state.authenticator
    if not authenticator.enabled:
        return await authenticator.authenticate(None)
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "send Authorization: Bearer <token>",
            headers={"WWW-Authenticate": "Bearer"},
        )
    try:
        return await authenticator.authenticate(token.strip())
    except InvalidToken as exc:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            f"invalid token: {exc}",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        ) from exc


IdentityDep = Annotated[Identity, Depends(bearer_identity)]
