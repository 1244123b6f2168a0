"""Entry point of `python -m`: serve the app with uvicorn, configured by the settings."""

from __future__ import annotations

import copy
import math
from typing import Any

import uvicorn
from uvicorn.config import LOGGING_CONFIG

from .settings import LogLevel, get_settings


def logging_config(level: LogLevel) -> dict[str, Any]:
    """uvicorn's logging setup, plus this package's loggers on the same handler."""
    config: dict[str, Any] = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"][__package__] = {
        "handlers": ["default"],
        "level": "DEBUG" if level == "trace" else level.upper(),
        "propagate": False,
    }
    return config


def main() -> None:
    settings = get_settings()
    uvicorn.run(
        f"{__package__}.main:app",
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level=settings.log_level,
        log_config=logging_config(settings.log_level),
        # Without a bound, one client that stops reading holds shutdown open.
        timeout_graceful_shutdown=math.ceil(settings.shutdown_timeout),
{%- if cookiecutter.use_websockets %}
        # The app enforces the size too; this lets uvicorn refuse a larger frame
        # before reading it whole.
        ws_max_size=settings.ws_max_message_size,
        ws_per_message_deflate=settings.ws_per_message_deflate,
{%- endif %}
    )


if __name__ == "__main__":
    main()
