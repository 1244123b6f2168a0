"""HTTP with authentication on: bearer tokens on POST /channels/{channel}/messages,
probes left open, and what production hides.

Without a token, or with a bad one, the answer is 401 with a `WWW-Authenticate:
Bearer` challenge (RFC 6750); a token whose claims do not cover the channel
gets 403, and nothing reaches the channel's subscribers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx2
import pytest
from fastapi.testclient import TestClient
from websockets.asyncio.client import connect

from {{ cookiecutter.package_name }}.auth.tokens import mint
from {{ cookiecutter.package_name }}.main import create_app
from {{ cookiecutter.package_name }}.settings import Settings

from .documented import assert_documented
from .live import WAIT, Live, joined, receive, serve

pytestmark = pytest.mark.anyio

SECRET = "a-test-secret-of-at-least-32-bytes"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def publisher(*patterns: str, sub: str = "alice") -> dict[str, str]:
    """Headers carrying a token that may publish to `patterns`."""
    return bearer(mint(SECRET, sub, ttl=60, publish=patterns))


@pytest.fixture(scope="module")
async def live() -> AsyncIterator[Live]:
    async with serve(create_app(Settings(_env_file=None, auth_secret=SECRET))) as live:
        yield live


@pytest.fixture(scope="module")
async def http(live: Live) -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(base_url=live.http(""), timeout=WAIT) as client:
        yield client


async def test_publishing_without_a_token_is_401_with_a_bearer_challenge(
    http: httpx2.AsyncClient,
) -> None:
    response = await http.post("/channels/open-door/messages", json="hi")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "authorization",
    [
        f"Bearer {mint('another-secret-of-at-least-32-bytes', 'alice', ttl=60, publish=['*'])}",
        f"Bearer {mint(SECRET, 'alice', ttl=-10, publish=['*'])}",
        "Bearer not-a-token",
        f"Basic {mint(SECRET, 'alice', ttl=60, publish=['*'])}",
        "Bearer",
    ],
    ids=["wrong-signature", "expired", "junk", "not-bearer", "no-token"],
)
async def test_publishing_with_a_bad_token_is_401(
    live: Live, http: httpx2.AsyncClient, authorization: str
) -> None:
    response = await http.post(
        "/channels/open-door/messages", json="hi", headers={"Authorization": authorization}
    )
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert_documented(live.app.openapi(), "POST", "/channels/{channel}/messages", response)


async def test_publishing_where_the_token_does_not_allow_is_403_and_delivers_nothing(
    live: Live, http: httpx2.AsyncClient
) -> None:
    async with connect(live.ws("/ws")) as ws:
        await joined(ws, "desk", token=mint(SECRET, "reader", ttl=60, channels=["desk"]))
        refused = await http.post("/channels/desk/messages", json="no", headers=publisher("den"))
        assert refused.status_code == 403
        assert "desk" in refused.json()["detail"]
        assert_documented(live.app.openapi(), "POST", "/channels/{channel}/messages", refused)
        accepted = await http.post("/channels/desk/messages", json="yes", headers=publisher("d*"))
        assert accepted.status_code == 202
        assert accepted.json()["channel"] == "desk"
        # The refused body never went out: the first message is the accepted one.
        message = await receive(ws)
        assert message["channel"] == "desk"
        assert message["data"] == "yes"


async def test_a_users_own_channel_takes_http_publishes_only_with_the_claim(
    http: httpx2.AsyncClient,
) -> None:
    path = "/channels/user:alice/messages"
    assert (await http.post(path, json=1, headers=publisher())).status_code == 403
    assert (await http.post(path, json=1, headers=publisher("user:alice"))).status_code == 202


@pytest.mark.parametrize("path", ["/health", "/ready"])
async def test_probes_answer_without_a_token(http: httpx2.AsyncClient, path: str) -> None:
    response = await http.get(path)
    assert response.status_code == 200


def test_production_hides_the_demo_page_unless_demo_enabled() -> None:
    production = Settings(_env_file=None, environment="production", auth_secret=SECRET)
    with TestClient(create_app(production)) as client:
        assert client.get("/").status_code == 404
    enabled = production.model_copy(update={"demo_enabled": True})
    with TestClient(create_app(enabled)) as client:
        assert client.get("/").status_code == 200
    development = Settings(_env_file=None, auth_secret=SECRET)
    with TestClient(create_app(development)) as client:
        assert client.get("/").status_code == 200
