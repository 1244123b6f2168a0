"""Real processes for the suite: a baked service under uvicorn, polled until it answers."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

import httpx


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until_serving(process: subprocess.Popen[str], url: str, deadline: float = 30.0) -> None:
    """Wait until `url`'s port accepts a connection and `url` answers; fail if the process dies first.

    Polling is a bare TCP connect: an HTTP client per poll would cost more CPU
    than the server's own start.
    """
    address = httpx.URL(url)
    assert address.host is not None
    assert address.port is not None
    give_up = time.monotonic() + deadline
    while time.monotonic() < give_up:
        if process.poll() is not None:
            output = process.stdout.read() if process.stdout else ""
            raise AssertionError(f"server exited with {process.returncode} before serving:\n{output}")
        try:
            socket.create_connection((address.host, address.port), timeout=1.0).close()
        except OSError:
            time.sleep(0.05)  # between polls of a condition, not in place of one
            continue
        httpx.get(url, timeout=5.0)
        return
    raise AssertionError(f"{url} did not answer within {deadline}s")


def start_service(python: Path, project: Path, package: str, env: Mapping[str, str]) -> subprocess.Popen[str]:
    """`python -m <package>` in the project, stdout and stderr merged into one pipe."""
    return subprocess.Popen(
        [str(python), "-m", package],
        cwd=project,
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def stop_with_sigterm(process: subprocess.Popen[str], timeout: float = 15.0) -> str:
    """SIGTERM the process and return its output; killed if it outlives `timeout`."""
    try:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    return output
