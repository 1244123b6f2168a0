"""This package's log lines under any way of serving: written where uvicorn writes its own.

`python -m {{ cookiecutter.package_name }}` hands uvicorn a logging configuration that
includes this package's loggers (`__main__.logging_config`). `uvicorn
{{ cookiecutter.package_name }}.main:app` and `fastapi run` configure only uvicorn's
loggers, before they import the app: without this, the package's INFO lines (why a
request or a handshake was refused, startup and shutdown) would be dropped, and its
WARNINGs written bare by logging's last-resort handler.
"""

from __future__ import annotations

import logging

from .settings import LogLevel


def configure_logging(level: LogLevel) -> None:
    """Give this package's loggers the handlers of uvicorn's own, at `level`.

    Only when uvicorn's loggers have handlers (it configured logging before it
    imported the app) and neither this package's logger nor the root logger has
    any: `python -m`, a team's own configuration, and pytest are left alone.
    Calling it again does nothing.
    """
    package = logging.getLogger(__package__)
    if package.handlers or logging.getLogger().handlers:
        return
    # "uvicorn" under uvicorn's and fastapi-cli's configurations; "uvicorn.error"
    # under gunicorn's UvicornWorker, which hands it gunicorn's error log handlers.
    uvicorn_handlers = (
        logging.getLogger("uvicorn").handlers or logging.getLogger("uvicorn.error").handlers
    )
    for handler in uvicorn_handlers:
        package.addHandler(handler)
    if uvicorn_handlers:
        # uvicorn's "trace" is below DEBUG; this package logs nothing finer than DEBUG.
        package.setLevel("DEBUG" if level == "trace" else level.upper())
        # As uvicorn's own logger and `python -m`: each line is written here, once.
        package.propagate = False
