"""Every error a route answers is in the OpenAPI schema, with the body it carries (errors.py).

These run over every operation the schema documents, the routes a team adds
included: a route that takes a body or a bearer token documents what that
brings, and answers it in the documented shape.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from {{ cookiecutter.package_name }}.main import create_app
from {{ cookiecutter.package_name }}.settings import Settings

from .documented import assert_documented, concrete, operations

SECRET = "a-test-secret-of-at-least-32-bytes"
# MAX_BODY_SIZE here: above every malformed body below, under WS_MAX_MESSAGE_SIZE.
LIMIT = 60_000

JSON = {"content-type": "application/json"}

# Bodies that cannot be read as the JSON a route takes, by every way there is.
MALFORMED: dict[str, tuple[dict[str, str], bytes]] = {
    "not-json": (JSON, b"hello"),
    "truncated": (JSON, b'{"recipient": "a'),
    "empty": (JSON, b""),
    "not-utf8": (JSON, b'"caf\xe9"'),
    "nested-too-deeply": (JSON, b"[" * 50_000),
    "number-too-long": (JSON, b"1" * 5_000),
    "nan": (JSON, b"NaN"),
    "text-plain": ({"content-type": "text/plain"}, b"{}"),
    "form": ({"content-type": "application/x-www-form-urlencoded"}, b"a=b"),
    "no-content-type": ({}, b"{}"),
}


@pytest.fixture(scope="module")
def bounded() -> Iterator[TestClient]:
    """One started app for the module, bounded at LIMIT bytes a body (starting one is the cost)."""
    with TestClient(create_app(Settings(_env_file=None, max_body_size=LIMIT))) as client:
        yield client


def every_route(monkeypatch: pytest.MonkeyPatch) -> FastAPI:
    """The app with every route the bake has: routes that need Redis come with a REDIS_URL.

    Not started, so nothing connects to it: for reading routes and schema only.
    """
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    return create_app(Settings(_env_file=None))


def test_every_error_the_schema_documents_has_a_body_to_parse(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    schema = every_route(monkeypatch).openapi()
    for method, path in operations(schema):
        operation = schema["paths"][path][method.lower()]
        # Any request: a Host outside TRUSTED_HOSTS, a Content-Length over MAX_BODY_SIZE.
        wanted = {"400", "413"}
        if "requestBody" in operation:
            wanted |= {"413", "422"}
        if operation.get("parameters"):
            wanted.add("422")
        responses = operation["responses"]
        assert wanted <= set(responses), f"{method} {path} leaves out {wanted - set(responses)}"
        for status, response in responses.items():
            # An error documented by its description alone tells a client nothing to parse.
            if int(status) >= 400:
                assert "application/json" in response.get("content", {}), (method, path, status)


@pytest.mark.parametrize("kind", MALFORMED)
def test_a_malformed_body_is_the_documented_422_on_every_route_that_takes_one(
    bounded: TestClient, kind: str
) -> None:
    headers, content = MALFORMED[kind]
    schema = bounded.get("/openapi.json").json()
    for method, path in operations(schema, with_body=True):
        response = bounded.request(method, concrete(path), headers=headers, content=content)
        assert response.status_code == 422, (method, path, response.text)
        assert_documented(schema, method, path, response)


def chunks(size: int) -> Iterator[bytes]:
    """`size` bytes of a JSON string, sent without a Content-Length (chunked)."""
    yield b'"'
    for _ in range(size // 1000):
        yield b"x" * 1000
    yield b'"'


@pytest.mark.parametrize("sent", ["declared", "chunked"])
def test_a_body_over_max_body_size_is_the_documented_413_on_every_route_that_takes_one(
    bounded: TestClient, sent: str
) -> None:
    # Declared too large, Starlette answers as text; found too large while read, as JSON.
    schema = bounded.get("/openapi.json").json()
    for method, path in operations(schema, with_body=True):
        body = b'"' + b"x" * LIMIT + b'"' if sent == "declared" else chunks(LIMIT)
        response = bounded.request(method, concrete(path), headers=JSON, content=body)
        assert response.status_code == 413, (method, path, response.text)
        assert_documented(schema, method, path, response)


def test_an_untrusted_host_is_the_documented_400_on_every_route(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Answered before any route runs: not started, nothing opens.
    app = every_route(monkeypatch)
    schema = app.openapi()
    client = TestClient(app)
    for method, path in operations(schema):
        response = client.request(method, concrete(path), headers={"host": "evil.example"})
        assert response.status_code == 400, (method, path, response.text)
        assert response.json() == {"detail": "untrusted Host header"}
        assert_documented(schema, method, path, response)


def test_a_declared_oversize_body_is_the_documented_413_on_every_route(
    bounded: TestClient,
) -> None:
    # A route that reads no body (GET /health) gets it too: Starlette answers 413 in
    # place of the route's answer when the declared Content-Length is over the limit.
    schema = bounded.get("/openapi.json").json()
    for method, path in operations(schema):
        response = bounded.request(method, concrete(path), content=b"x" * (LIMIT + 1))
        assert response.status_code == 413, (method, path, response.text)
        assert_documented(schema, method, path, response)


def test_without_a_token_the_routes_that_need_one_answer_the_documented_401() -> None:
    app = create_app(Settings(_env_file=None, auth_secret=SECRET))
    schema = app.openapi()
    with TestClient(app) as client:
        for method, path in operations(schema):
            operation = schema["paths"][path][method.lower()]
            body: dict[str, str] | None = {} if "requestBody" in operation else None
            response = client.request(method, concrete(path), json=body)
            if "401" in operation["responses"]:
                assert response.status_code == 401, (method, path, response.text)
            assert_documented(schema, method, path, response)
