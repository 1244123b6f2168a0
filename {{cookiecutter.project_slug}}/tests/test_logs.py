"""Log lines under every way of serving: `python -m`, plain `uvicorn`, `fastapi run`.

Each way is started once per format and level this module asks about, driven
through the same requests, and stopped; the tests read what it wrote.
"""

from __future__ import annotations

import inspect
import json
import logging
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

import {{ cookiecutter.package_name }} as package
from {{ cookiecutter.package_name }}.logs import JsonFormatter, TextFormatter
from {{ cookiecutter.package_name }}.request_ids import current_request_id
from {{ cookiecutter.package_name }}.settings import Settings

from .processes import WAIT, child_with_stdout, environment, exchange, free_port, until

PACKAGE = package.__name__
FIELDS = {"time", "level", "logger", "message"}
# Control characters no line may carry raw: C0 but tab, DEL, C1, U+2028 and U+2029.
RAW_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")
HOSTILE = "\r\nINFO:     forged\x1b[31m\x7f\u2028"
# What the service must never write, whatever a client sends.
TOKEN = "eyJhbGciOiJIUzI1NiJ9.c2VjcmV0LXRva2Vu.c2lnbmF0dXJl"
# The project's own, naming the app `fastapi run` serves ([tool.fastapi]).
PYPROJECT = Path(inspect.getfile(package)).parents[2] / "pyproject.toml"


def python(tmp_path: Path, code: str) -> list[str]:
    """The lines `python -c code` writes to stderr."""
    finished = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=True,
    )
    return finished.stderr.splitlines()


def test_under_uvicorns_logging_the_package_writes_to_its_handlers_at_the_level_asked(
    tmp_path: Path,
) -> None:
    code = f"""if True:
        import logging, logging.config
        from uvicorn.config import LOGGING_CONFIG
        from {PACKAGE}.logs import configure_logging
        configure_logging("info", json=False)  # a script, a test: uvicorn configured nothing
        package = logging.getLogger("{PACKAGE}")
        assert (package.handlers, package.level, package.propagate) == ([], 0, True)
        logging.config.dictConfig(LOGGING_CONFIG)  # as `uvicorn <package>.main:app` does
        configure_logging("warning", json=False)
        configure_logging("debug", json=True)  # configured already: nothing changes
        logging.getLogger("{PACKAGE}.somewhere").info("not shown")
        logging.getLogger("{PACKAGE}.somewhere").warning("shown")
    """
    assert python(tmp_path, code) == ["WARNING:  shown"]


def test_logging_a_team_configured_is_left_alone(tmp_path: Path) -> None:
    code = f"""if True:
        import logging, logging.config
        from uvicorn.config import LOGGING_CONFIG
        from {PACKAGE}.logs import configure_logging
        logging.config.dictConfig(LOGGING_CONFIG)
        logging.basicConfig(format="team %(message)s", level="INFO")
        configure_logging("info", json=True)
        logging.getLogger("{PACKAGE}.somewhere").info("theirs")
    """
    assert python(tmp_path, code) == ["team theirs"]


def record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    """A record as `logging.getLogger(PACKAGE).warning(message, *args, extra=extra)` makes."""
    made = logging.LogRecord(PACKAGE, logging.WARNING, __file__, 1, message, args, None)
    made.__dict__.update(extra)
    return made


def test_text_lines_escape_every_control_character_a_client_could_send() -> None:
    line = TextFormatter("%(levelprefix)s %(message)s", use_colors=False).format(
        record("refused %s", HOSTILE, channel=HOSTILE)
    )
    assert not RAW_CONTROL.search(line), repr(line)
    assert line.startswith("WARNING:  refused \\r\\nINFO:     forged\\x1b[31m\\x7f\\u2028"), line


def test_a_traceback_in_text_is_indented_below_its_line() -> None:
    try:
        raise ValueError(HOSTILE)
    except ValueError:
        failed = record("job failed")
        failed.exc_info = sys.exc_info()
    formatter = TextFormatter("%(levelprefix)s %(message)s", use_colors=False)
    lines = formatter.format(failed).splitlines()
    assert lines[0] == "WARNING:  job failed", lines
    assert all(line.startswith("    ") for line in lines[1:]), lines
    assert "\x1b" not in "\n".join(lines)


def test_a_json_line_is_one_object_with_the_context_and_its_traceback() -> None:
    token = current_request_id.set("abc-123")
    try:
        raise ValueError(HOSTILE)
    except ValueError:
        failed = record("client %s failed", HOSTILE, client_id="c1", channel="chat")
        failed.exc_info = sys.exc_info()
    finally:
        current_request_id.reset(token)
    line = JsonFormatter().format(failed)
    assert not RAW_CONTROL.search(line), repr(line)
    fields = json.loads(line)
    assert (fields["level"], fields["logger"]) == ("WARNING", PACKAGE)
    assert fields["message"] == f"client {HOSTILE} failed"
    assert (fields["client_id"], fields["channel"]) == ("c1", "chat")
    assert "ValueError" in fields["traceback"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", fields["time"])


def test_either_format_writes_a_urls_password_as_stars() -> None:
    url = "redis://worker:hunter2@redis.internal:6379/0"
    failed = record("cannot reach %s", url)
    text = TextFormatter("%(levelprefix)s %(message)s", use_colors=False).format(failed)
    assert text == "WARNING:  cannot reach redis://worker:***@redis.internal:6379/0"
    fields = json.loads(JsonFormatter().format(failed))
    assert fields["message"] == "cannot reach redis://worker:***@redis.internal:6379/0"


# --- Real processes -------------------------------------------------------------


@dataclass
class Transcript:
    """What one process wrote (stdout and stderr), and the responses it gave."""

    lines: list[str]
    responses: dict[str, bytes]


def command(way: str, port: int) -> list[str]:
    """The arguments of `python` that serve the app the way users do."""
    where = ["--host", "127.0.0.1", "--port", str(port)]
    if way == "uvicorn":
        return ["-m", "uvicorn", f"{PACKAGE}.main:app", *where]
    if way == "fastapi run":
        # As users run it: the app is the one pyproject.toml names (see `transcripts`).
        return ["-m", "fastapi", "run", *where]
    return ["-m", PACKAGE]


def request(path: str, *headers: str) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", *headers, "Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


# Each request the test sends, by name: what it is, then the requests themselves.
REQUESTS = {
    "kept": request("/health", "X-Request-ID: kept-id:1.2_3"),
    "hostile id": request("/health", "X-Request-ID: a b<script>"),
    "long id": request("/health", "X-Request-ID: " + "a" * 129),
    # A raw control character in a header: uvicorn refuses it and logs a WARNING.
    "invalid": request("/health", "X-Request-ID: a\x1b[31m"),
    "refused host": request("/health", "X-Request-ID: refused-host-id").replace(
        b"Host: 127.0.0.1", b"Host: evil.example"
    ),
    "not found": request("/nowhere%0aINFO:%20forged%1b[31m?x=%0a", "X-Request-ID: nf-id"),
    "token in query": request(f"/health?access_token={TOKEN}&page=2"),
    "jwt in query": request(f"/health?page=2&jwt={TOKEN}"),
    # uvicorn logs a handshake's path and query on its error logger, not its access log.
    "token in a handshake's query": request(
        f"/nowhere?token={TOKEN}",
        "Upgrade: websocket",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version: 13",
    ).replace(b"Connection: close", b"Connection: Upgrade"),
    "bad token": request("/channels/chat/messages", f"Authorization: Bearer {TOKEN}"),
}


# A collector URL FastAPI cannot set traces up with: it logs a WARNING on its own logger,
# which has no handler of its own (see test_another_librarys_warning_is_one_json_object_too).
BAD_OTLP_ENDPOINT = "no-url"


async def serve(tmp_path: Path, way: str, log_format: str, level: str) -> Transcript:
    port = free_port()
    responses: dict[str, bytes] = {}
    variables = {"LOG_FORMAT": log_format, "LOG_LEVEL": level, "TRUSTED_HOSTS": "127.0.0.1"}
    if (log_format, level) == ("json", "info"):
        variables["OTEL_EXPORTER_OTLP_ENDPOINT"] = BAD_OTLP_ENDPOINT
    if way == "python -m":
        variables["PORT"] = str(port)
    async with child_with_stdout(tmp_path, *command(way, port), **variables) as served:

        async def listening() -> bool:
            try:
                await exchange(port, request("/health"))
            except OSError:
                return False
            return True

        await until(listening)
        for name, sent in REQUESTS.items():
            responses[name] = await exchange(port, sent)
        await served.stop()
    return Transcript(served.lines, responses)


WAYS = ["python -m", "uvicorn", "fastapi run"]
RUNS = [(way, "json", level) for way in WAYS for level in ("info", "warning")] + [
    ("uvicorn", "text", "info"),
    ("python -m", "text", "info"),
]


@pytest.fixture(scope="module")
async def transcripts(
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[tuple[str, str, str], Transcript]:
    """Every run of RUNS, each started once for the whole module."""
    folder = tmp_path_factory.mktemp("logs")
    # The project's pyproject.toml, which `fastapi run` reads, in a folder with no `.env`.
    shutil.copy(PYPROJECT, folder)
    return {run: await serve(folder, *run) for run in RUNS}


def log_lines(way: str, lines: list[str]) -> list[str]:
    """The lines that are log lines: under `fastapi run`, those after its banner."""
    if way != "fastapi run":
        return lines
    [start] = [i for i, line in enumerate(lines) if line.strip() == "Logs:"]
    return lines[start + 1 :]


def objects(way: str, lines: list[str]) -> list[dict[str, object]]:
    """Each log line as the JSON object it must be."""
    parsed = []
    for line in log_lines(way, lines):
        if not line.strip():
            continue
        fields = json.loads(line)
        assert isinstance(fields, dict), line
        assert fields.keys() >= FIELDS, line
        parsed.append(fields)
    return parsed


@pytest.mark.anyio
@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize("level", ["info", "warning"])
async def test_in_json_every_line_is_one_object_with_time_level_logger_message(
    transcripts: dict[tuple[str, str, str], Transcript], way: str, level: str
) -> None:
    lines = transcripts[way, "json", level].lines
    assert objects(way, lines), lines


@pytest.mark.anyio
@pytest.mark.parametrize("way", WAYS)
async def test_a_requests_access_line_and_the_apps_line_carry_its_id(
    transcripts: dict[tuple[str, str, str], Transcript], way: str
) -> None:
    found = objects(way, transcripts[way, "json", "info"].lines)
    kept = [line for line in found if line.get("request_id") == "kept-id:1.2_3"]
    assert [line["logger"] for line in kept] == ["uvicorn.access"], found
    assert (kept[0]["status"], kept[0]["path"]) == (200, "/health")
    refused = [line for line in found if line.get("request_id") == "refused-host-id"]
    assert {line["logger"] for line in refused} == {f"{PACKAGE}.hosts", "uvicorn.access"}, found


@pytest.mark.anyio
@pytest.mark.parametrize("way", WAYS)
async def test_log_level_filters_the_same_way_however_it_is_served(
    transcripts: dict[tuple[str, str, str], Transcript], way: str
) -> None:
    info = objects(way, transcripts[way, "json", "info"].lines)
    warning = objects(way, transcripts[way, "json", "warning"].lines)
    assert {line["level"] for line in info} == {"INFO", "WARNING"}, info
    assert {line["level"] for line in warning} == {"WARNING"}, warning
    assert any("authentication is OFF" in str(line["message"]) for line in warning)


@pytest.mark.anyio
@pytest.mark.parametrize("run", RUNS, ids=" ".join)
async def test_every_response_carries_its_request_id_and_a_hostile_one_is_replaced(
    transcripts: dict[tuple[str, str, str], Transcript], run: tuple[str, str, str]
) -> None:
    responses = transcripts[run].responses
    assert b"\r\nx-request-id: kept-id:1.2_3\r\n" in responses["kept"]
    assert b"\r\nx-request-id: refused-host-id\r\n" in responses["refused host"]
    assert responses["refused host"].startswith(b"HTTP/1.1 400 ")
    assert b"\r\nx-request-id: nf-id\r\n" in responses["not found"]
    for replaced in ("hostile id", "long id"):
        generated = re.search(rb"\r\nx-request-id: [0-9a-f]{32}\r\n", responses[replaced])
        assert generated is not None, responses[replaced]


@pytest.mark.anyio
@pytest.mark.parametrize("run", RUNS, ids=" ".join)
async def test_no_line_carries_a_raw_control_character_or_a_secret(
    transcripts: dict[tuple[str, str, str], Transcript], run: tuple[str, str, str]
) -> None:
    lines = log_lines(run[0], transcripts[run].lines)
    for line in lines:
        assert not RAW_CONTROL.search(line), repr(line)
        assert TOKEN not in line, line
        # Nothing a client sent starts a line of its own (HOSTILE's forged "INFO:").
        assert not re.match(r"\s*INFO:\s+forged", line), line


@pytest.mark.anyio
@pytest.mark.parametrize("way", WAYS)
async def test_another_librarys_warning_is_one_json_object_too(
    transcripts: dict[tuple[str, str, str], Transcript], way: str
) -> None:
    """A library's logger with no handler of its own (here FastAPI's, whose telemetry
    cannot be set up from BAD_OTLP_ENDPOINT) writes in the chosen format, not in Python's
    bare last-resort one."""
    found = objects(way, transcripts[way, "json", "info"].lines)
    assert [line["level"] for line in found if line["logger"] == "fastapi"] == ["WARNING"], found


@pytest.mark.anyio
async def test_text_lines_carry_the_request_id_at_the_end(
    transcripts: dict[tuple[str, str, str], Transcript],
) -> None:
    for way in ("uvicorn", "python -m"):
        lines = transcripts[way, "text", "info"].lines
        access = [line for line in lines if "[request_id=kept-id:1.2_3]" in line]
        assert len(access) == 1, lines
        assert '"GET /health HTTP/1.1" 200' in access[0], lines
        refused = [line for line in lines if "[request_id=refused-host-id]" in line]
        assert refused[0].startswith("INFO:     refused GET '/health': "), lines


def test_log_format_defaults_to_json_in_production_and_text_in_development() -> None:
    secret = "a-test-secret-of-at-least-32-bytes"
    assert Settings(_env_file=None, environment="production", auth_secret=secret).json_logs
    assert not Settings(_env_file=None, environment="development").json_logs
    text = Settings(_env_file=None, environment="production", auth_secret=secret, log_format="TEXT")
    assert not text.json_logs


def test_a_bad_log_format_is_one_line_naming_it(refusal: Callable[[str, str], str]) -> None:
    assert refusal("LOG_FORMAT", "xml").startswith("error: LOG_FORMAT: ")
