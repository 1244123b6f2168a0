"""Bounds on every HTTP request, whatever the route: the body, and what an error echoes."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field

from {{ cookiecutter.package_name }}.main import create_app
from {{ cookiecutter.package_name }}.settings import Settings

LIMIT = 1000


class Note(BaseModel):
    text: str = Field(max_length=10)


def app_with_routes() -> FastAPI:
    """The service's app, bounded at LIMIT bytes, plus two routes of the kinds a team adds."""
    app = create_app(Settings(_env_file=None, max_body_size=LIMIT))

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"bytes": len(await request.body())}

    @app.post("/notes")
    async def notes(note: Note) -> Note:
        return note

    return app


def chunks(size: int) -> Iterator[bytes]:
    """A body without a Content-Length (sent chunked), in 100-byte pieces."""
    for _ in range(size // 100):
        yield b"x" * 100


def test_a_body_declared_over_the_limit_is_413_on_any_route() -> None:
    with TestClient(app_with_routes()) as client:
        for path in ("/echo", "/notes", "/health", "/no-such-route"):
            response = client.post(path, content=b"x" * (LIMIT + 1))
            assert response.status_code == 413, path


def test_a_chunked_body_over_the_limit_is_413_once_the_bytes_read_pass_it() -> None:
    with TestClient(app_with_routes()) as client:
        assert client.post("/echo", content=chunks(LIMIT)).json() == {"bytes": LIMIT}
        assert client.post("/echo", content=chunks(LIMIT + 100)).status_code == 413
        assert client.post("/notes", content=chunks(LIMIT + 100)).status_code == 413


def test_a_validation_error_echoes_only_a_short_prefix_of_the_input() -> None:
    with TestClient(app_with_routes()) as client:
        response = client.post("/notes", json={"text": "y" * 900})
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "text"]
    assert error["input"].startswith('"yyy')
    assert len(error["input"]) <= 70
    assert len(response.content) < 500
