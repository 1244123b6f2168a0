"""Log lines under every way of serving: `python -m`, plain `uvicorn`, `fastapi run`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import {{ cookiecutter.package_name }} as package

from .processes import WAIT, child, environment, exchange

PACKAGE = package.__name__


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
        configure_logging("info")  # a script, a test: uvicorn configured nothing, nor this
        package = logging.getLogger("{PACKAGE}")
        assert (package.handlers, package.level, package.propagate) == ([], 0, True)
        logging.config.dictConfig(LOGGING_CONFIG)  # as `uvicorn <package>.main:app` does
        configure_logging("warning")
        configure_logging("debug")  # configured already: nothing changes
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
    async with child(tmp_path, *command, TRUSTED_HOSTS="127.0.0.1") as served:
        await served.wait_listening()
        request = b"GET /health HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n"
        assert (await exchange(served.port, request)).startswith(b"HTTP/1.1 400 ")
        await served.stop()
    lines = served.lines
    warned = [line for line in lines if "authentication is OFF" in line]
    assert len(warned) == 1, "\n".join(lines)
    assert warned[0].startswith("WARNING:  "), warned[0]
    refused = [line for line in lines if "'evil.example' is not in TRUSTED_HOSTS" in line]
    assert len(refused) == 1, "\n".join(lines)
    assert refused[0].startswith("INFO:     refused GET '/health': "), refused[0]
