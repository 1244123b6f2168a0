"""X-Request-ID on every HTTP answer, errors included, and in the log lines of its request."""

from __future__ import annotations

import logging
import re

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel

from {{ cookiecutter.package_name }}.main import create_app
from {{ cookiecutter.package_name }}.request_ids import HEADER, current_request_id
from {{ cookiecutter.package_name }}.settings import Settings

LIMIT = 1000
GENERATED = re.compile(r"[0-9a-f]{32}")


class Note(BaseModel):
    text: str


def app_with_failing_routes() -> FastAPI:
    """The service's app, bounded at LIMIT bytes, plus routes that answer each kind of error."""
    app = create_app(Settings(_env_file=None, max_body_size=LIMIT))
    log = logging.getLogger("{{ cookiecutter.package_name }}.tests")

    @app.post("/notes")
    async def notes(note: Note) -> Note:
        return note

    @app.get("/boom")
    async def boom() -> None:
        log.warning("about to fail")
        raise RuntimeError("a bug")

    return app


@pytest.fixture(scope="module")
def client() -> TestClient:
    # A 500 is answered, as a server would, rather than raised into the test.
    return TestClient(app_with_failing_routes(), raise_server_exceptions=False)


# (method, path, body, the status it must get)
ANSWERS = [
    ("GET", "/health", None, 200),
    ("GET", "/nowhere", None, 404),
    ("DELETE", "/health", None, 405),
    ("POST", "/notes", b"x" * (LIMIT + 1), 413),
    ("POST", "/notes", b'{"text": 1}', 422),
    ("GET", "/boom", None, 500),
]


@pytest.mark.parametrize(("method", "path", "body", "status"), ANSWERS)
def test_every_answer_echoes_a_valid_id(
    client: TestClient, method: str, path: str, body: bytes | None, status: int
) -> None:
    given = "req-42.a:b_c"
    response = client.request(method, path, content=body, headers={HEADER: given})
    assert response.status_code == status
    assert response.headers.get_list(HEADER) == [given]


@pytest.mark.parametrize(("method", "path", "body", "status"), ANSWERS)
@pytest.mark.parametrize(
    "given",
    [None, "", "has space", "tab\tin", "x" * 129, b"\xe9", "<script>", "a,b", "a/b"],
    ids=["none", "empty", "space", "tab", "too-long", "non-ascii", "markup", "list", "slash"],
)
def test_a_missing_or_invalid_id_is_replaced_by_a_new_one_never_echoed(
    client: TestClient,
    method: str,
    path: str,
    body: bytes | None,
    status: int,
    given: str | bytes | None,
) -> None:
    value = given.encode() if isinstance(given, str) else given
    headers = [] if value is None else [(HEADER.encode(), value)]
    response = client.request(method, path, content=body, headers=headers)
    assert response.status_code == status
    (answered,) = response.headers.get_list(HEADER)
    assert GENERATED.fullmatch(answered)
    assert answered != given


def test_two_requests_without_an_id_get_two_ids(client: TestClient) -> None:
    first, second = (client.get("/health").headers[HEADER] for _ in range(2))
    assert first != second


def test_the_lines_logged_for_a_request_carry_its_id(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[str | None] = []

    class Ids(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(current_request_id.get())

    handler = Ids()
    logging.getLogger("{{ cookiecutter.package_name }}.tests").addHandler(handler)
    try:
        with caplog.at_level(logging.WARNING):
            response = client.get("/boom", headers={HEADER: "trace-me"})
    finally:
        logging.getLogger("{{ cookiecutter.package_name }}.tests").removeHandler(handler)
    assert response.status_code == 500
    assert seen == ["trace-me"]
