"""This package's log lines under any server, formatted as uvicorn formats its own.

`python -m {{ cookiecutter.package_name }}` hands uvicorn a logging configuration that
includes this package's loggers (`__main__.logging_config`). `uvicorn
{{ cookiecutter.package_name }}.main:app` and `fastapi run` configure only uvicorn's
loggers, so without this the package's INFO lines (why a request or a handshake was
refused, startup and shutdown) would be dropped, and its WARNINGs written bare by
logging's last-resort handler.
"""

from __future__ import annotations

import logging
import sys

from uvicorn.config import LOGGING_CONFIG
from uvicorn.logging import DefaultFormatter

from .settings import LogLevel


def configure_logging(level: LogLevel) -> None:
    """Write this package's log lines at `level` and above to stderr, as uvicorn writes its
    own, unless logging is configured already: this package's logger or the root logger
    has a handler (`python -m`, a team's own setup, pytest). Calling it again does nothing.
    """
    package = logging.getLogger(__package__)
    if package.handlers or logging.getLogger().handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(DefaultFormatter(LOGGING_CONFIG["formatters"]["default"]["fmt"]))
    package.addHandler(handler)
    # uvicorn's "trace" level is below DEBUG; this package logs nothing finer than DEBUG.
    package.setLevel("DEBUG" if level == "trace" else level.upper())
    # As `python -m` configures it: these lines are written here, once.
    package.propagate = False
