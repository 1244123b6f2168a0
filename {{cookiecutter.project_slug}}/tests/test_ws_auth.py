"""WS /ws with authentication on: tokens at connect, refresh and expiry, permissions per command.

The server runs with AUTH_SECRET set in development, which must behave
exactly as production does. Tokens come from `mint`, as the `token`
command makes them.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import jwt
import pytest
from websockets.asyncio.client import ClientConnection, connect

from {{ cookiecutter.package_name }}.auth import permissions
from {{ cookiecutter.package_name }}.auth.tokens import Identity, mint
from {{ cookiecutter.package_name }}.main import create_app
from {{ cookiecutter.package_name }}.settings import Settings

from .live import WAIT, Live, closed_with, command, connected, receive, serve, subscribed

pytestmark = pytest.mark.anyio

SECRET = "a-test-secret-of-at-least-32-bytes"


def token(
    sub: str = "alice",
    *,
    ttl: float = 60,
    channels: tuple[str, ...] = (),
    publish: tuple[str, ...] = (),
    secret: str = SECRET,
) -> str:
    return mint(secret, sub, ttl=ttl, channels=channels, publish=publish)


def expiry(token: str) -> int:
    """The `exp` a token carries, read without checking it."""
    exp: int = jwt.decode(token, options={"verify_signature": False})["exp"]
    return exp


@pytest.fixture(scope="module")
async def live() -> AsyncIterator[Live]:
    async with serve(create_app(Settings(_env_file=None, auth_secret=SECRET))) as live:
        yield live


async def refused(ws: ClientConnection, frame: dict[str, Any]) -> tuple[int | None, str | None]:
    await ws.send(json.dumps(frame))
    return await closed_with(ws)


# --- connect ---------------------------------------------------------------


async def test_connect_without_a_token_is_closed_with_4001(live: Live) -> None:
    async with connect(live.ws("/ws")) as ws:
        code, reason = await refused(ws, {"type": "connect"})
    assert code == 4001
    assert reason is not None
    assert "token" in reason


@pytest.mark.parametrize(
    "bad",
    [
        token(secret="another-secret-of-at-least-32-bytes"),
        token(ttl=-10),
        "not-a-token",
    ],
    ids=["wrong-signature", "expired", "junk"],
)
async def test_connect_with_a_bad_token_is_closed_with_4001(live: Live, bad: str) -> None:
    async with connect(live.ws("/ws")) as ws:
        code, reason = await refused(ws, {"type": "connect", "token": bad})
    assert code == 4001
    assert reason is not None
    assert reason.startswith("unauthorized")


async def test_a_valid_token_is_welcomed_with_its_user_and_expiry(live: Live) -> None:
    alice = token("alice")
    async with connect(live.ws("/ws")) as ws:
        welcome = await connected(ws, alice)
        assert (await command(ws, "ping"))["type"] == "reply"
    assert welcome["user"] == "alice"
    assert welcome["expires_at"] == expiry(alice)


# --- permissions -----------------------------------------------------------


async def test_a_forbidden_subscribe_is_refused_and_the_connection_stays(live: Live) -> None:
    async with connect(live.ws("/ws")) as ws:
        await connected(ws, token(channels=("room:*",)))
        answer = await command(ws, "subscribe", channel="vault")
        assert answer["type"] == "error"
        assert answer["code"] == "forbidden"
        await subscribed(ws, "room:1")


async def test_a_forbidden_publish_is_refused_and_never_delivered(live: Live) -> None:
    async with (
        connect(live.ws("/ws")) as reader,
        connect(live.ws("/ws")) as writer,
    ):
        await connected(reader, token("reader", channels=("board",)))
        await connected(writer, token("writer", publish=("board",)))
        await subscribed(reader, "board")
        answer = await command(reader, "publish", channel="board", data="not allowed")
        assert answer["type"] == "error"
        assert answer["code"] == "forbidden"
        assert (await command(writer, "publish", channel="board", data="allowed"))["type"] == (
            "reply"
        )
        # The refused message went nowhere: the next frame is the allowed one.
        message = await receive(reader)
        assert message["type"] == "message"
        assert message["data"] == "allowed"


async def test_a_user_may_subscribe_to_its_own_channel_and_not_anothers(live: Live) -> None:
    async with connect(live.ws("/ws")) as ws:
        await connected(ws, token("alice"))
        await subscribed(ws, "user:alice")
        answer = await command(ws, "subscribe", channel="user:bob")
        assert answer["code"] == "forbidden"
        # Its own channel is to read: publishing there needs the claim.
        answer = await command(ws, "publish", channel="user:alice", data="hi")
        assert answer["code"] == "forbidden"


# --- refresh and expiry ----------------------------------------------------


async def test_a_token_that_expires_closes_the_connection_with_4001(live: Live) -> None:
    async with connect(live.ws("/ws")) as ws:
        await connected(ws, token(ttl=2))
        code, reason = await closed_with(ws)
    assert code == 4001
    assert reason == "token expired"


async def test_refresh_moves_the_expiry_and_the_connection_outlives_the_old_token(
    live: Live,
) -> None:
    short = token("alice", ttl=2, channels=("news",))
    # Closed by its expiry a second after `short`'s: a clock made of the
    # behaviour under test, instead of a sleep.
    witness_token = token("alice", ttl=3)
    assert expiry(witness_token) > expiry(short)
    longer = token("alice", ttl=60, channels=("news",))
    async with connect(live.ws("/ws")) as ws, connect(live.ws("/ws")) as witness:
        assert (await connected(ws, short))["expires_at"] == expiry(short)
        await connected(witness, witness_token)
        answer = await command(ws, "refresh", token=longer)
        assert answer == {"type": "reply", "id": answer["id"], "expires_at": expiry(longer)}
        assert await closed_with(witness) == (4001, "token expired")
        # Past the old token's expiry, the refreshed connection still serves.
        assert (await command(ws, "ping"))["type"] == "reply"
        await subscribed(ws, "news")


async def test_refresh_with_another_users_token_is_forbidden(live: Live) -> None:
    async with connect(live.ws("/ws")) as ws:
        await connected(ws, token("alice"))
        answer = await command(ws, "refresh", token=token("bob", channels=("*",)))
        assert answer["type"] == "error"
        assert answer["code"] == "forbidden"
        # Still alice, with alice's permissions, not bob's.
        assert (await command(ws, "subscribe", channel="anything"))["code"] == "forbidden"
        await subscribed(ws, "user:alice")


@pytest.mark.parametrize(
    "bad",
    [token(secret="another-secret-of-at-least-32-bytes"), token(ttl=-10), "junk"],
    ids=["wrong-signature", "expired", "junk"],
)
async def test_refresh_with_a_bad_token_is_unauthorized_and_the_connection_stays(
    live: Live, bad: str
) -> None:
    async with connect(live.ws("/ws")) as ws:
        await connected(ws, token("alice"))
        answer = await command(ws, "refresh", token=bad)
        assert answer["type"] == "error"
        assert answer["code"] == "unauthorized"
        assert (await command(ws, "ping"))["type"] == "reply"


# --- a team's own rule -------------------------------------------------------


async def test_a_replaced_can_decides_websocket_and_http_alike(
    live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str | None, str, str]] = []

    async def can(identity: Identity, action: permissions.Action, channel: str) -> bool:
        calls.append((identity.user, action, channel))
        return channel != "vetoed"

    monkeypatch.setattr(permissions, "can", can)
    # No claims at all: the default rule would refuse every channel below.
    alice = token("alice")
    headers = {"Authorization": f"Bearer {alice}"}
    async with (
        connect(live.ws("/ws")) as ws,
        httpx2.AsyncClient(base_url=live.http(""), timeout=WAIT) as http,
    ):
        await connected(ws, alice)
        assert (await command(ws, "subscribe", channel="vetoed"))["code"] == "forbidden"
        await subscribed(ws, "granted")
        assert (await command(ws, "publish", channel="vetoed", data=1))["code"] == "forbidden"
        assert (await command(ws, "publish", channel="granted", data=2))["type"] == "reply"
        refused_post = await http.post("/channels/vetoed/messages", json=3, headers=headers)
        assert refused_post.status_code == 403
        accepted_post = await http.post("/channels/granted/messages", json=4, headers=headers)
        assert accepted_post.status_code == 202
    assert calls == [
        ("alice", "subscribe", "vetoed"),
        ("alice", "subscribe", "granted"),
        ("alice", "publish", "vetoed"),
        ("alice", "publish", "granted"),
        ("alice", "publish", "vetoed"),
        ("alice", "publish", "granted"),
    ]
