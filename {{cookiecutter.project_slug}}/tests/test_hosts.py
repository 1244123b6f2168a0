"""TRUSTED_HOSTS: the Host a request may carry (hosts.py), the guard against DNS rebinding.

HTTP through Starlette's TestClient with the Host header set, and straight
through the ASGI app for what no HTTP client library sends (no Host, two of
them, control characters). Absolute-form targets over a real uvicorn and a
raw socket, with each of its HTTP parsers. In WebSocket bakes, `test_ws.py`
tries the same hosts on handshakes and requests over a real uvicorn.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.types import Message, Scope

from {{ cookiecutter.package_name }}.hosts import REMEMBERED
from {{ cookiecutter.package_name }}.logs import JsonFormatter, TextFormatter
from {{ cookiecutter.package_name }}.main import create_app
from {{ cookiecutter.package_name }}.settings import Settings

SECRET = "a-test-secret-of-at-least-32-bytes"
# The ErrorBody of every other error (errors.py); a handshake gets the text alone.
REFUSAL = b'{"detail":"untrusted Host header"}'

# Every way a client may write a loopback name that development trusts.
LOOPBACK_HOSTS = [
    "localhost",
    "localhost:8000",
    "LOCALHOST",
    "LocalHost:80",
    "localhost.",
    "localhost.:8000",
    "127.0.0.1",
    "127.0.0.1:8000",
    "[::1]",
    "[::1]:8000",
    "[0:0:0:0:0:0:0:1]:8000",
]
# Hosts that are not loopback names, or no host at all.
FOREIGN_HOSTS = [
    "attacker.example:8000",
    "attacker.example",
    "localhost.attacker.example",
    "127.0.0.1.nip.io:8000",
    "evil.com@localhost",
    "localhost@evil.com",
    "localhost:abc",
    "localhost:",
    "localhost:99999",
    "localhost/x",
    "localhost..",
    ".localhost",
    "local host",
    "[::1",
    "::1",
    "[::2]:8000",
    "[::ffff:127.0.0.1]",
    "[127.0.0.1]",
    "127.1",
    "0.0.0.0",
    "",
]


@pytest.fixture
def defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """No TRUSTED_HOSTS: the environment's default applies (conftest sets one for TestClient)."""
    monkeypatch.delenv("TRUSTED_HOSTS", raising=False)
    monkeypatch.chdir(Path(__file__).parent)  # no developer's .env for get_settings


@pytest.fixture(scope="module")
def development() -> Iterator[TestClient]:
    """A client of an app on the development defaults (TRUSTED_HOSTS None: unset, whatever
    the environment says); its own requests say `Host: localhost`."""
    app = create_app(Settings(_env_file=None, trusted_hosts=None))
    with TestClient(app, base_url="http://localhost") as client:
        yield client


@pytest.fixture(scope="module")
def operator_set() -> Iterator[TestClient]:
    """A client of a production app whose operator set TRUSTED_HOSTS."""
    settings = production(trusted_hosts=["rt.example.com", "*.example.org", "2001:db8::1"])
    with TestClient(create_app(settings)) as client:
        yield client


def production(**settings: Any) -> Settings:
    return Settings(_env_file=None, environment="production", auth_secret=SECRET, **settings)


async def asgi_status(app: FastAPI, headers: list[tuple[bytes, bytes]]) -> tuple[int, bytes]:
    """The status and body of `GET /health` with exactly these headers, as a server hands them
    to the app (an HTTP/1.0 request may have no Host)."""
    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.0",
        "method": "GET",
        "scheme": "http",
        "path": "/health",
        "raw_path": b"/health",
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], body


# --- Development: the loopback names only ---------------------------------------


@pytest.mark.parametrize("host", LOOPBACK_HOSTS)
def test_development_answers_a_loopback_host_however_written(
    development: TestClient, host: str
) -> None:
    response = development.get("/health", headers={"host": host})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("host", FOREIGN_HOSTS)
def test_development_refuses_any_other_host_with_400_logged_once(
    development: TestClient, host: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        response = development.get("/health", headers={"host": host})
    assert response.status_code == 400
    assert response.content == REFUSAL
    assert response.headers["content-type"] == "application/json"
    assert [m for m in caplog.messages if "TRUSTED_HOSTS" in m] == [
        f"refused GET '/health': Host {host!r} is not in TRUSTED_HOSTS"
        " ['localhost', '127.0.0.1', '::1']"
    ]
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_every_answer_is_the_same_the_second_time_and_past_what_is_remembered(
    development: TestClient,
) -> None:
    # hosts.py remembers the Host headers it found trusted: that must change no answer.
    ports = [f"localhost:{port}" for port in range(8000, 8000 + REMEMBERED + 10)]
    for host in [*LOOPBACK_HOSTS, *FOREIGN_HOSTS, *ports, *LOOPBACK_HOSTS, *FOREIGN_HOSTS]:
        status = development.get("/health", headers={"host": host}).status_code
        assert status == (400 if host in FOREIGN_HOSTS else 200), host


def test_dns_rebinding_is_refused_on_every_route(development: TestClient) -> None:
    # A page of attacker.example, the name now resolving to 127.0.0.1: to the
    # browser, and to an Origin check against Host, a same-origin request.
    attack = {"host": "attacker.example:8000", "origin": "http://attacker.example:8000"}
    schema = development.get("/openapi.json").json()
    routes = [
        (method, path.replace("{", "").replace("}", ""))
        for path, operations in schema["paths"].items()
        for method in operations
    ]
    routes += [("get", "/openapi.json"), ("get", "/docs"), ("get", "/"), ("head", "/health")]
    assert ("get", "/health") in routes
    for method, path in routes:
        response = development.request(method, path, headers=attack, json={})
        refusal = b"" if method == "head" else REFUSAL
        assert (response.status_code, response.content) == (400, refusal), (method, path)
        # The same request to a trusted name gets past the check to the route.
        same = development.request(method, path, headers={**attack, "host": "localhost:8000"})
        assert same.content != REFUSAL, (method, path)


@pytest.mark.anyio
@pytest.mark.parametrize(
    "headers",
    [[], [(b"host", b"localhost"), (b"host", b"localhost")], [(b"host", b"localhost\x00")]],
    ids=["no-host", "two-hosts", "nul"],
)
async def test_development_refuses_a_request_without_exactly_one_valid_host(
    defaults: None, headers: list[tuple[bytes, bytes]]
) -> None:
    app = create_app(Settings(_env_file=None))
    assert await asgi_status(app, headers) == (400, REFUSAL)
    assert await asgi_status(app, [(b"host", b"localhost")]) == (200, b'{"status":"ok"}')


@pytest.mark.anyio
async def test_a_refusal_log_line_escapes_and_shortens_what_the_client_sent(
    defaults: None, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(Settings(_env_file=None))
    with caplog.at_level(logging.INFO):
        await asgi_status(app, [(b"host", b"evil\x1b[2J\r\nFAKE LOG LINE\x85" + b"x" * 500)])
        await asgi_status(app, [])
        await asgi_status(app, [(b"host", b"localhost"), (b"host", b"evil")])
    lines = [m for m in caplog.messages if "TRUSTED_HOSTS" in m]
    assert len(lines) == 3, lines
    assert all(line.isprintable() for line in lines), lines
    assert lines[0].startswith(r"refused GET '/health': Host 'evil\x1b[2J\r\nFAKE LOG LINE\x85xx")
    assert len(lines[0]) < 200
    assert lines[1].startswith("refused GET '/health': no Host header")
    assert lines[2].startswith("refused GET '/health': 2 Host headers")


# --- Production, and hosts an operator sets ---------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("host", ["attacker.example:8000", "rt.example.com", "10.0.0.7:8000"])
async def test_production_answers_any_host_unless_told_otherwise(defaults: None, host: str) -> None:
    app = create_app(production())
    with TestClient(app) as client:
        assert client.get("/health", headers={"host": host}).status_code == 200
    assert (await asgi_status(app, []))[0] == 200, "no Host at all: nothing to check"


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("rt.example.com", 200),
        ("RT.Example.COM:443", 200),
        ("rt.example.com.", 200),
        ("a.example.org", 200),
        ("a.b.example.org:8443", 200),
        ("[2001:db8::1]:8000", 200),
        ("example.org", 400),
        ("evil-example.org", 400),
        ("a.example.org.evil", 400),
        ("rt.example.com.evil", 400),
        ("www.rt.example.com", 400),
        ("a/b.example.org", 400),
        ("a@b.example.org", 400),
        ("127.0.0.1:8000", 400),
        ("localhost", 400),
    ],
)
def test_production_answers_only_the_hosts_set_with_wildcards_below_a_domain(
    operator_set: TestClient, host: str, status: int
) -> None:
    assert operator_set.get("/health", headers={"host": host}).status_code == status


@pytest.mark.parametrize("written", ["*", "rt.example.com,*", '["*"]'])
def test_a_star_among_the_hosts_answers_any_host(
    defaults: None, monkeypatch: pytest.MonkeyPatch, written: str
) -> None:
    monkeypatch.setenv("TRUSTED_HOSTS", written)
    with TestClient(create_app(Settings(_env_file=None))) as client:
        assert client.get("/health", headers={"host": "attacker.example"}).status_code == 200


# --- Absolute-form targets: the host is the target's (RFC 9112 section 3.2.2) --------

# Each names an untrusted host in its target; every request says `Host: 127.0.0.1`.
UNTRUSTED_TARGETS = [
    "http://evil.example/health",
    "http://evil.example:8000/health",
    "HTTP://EVIL.EXAMPLE/health",
    "https://evil.example/health?x=1",
    "ws://evil.example/health",
    "http://evil.example",
    "http://127.0.0.1@evil.example/health",
    "http://evil.example@127.0.0.1/health",
    "http:///health",
]
# Each names a trusted host in its target, whatever the Host header says.
TRUSTED_TARGETS = [
    ("http://127.0.0.1/health", "127.0.0.1"),
    ("http://127.0.0.1:8000/health?x=1", "127.0.0.1"),
    ("http://127.0.0.1/health", "evil.example"),
]


@pytest.fixture(params=["python-m", "h11"])
def http(request: pytest.FixtureRequest, uvicorn_options: Callable[..., dict[str, Any]]) -> Any:
    """uvicorn's `http` option: what `python -m` passes (the httptools parser), or h11."""
    return uvicorn_options()["http"] if request.param == "python-m" else request.param


@asynccontextmanager
async def served(app: FastAPI, http: Any, root_path: str = "") -> AsyncIterator[int]:
    """`app` under a real uvicorn in this event loop, on a loopback port (yielded) that
    listens before uvicorn starts, so that a client can connect at once."""
    listening = socket.create_server(("127.0.0.1", 0))
    config = uvicorn.Config(app, http=http, root_path=root_path, log_config=None)
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[listening]))
    try:
        yield listening.getsockname()[1]
    finally:
        server.should_exit = True
        async with asyncio.timeout(10):
            await serving
        listening.close()


def exchange(port: int, target: str, host: str) -> bytes:
    """The status line of `GET target`, sent over a raw socket with this Host."""
    request = f"GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request.encode())
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer.partition(b"\r\n")[0]


@pytest.mark.anyio
async def test_an_absolute_form_target_naming_an_untrusted_host_is_refused(
    http: Any, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(Settings(_env_file=None, trusted_hosts=["127.0.0.1"]))
    with caplog.at_level(logging.INFO):
        async with served(app, http) as port:
            for target in UNTRUSTED_TARGETS:
                status = await asyncio.to_thread(exchange, port, target, "127.0.0.1")
                assert status == b"HTTP/1.1 400 Bad Request", (target, status)
            # An origin-form request from the same client is answered.
            status = await asyncio.to_thread(exchange, port, "/health", "127.0.0.1")
            assert status == b"HTTP/1.1 200 OK"
    # Logged with the host the target names (uvicorn's httptools refuses `http:///health` itself).
    refusals = [m for m in caplog.messages if "TRUSTED_HOSTS" in m]
    assert "'evil.example' is not in TRUSTED_HOSTS" in refusals[0], refusals


@pytest.mark.anyio
async def test_a_refusal_log_line_never_carries_a_password_the_client_sent(
    http: Any, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(Settings(_env_file=None, trusted_hosts=["127.0.0.1"]))
    with caplog.at_level(logging.INFO):
        async with served(app, http) as port:
            for target, host in [
                ("http://alice:hunter2@127.0.0.1/health", "127.0.0.1"),
                ("/health", "alice:hunter2@127.0.0.1"),
            ]:
                status = await asyncio.to_thread(exchange, port, target, host)
                assert status == b"HTTP/1.1 400 Bad Request", (target, status)
    refusals = [m for m in caplog.messages if "TRUSTED_HOSTS" in m]
    assert len(refusals) == 2, refusals
    assert all("'alice:***@127.0.0.1' is not in TRUSTED_HOSTS" in m for m in refusals), refusals
    # The target itself, whole in h11's path, is masked by the formatters every line
    # passes (logs.py, redaction.py): as the service writes them, no line has it.
    text = TextFormatter("%(levelprefix)s %(message)s", use_colors=False)
    written = [
        formatter.format(line)
        for line in caplog.records
        if "TRUSTED_HOSTS" in line.getMessage()
        for formatter in (text, JsonFormatter())
    ]
    assert len(written) == 4, written
    assert not [line for line in written if "hunter2" in line], written


@pytest.mark.anyio
async def test_an_absolute_form_target_is_refused_behind_a_root_path(http: Any) -> None:
    # uvicorn puts ROOT_PATH in front of the target it keeps in `raw_path`.
    app = create_app(Settings(_env_file=None, trusted_hosts=["127.0.0.1"], root_path="/realtime"))
    async with served(app, http, root_path="/realtime") as port:
        status = await asyncio.to_thread(exchange, port, "http://evil.example/health", "127.0.0.1")
        assert status == b"HTTP/1.1 400 Bad Request"
        assert await asyncio.to_thread(exchange, port, "/health", "127.0.0.1") == b"HTTP/1.1 200 OK"


@pytest.mark.anyio
@pytest.mark.parametrize(("target", "host"), TRUSTED_TARGETS)
async def test_an_absolute_form_target_naming_a_trusted_host_is_not_refused(
    http: Any, target: str, host: str
) -> None:
    # Served with the httptools parser; h11's uvicorn routes on the whole target (a 404).
    app = create_app(Settings(_env_file=None, trusted_hosts=["127.0.0.1"]))
    async with served(app, http) as port:
        status = await asyncio.to_thread(exchange, port, target, host)
    assert status in (b"HTTP/1.1 200 OK", b"HTTP/1.1 404 Not Found"), status
    assert (status == b"HTTP/1.1 200 OK") == (http != "h11"), status


# --- The setting ------------------------------------------------------------------


def test_the_default_is_the_loopback_names_in_development_and_any_host_in_production(
    defaults: None,
) -> None:
    assert Settings(_env_file=None).hosts == ["localhost", "127.0.0.1", "::1"]
    assert production().hosts == ["*"]
    assert production(trusted_hosts=["rt.example.com"]).hosts == ["rt.example.com"]
    assert Settings(_env_file=None, trusted_hosts=["x.example"]).hosts == ["x.example"]


@pytest.mark.parametrize(
    ("written", "meant"),
    [
        ('["rt.example.com", "*.example.org"]', ["rt.example.com", "*.example.org"]),
        ("rt.example.com", ["rt.example.com"]),
        ("rt.example.com, *.example.org ,::1", ["rt.example.com", "*.example.org", "::1"]),
        ("RT.Example.com.,[::1],0:0::1", ["rt.example.com", "::1", "::1"]),
    ],
    ids=["json", "single", "commas", "normalised"],
)
def test_trusted_hosts_reads_json_a_single_value_or_commas(
    defaults: None, monkeypatch: pytest.MonkeyPatch, written: str, meant: list[str]
) -> None:
    monkeypatch.setenv("TRUSTED_HOSTS", written)
    assert Settings(_env_file=None).hosts == meant


@pytest.mark.parametrize(
    "written",
    [
        "http://rt.example.com",
        "rt.example.com:443",
        "rt.example.com/",
        "a b",
        "*example.com",
        "*.",
        "a.*.example.com",
        ".example.com",
        "[::1",
        "[127.0.0.1]",
        "exämple.com",
        "rt.example.com,https://x",
        "[]",
        ",",
        "[not json",
    ],
)
def test_a_bad_trusted_hosts_stops_the_process_with_one_line_naming_it(
    defaults: None, refusal: Callable[[str, str], str], written: str
) -> None:
    refusal("TRUSTED_HOSTS", written)
