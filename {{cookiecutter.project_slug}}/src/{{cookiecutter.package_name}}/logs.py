"""Log lines: one format (LOG_FORMAT) and level (LOG_LEVEL) however the service is started.

`text` is uvicorn's own format; `json` writes one JSON object per line
(python-json-logger) with `time`, `level`, `logger`, `message`, and the
context a line has (`request_id`, `client_id`, `channel`, `job_id`). In text
mode every control character a line would carry is escaped, so nothing a
client sent can start a line of its own or drive the terminal; JSON escapes by
encoding. In both, a URL's password is written `***` (redaction.py).

`python -m {{ cookiecutter.package_name }}` hands uvicorn `logging_config()`.
`uvicorn {{ cookiecutter.package_name }}.main:app` and `fastapi run` configure
uvicorn's loggers before they import the app, and write nothing before;
`configure_logging()` (called by `create_app`) then gives their handlers these
formatters, and this package's loggers the same handlers.
"""

from __future__ import annotations

import copy
import logging
import re
import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

import uvicorn.config
from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter as _JsonFormatter
from uvicorn.logging import AccessFormatter, DefaultFormatter

from .redaction import masked
from .request_ids import current_request_id
from .settings import LogLevel

# Record attributes a log site may pass with `extra=`, shown in text mode and
# written as keys in JSON mode; `request_id` is added to every line of a request.
CONTEXT = ("request_id", "client_id", "channel", "job_id")

# C0, DEL, C1 and the Unicode line and paragraph separators: each would end a
# line, or drive a terminal (ESC), if written as it came.
_ESCAPES = {code: f"\\x{code:02x}" for code in (*range(0x20), *range(0x7F, 0xA0))} | {
    ord("\n"): "\\n",
    ord("\r"): "\\r",
    ord("\t"): "\\t",
    0x2028: "\\u2028",
    0x2029: "\\u2029",
}
_ESCAPES_BUT_NEWLINE = {code: text for code, text in _ESCAPES.items() if code != ord("\n")}
current_job_id: ContextVar[str | None] = ContextVar("job_id", default=None)
"""The id of the job whose attempt this code runs (the worker sets it); None outside jobs."""

# Query parameters whose values never reach a log line (uvicorn's access log, and
# its line about each WebSocket handshake, write the query string as the client sent it).
_SECRET_PARAMETER = re.compile(
    r"((?:^|&)[^=&]*(?:token|jwt|secret|password|key|auth|signature|session|credential)"
    r"[^=&]*=)[^&]*",
    re.IGNORECASE,
)


def escape(text: str) -> str:
    """`text` with every control character written as an escape (`\\n`, `\\x1b`)."""
    return text.translate(_ESCAPES)


def redact_query(path: str) -> str:
    """`path` with the values of token-like query parameters replaced by `[redacted]`."""
    base, mark, query = path.partition("?")
    return base + mark + _SECRET_PARAMETER.sub(r"\1[redacted]", query) if mark else path


def _is_access(record: logging.LogRecord) -> bool:
    """Whether `record` is uvicorn's access line, its arguments (client, method, path,
    HTTP version, status) as uvicorn 0.54 passes them."""
    return (
        record.name == "uvicorn.access" and isinstance(record.args, tuple) and len(record.args) == 5
    )


def _is_handshake(record: logging.LogRecord) -> bool:
    """Whether `record` is uvicorn's line about a WebSocket handshake (`'%s - "WebSocket %s"
    [accepted]'`, `403`, `%d`): its arguments the client, the path with its query, and
    maybe the status. uvicorn writes it on its error logger, not its access log."""
    return (
        record.name == "uvicorn.error"
        and isinstance(record.msg, str)
        and record.msg.startswith('%s - "WebSocket %s"')
        and isinstance(record.args, tuple)
        and len(record.args) in (2, 3)
    )


class RequestContext(logging.Filter):
    """Adds the current request's or job's id to a record, and redacts secrets from an
    access line and a WebSocket handshake's line."""

    def filter(self, record: logging.LogRecord) -> bool:
        request_id = current_request_id.get()
        if request_id is not None and not hasattr(record, "request_id"):
            record.request_id = request_id
        # Over SAQ's own `job_id` (its namespaced Redis key): the id the API shows.
        job_id = current_job_id.get()
        if job_id is not None:
            record.job_id = job_id
        if _is_access(record):
            client, method, path, version, status = record.args  # type: ignore[misc]
            record.args = (client, method, redact_query(str(path)), version, status)
        elif _is_handshake(record):
            client, path, *status = record.args  # type: ignore[misc]
            record.args = (client, redact_query(str(path)), *status)
        return True


class TextFormatter(DefaultFormatter):
    """uvicorn's format (`INFO:     message`), escaped, with the line's context at the end;
    a traceback's lines are indented, so none can pass for a line of its own."""

    def format(self, record: logging.LogRecord) -> str:
        record = copy.copy(record)
        # uvicorn's coloured copy of its own message would take the place of the escaped one.
        record.__dict__.pop("color_message", None)
        record.msg, record.args = escape(masked(record.getMessage())) + _context(record), None
        if record.exc_info and not record.exc_text:
            record.exc_text = _indented(masked(self.formatException(record.exc_info)))
        if record.stack_info:
            record.stack_info = _indented(record.stack_info)
        return super().format(record)


class AccessTextFormatter(AccessFormatter):
    """uvicorn's access line, escaped, with the request's id at the end."""

    def format(self, record: logging.LogRecord) -> str:
        record = copy.copy(record)
        if isinstance(record.args, tuple):
            record.args = tuple(escape(arg) if isinstance(arg, str) else arg for arg in record.args)
        return super().format(record) + _context(record)


def _context(record: logging.LogRecord) -> str:
    pairs = [f"{name}={getattr(record, name)}" for name in CONTEXT if hasattr(record, name)]
    return escape(f" [{' '.join(pairs)}]") if pairs else ""


def _indented(text: str) -> str:
    return "\n".join("    " + line for line in text.translate(_ESCAPES_BUT_NEWLINE).splitlines())


class JsonFormatter(_JsonFormatter):
    """One JSON object per line: time (ISO 8601, UTC), level, logger, message, context keys,
    `traceback`; an access line also has client, method, path, http_version and status."""

    # `time`: 2025-01-31T12:00:00.123Z
    converter: Callable[[float | None], time.struct_time] = time.gmtime
    default_time_format = "%Y-%m-%dT%H:%M:%S"
    default_msec_format = "%s.%03dZ"

    def __init__(self) -> None:
        super().__init__(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={
                "asctime": "time",
                "levelname": "level",
                "name": "logger",
                "exc_info": "traceback",
                "stack_info": "stack",
            },
            # uvicorn's coloured copy of its message: terminal escapes, not data.
            reserved_attrs=[*RESERVED_ATTRS, "color_message"],
            # The default, relied on: json escapes all but printable ASCII, so no
            # control character (DEL included), C1 or U+2028/U+2029 is written raw.
            json_ensure_ascii=True,
        )

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        return {
            key: masked(value) if isinstance(value, str) else value
            for key, value in log_data.items()
        }

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        super().add_fields(log_data, record, message_dict)
        if _is_access(record):
            client, method, path, version, status = record.args  # type: ignore[misc]
            log_data.update(
                client=client, method=method, path=path, http_version=version, status=status
            )


def formatters(json: bool) -> dict[str, dict[str, Any]]:
    """dictConfig's `formatters`: "default" for every line, "access" for uvicorn's access log."""
    if json:
        return {"default": {"()": JsonFormatter}, "access": {"()": JsonFormatter}}
    return {
        "default": {"()": TextFormatter, "fmt": "%(levelprefix)s %(message)s", "use_colors": None},
        "access": {
            "()": AccessTextFormatter,
            "fmt": '%(levelprefix)s %(client_addr)s - "%(request_line)s" %(status_code)s',
        },
    }


def _level(level: LogLevel) -> str:
    # "TRACE" is uvicorn's, below DEBUG: uvicorn.config registers its name.
    return level.upper()


def _others_level(level: LogLevel) -> str:
    # Other libraries' loggers (the root's): their warnings and worse, fewer if LOG_LEVEL asks.
    return _level(level) if level in ("error", "critical") else "WARNING"


def logging_config(level: LogLevel, json: bool, *loggers: str) -> dict[str, Any]:
    """uvicorn's logging setup with these formatters; this package's loggers and `loggers`
    on the same handler, at `level`, and the root logger on it too (the lines of libraries
    with no handler of their own: FastAPI's, OpenTelemetry's, asyncio's)."""
    config: dict[str, Any] = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    _use_ours(config, level, json, loggers)
    return config


def _use_ours(
    config: dict[str, Any], level: LogLevel, json: bool, loggers: tuple[str, ...]
) -> None:
    config["formatters"] = formatters(json)
    config["filters"] = {"context": {"()": RequestContext}}
    for handler in config["handlers"].values():
        handler["filters"] = ["context"]
    for name in (__package__, *loggers):
        config["loggers"][name] = {
            "handlers": ["default"],
            "level": _level(level),
            "propagate": False,
        }
    for name in ("uvicorn.error", "uvicorn.access"):
        config["loggers"][name]["level"] = _level(level)
    # Else Python's last resort writes their warnings bare: neither JSON nor escaped.
    config["root"] = {"handlers": ["default"], "level": _others_level(level)}


def configure_logging(level: LogLevel, json: bool) -> None:
    """Apply LOG_FORMAT and LOG_LEVEL to the logging uvicorn configured before the import.

    Under `uvicorn <package>.main:app` and `fastapi run` (uvicorn's loggers
    have handlers, this package's and the root logger none): their handlers
    get these formatters and this package's loggers, and the root logger, the same handlers.
    `python -m`, a team's own configuration, and pytest are left alone;
    calling it again does nothing.
    """
    package = logging.getLogger(__package__)
    if package.handlers or logging.getLogger().handlers:
        return
    # "uvicorn" under uvicorn's configuration; "uvicorn.error" under gunicorn's
    # UvicornWorker, which hands it gunicorn's error log handlers.
    handlers = logging.getLogger("uvicorn").handlers or logging.getLogger("uvicorn.error").handlers
    if not handlers:
        return
    chosen = formatters(json)
    default = chosen["default"].pop("()")(**chosen["default"])
    access = chosen["access"].pop("()")(**chosen["access"])
    context = RequestContext()
    for handler in handlers:
        handler.setFormatter(default)
        handler.addFilter(context)
    for handler in logging.getLogger("uvicorn.access").handlers:
        handler.setFormatter(access)
        handler.addFilter(context)
    root = logging.getLogger()
    for handler in handlers:
        package.addHandler(handler)
        # Libraries' loggers with no handler of their own: else Python's last resort
        # writes their warnings bare, neither JSON nor escaped.
        root.addHandler(handler)
    root.setLevel(_others_level(level))
    for name in (__package__, "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).setLevel(_level(level))
    # As uvicorn's own logger and `python -m`: each line is written here, once.
    package.propagate = False
