"""POST /channels/{channel}/messages over real sockets: publish from the server side.

Authentication is off here; bearer tokens and permissions are test_http_auth.py's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx2
import pytest
from websockets.asyncio.client import connect

from {{ cookiecutter.package_name }}.main import create_app
from {{ cookiecutter.package_name }}.settings import Settings

from .documented import assert_documented
from .live import WAIT, Live, Outage, joined, receive, serve, use_backend

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
async def live() -> AsyncIterator[Live]:
    async with serve(create_app(Settings(_env_file=None))) as live:
        yield live


@pytest.fixture(scope="module")
async def http(live: Live) -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(base_url=live.http(""), timeout=WAIT) as client:
        yield client


async def test_a_posted_body_reaches_the_channels_subscribers_and_answers_202(
    live: Live, http: httpx2.AsyncClient
) -> None:
    async with connect(live.ws("/ws")) as ws:
        await joined(ws, "news")
        response = await http.post("/channels/news/messages", json={"headline": "hello"})
        assert response.status_code == 202
        envelope = await receive(ws)
    assert response.json() == {
        "status": "accepted",
        "channel": "news",
        "offset": 1,
        "epoch": envelope["epoch"],
        "origin": live.hub.origin,
    }
    assert envelope["type"] == "message"
    assert envelope["channel"] == "news"
    assert envelope["offset"] == 1
    assert envelope["sender"] == "http"
    assert envelope["data"] == {"headline": "hello"}


async def test_publishing_to_a_channel_nobody_watches_is_accepted(http: httpx2.AsyncClient) -> None:
    response = await http.post("/channels/empty/messages", json=[1, 2, 3])
    assert response.status_code == 202


@pytest.mark.parametrize("channel", ["a%20b", "-x", "x" * 65], ids=["space", "dash", "long"])
async def test_a_bad_channel_name_is_422(http: httpx2.AsyncClient, channel: str) -> None:
    response = await http.post(f"/channels/{channel}/messages", json={})
    assert response.status_code == 422


@pytest.mark.parametrize(
    ("body", "reason"),
    [(b"{", "not valid JSON"), (b"NaN", "NaN is not JSON"), (b"\xff", "not UTF-8")],
    ids=["truncated", "nan", "not-utf8"],
)
async def test_a_body_that_is_not_json_is_422_json_invalid(
    http: httpx2.AsyncClient, body: bytes, reason: str
) -> None:
    response = await http.post(
        "/channels/news/messages", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["type"] == "json_invalid"
    assert reason in error["ctx"]["error"]


async def test_a_body_that_is_not_declared_json_is_422_naming_the_content_type(
    http: httpx2.AsyncClient,
) -> None:
    # A page on another site can POST text/plain without a preflight; not here.
    response = await http.post(
        "/channels/news/messages", content=b"{}", headers={"content-type": "text/plain"}
    )
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert (error["type"], error["loc"], error["input"]) == (
        "content_type",
        ["header", "content-type"],
        "text/plain",
    )


async def test_a_body_over_the_limit_is_413(http: httpx2.AsyncClient) -> None:
    response = await http.post("/channels/news/messages", json="x" * (64 * 1024))
    assert response.status_code == 413


async def test_publishing_while_the_backend_is_down_is_503_at_once() -> None:
    app = create_app(Settings(_env_file=None))
    backend = Outage()
    use_backend(app, backend)
    async with serve(app) as live, httpx2.AsyncClient(base_url=live.http("")) as http:
        backend.down = True
        response = await http.post("/channels/news/messages", json={})
        assert response.status_code == 503
        assert response.json() == {"detail": "broadcast unavailable: try again later"}
        assert_documented(app.openapi(), "POST", "/channels/{channel}/messages", response)
        ready = await http.get("/ready")
        assert ready.status_code == 503
        assert ready.json()["checks"]["broadcast"] == "failing"
        backend.down = False
        assert (await http.post("/channels/news/messages", json=1)).status_code == 202
        assert (await http.get("/ready")).status_code == 200
