"""Log lines under every way of serving: `python -m`, plain `uvicorn`, `fastapi run`."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import {{ cookiecutter.package_name }} as package
from {{ cookiecutter.package_name }}.settings import Settings

# Seconds a process may take to start, answer, or stop.
WAIT = 30.0
PACKAGE = package.__name__


def environment(**variables: str) -> dict[str, str]:
    """This environment with none of the service's variables but `variables`, and the
    package importable."""
    source = str(Path(inspect.getfile(package)).parent.parent)
    ours = set(map(str.upper, Settings.model_fields))
    env = {name: value for name, value in os.environ.items() if name not in ours}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (source, os.environ.get("PYTHONPATH"))))
    env["PYTHONUNBUFFERED"] = "1"
    return {**env, **variables}


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


def test_unconfigured_logging_gets_uvicorns_format_at_the_level_asked_for_once(
    tmp_path: Path,
) -> None:
    code = f"""if True:
        import logging
        from {PACKAGE}.logs import configure_logging
        configure_logging("warning")
        configure_logging("debug")  # configured already: nothing changes
        logging.getLogger("{PACKAGE}.somewhere").info("not shown")
        logging.getLogger("{PACKAGE}.somewhere").warning("shown")
    """
    assert python(tmp_path, code) == ["WARNING:  shown"]


def test_logging_configured_as_python_m_does_is_left_alone(tmp_path: Path) -> None:
    code = f"""if True:
        import logging, logging.config
        from {PACKAGE}.__main__ import logging_config
        from {PACKAGE}.logs import configure_logging
        logging.config.dictConfig(logging_config("info"))
        configure_logging("info")
        logging.getLogger("{PACKAGE}.somewhere").info("once")
    """
    assert python(tmp_path, code) == ["INFO:     once"]


def test_logging_a_team_configured_is_left_alone(tmp_path: Path) -> None:
    code = f"""if True:
        import logging
        from {PACKAGE}.logs import configure_logging
        logging.basicConfig(format="team %(message)s", level="INFO")
        configure_logging("info")
        logging.getLogger("{PACKAGE}.somewhere").info("theirs")
    """
    assert python(tmp_path, code) == ["team theirs"]


@pytest.mark.anyio
async def test_under_plain_uvicorn_the_packages_lines_are_logged_in_uvicorns_format(
    tmp_path: Path,
) -> None:
    # `uvicorn <package>.main:app`, which the README offers beside `python -m`,
    # configures only uvicorn's loggers: a refusal's cause was lost, a WARNING bare.
    command = ["-m", "uvicorn", f"{PACKAGE}.main:app", "--host", "127.0.0.1", "--port", "0"]
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *command,
        cwd=tmp_path,
        env=environment(TRUSTED_HOSTS="127.0.0.1"),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    lines: list[str] = []
    found: re.Match[str] | None = None
    try:
        async with asyncio.timeout(WAIT):
            while line := (await process.stderr.readline()).decode():
                lines.append(line.rstrip())
                if found := re.search(r"Uvicorn running on http://127\.0\.0\.1:(\d+)", line):
                    break
            assert found, "\n".join(lines)
            reader, writer = await asyncio.open_connection("127.0.0.1", int(found[1]))
            writer.write(b"GET /health HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n")
            assert (await reader.read()).startswith(b"HTTP/1.1 400 ")
            writer.close()
            process.send_signal(signal.SIGTERM)
            lines += (await process.stderr.read()).decode().splitlines()
            await process.wait()
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
    warned = [line for line in lines if "authentication is OFF" in line]
    assert len(warned) == 1, "\n".join(lines)
    assert warned[0].startswith("WARNING:  "), warned[0]
    refused = [line for line in lines if "'evil.example' is not in TRUSTED_HOSTS" in line]
    assert len(refused) == 1, "\n".join(lines)
    assert refused[0].startswith("INFO:     refused GET '/health': "), refused[0]
