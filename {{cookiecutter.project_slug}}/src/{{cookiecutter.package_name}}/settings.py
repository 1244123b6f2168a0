"""Service settings, read once from the environment and `.env`.

Every field can be set by an environment variable of the same name in upper
case (`PORT=9000`). `.env.example` lists them all with their defaults.
"""

from __future__ import annotations

import json
{%- if cookiecutter.use_task_queue %}
import math
{%- endif %}
{%- if cookiecutter.use_redis %}
import re
{%- endif %}
from functools import lru_cache
from typing import Annotated, Any, Literal

{% if cookiecutter.use_task_queue -%}
from croniter import CroniterBadDateError, croniter
{% endif -%}
from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    HttpUrl,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError
{%- if cookiecutter.use_redis %}
from redis.asyncio import ConnectionPool
from redis.asyncio.connection import parse_url
{%- endif %}

{% if cookiecutter.use_websockets -%}
from .api.origins import origin_patterns
{% endif -%}
from .auth.keys import public_key
from .hosts import ANY, LOOPBACK, host_patterns
from .redaction import masked


def _list(value: Any) -> Any:
    """A list as people write it in the environment: a JSON list, one value, or values
    separated by commas (`a.example.com,b.example.com`)."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        return json.loads(text)  # a ValueError names the variable like any other
    return [part.strip() for part in text.split(",") if part.strip()]


def _http_url(url: str) -> str:
    """`url` unchanged if it is an http:// or https:// URL with a host; ValueError if not."""
    try:
        HttpUrl(url)
    except ValidationError as exc:  # one line: "URL scheme should be 'http' or 'https'"
        raise ValueError(exc.errors()[0]["msg"]) from None
    return url


def _choice(aliases: dict[str, str]) -> BeforeValidator:
    """Case-insensitive, with the usual other spellings (`WARN` for `warning`)."""

    def normalise(value: Any) -> Any:
        if not isinstance(value, str):
            return value
        word = value.strip().lower()
        return aliases.get(word, word)

    return BeforeValidator(normalise)


StrList = Annotated[list[str], NoDecode, BeforeValidator(_list)]
HostList = Annotated[StrList, AfterValidator(host_patterns)]
UrlList = Annotated[StrList, AfterValidator(lambda urls: [_http_url(url) for url in urls])]
{%- if cookiecutter.use_websockets %}
OriginList = Annotated[StrList, AfterValidator(origin_patterns)]
{%- endif %}
LogLevel = Annotated[
    Literal["critical", "error", "warning", "info", "debug", "trace"],
    _choice({"warn": "warning", "fatal": "critical"}),
]
LogFormat = Annotated[Literal["text", "json"], _choice({})]
Environment = Annotated[
    Literal["development", "production"], _choice({"dev": "development", "prod": "production"})
]
# HS256 keys shorter than the hash are guessable (RFC 7518 section 3.2).
MIN_SECRET_BYTES = 32
AUTH_KEYS = ("AUTH_SECRET", "AUTH_PUBLIC_KEY", "AUTH_JWKS_URL")
# Upper bounds, in seconds. pydantic reads `inf` and `1e400` as numbers, and
# a timer, socket timeout or expiry computed from one overflows or never ends;
# past these a value is a mistake, not a choice.
# One wait: a timeout, a retry delay, a health-check interval.
MAX_WAIT = 300.0
# Waiting for connections and jobs at shutdown: orchestrators kill sooner
# (Kubernetes' terminationGracePeriodSeconds is 30 by default).
MAX_SHUTDOWN = 3600.0
# Clock skew tolerated on `exp`: RFC 7519 section 4.1.4 says "usually no more than a
# few minutes"; more accepts a token long after it expired, or leaked.
MAX_LEEWAY = 300.0
{%- if cookiecutter.use_websockets %}
# History kept after a channel's last publish: a year, far below what Redis's
# PEXPIRE takes (milliseconds within a signed 64-bit integer).
MAX_HISTORY_TTL = 366 * 24 * 3600.0
# Commands per second, and in a burst: the token bucket computes in floats, and
# a million a second is no limit at all for one connection.
MAX_RATE = 1_000_000
{%- endif %}
{%- if cookiecutter.use_task_queue %}
# Retries of one job: more is a loop, not a retry policy.
MAX_JOB_RETRIES = 100
# A job's result is kept at most 30 days (seconds).
MAX_RESULT_TTL = 30 * 24 * 3600
{%- endif %}
{%- if cookiecutter.use_redis %}
# The first part of the default REDIS_PREFIX.
PROJECT_SLUG = {{ cookiecutter.project_slug | python_string }}
# What REDIS_PREFIX may hold: no spaces or control characters, and no braces,
# which Redis Cluster reads as a hash tag.
_REDIS_PREFIX = re.compile(r"[!-z|~]{1,64}")
{%- endif %}


class Settings(BaseSettings):
    """Validated configuration; a bad value fails at startup naming the variable."""

    # An empty variable means unset (AUTH_SECRET= in .env keeps authentication off).
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", env_ignore_empty=True)

    app_name: str = {{ cookiecutter.project_name | python_string }}
    # production refuses to start without an authentication key and turns
    # the API docs{% if cookiecutter.use_websockets %} and the demo page{% endif %} off unless asked for.
    environment: Environment = "development"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    workers: int = Field(default=1, ge=1)
    # The path prefix a proxy serves the app under (e.g. /realtime), as uvicorn's
    # --root-path: URLs the app builds, and the docs, carry it.
    root_path: str = ""
    # The Host names requests and WebSocket handshakes may carry, against DNS
    # rebinding (hosts.py): names, IP addresses, `*.example.com` for any name
    # below example.com, or "*" for any. Unset: localhost, 127.0.0.1 and ::1 in
    # development, any host in production.
    trusted_hosts: HostList | None = None
    log_level: LogLevel = "info"
    # Log lines as text (uvicorn's format) or one JSON object each (logs.py);
    # unset: json in production, text in development.
    log_format: LogFormat | None = None
    # How long shutdown waits for open connections and running work before it
    # cancels them; also passed to uvicorn as its graceful-shutdown timeout.
    shutdown_timeout: float = Field(default=10.0, gt=0, le=MAX_SHUTDOWN)
    # Largest request body in bytes, on every route: larger gets 413 before it is read whole.
    max_body_size: int = Field(default=1024 * 1024, ge=1)
    # Each readiness check must answer within this many seconds.
    ready_timeout: float = Field(default=2.0, gt=0, le=MAX_WAIT)
    # Authentication: JSON Web Tokens from your identity service, verified
    # with exactly one of these keys. None set: authentication is off, which
    # only development allows.
    auth_secret: SecretStr | None = None  # HS256, at least 32 bytes
    auth_public_key: str | None = None  # PEM: RSA, EC (P-256/384/521) or Ed25519
    auth_jwks_url: str | None = None  # a JWK Set, fetched and cached
    # Checked when set: the token's `iss` and `aud` must match.
    auth_issuer: str | None = None
    auth_audience: str | None = None
    # Seconds of clock difference allowed when checking `exp`.
    auth_leeway: float = Field(default=0.0, ge=0, le=MAX_LEEWAY)
    # /docs, /redoc and /openapi.json; unset: on in development, off in production.
    docs_enabled: bool | None = None
    # Prometheus metrics: GET /metrics and the measuring behind it{% if cookiecutter.use_task_queue %},
    # and each worker's exporter{% endif %}; off: none of it, at no cost.
    metrics_enabled: bool = True
{%- if cookiecutter.use_lifespan %}
    # Outbound HTTP: the shared client's timeout, and the upstream URLs that
    # /ready checks. In the environment, a JSON list, one URL, or URLs separated
    # by commas: UPSTREAM_URLS=https://a.example.com/health,https://b.example.com/health.
    http_timeout: float = Field(default=5.0, gt=0, le=MAX_WAIT)
    upstream_urls: UrlList = Field(default_factory=list)
{%- endif %}
{%- if cookiecutter.use_background_tasks and not cookiecutter.use_task_queue %}
    # How many finished jobs /jobs/{id} remembers.
    job_history: int = Field(default=1000, ge=1)
{%- endif %}
{%- if cookiecutter.use_websockets %}
    # The demo page at GET /; unset: on in development, off in production.
    demo_enabled: bool | None = None
    # WebSocket broadcast. A frame larger than this many bytes closes its
    # connection with 1009; an HTTP-published body that large gets 413.
    ws_max_message_size: int = Field(default=64 * 1024, ge=1)
    # Messages a client may fall behind by before it is closed with 1013.
    ws_queue_size: int = Field(default=256, ge=1)
    # Seconds one frame may wait on a client's socket before it is closed with 1013.
    ws_send_timeout: float = Field(default=5.0, gt=0, le=MAX_WAIT)
    # Bad frames in a row (not a command, binary) before a connection is
    # closed with 4008; refused over-rate commands in a row before 4029.
    ws_max_bad_frames: int = Field(default=5, ge=1)
    # Seconds a new connection has to send `connect` before it is closed with 4001.
    ws_connect_timeout: float = Field(default=5.0, gt=0, le=MAX_WAIT)
    # Channels one connection may be subscribed to at once.
    ws_max_subscriptions: int = Field(default=128, ge=1)
    # Commands one connection may send: WS_RATE per second on average, in
    # bursts of up to WS_BURST (a token bucket).
    ws_rate: float = Field(default=50.0, gt=0, le=MAX_RATE)
    ws_burst: int = Field(default=100, ge=1, le=MAX_RATE)
    # Connections this process holds; a handshake beyond it gets HTTP 503.
    ws_max_connections: int = Field(default=10_000, ge=1)
    # Origins besides the service's own that may open a WebSocket: exact
    # origins, `scheme://host:*` for any port, or "*". In the environment, a
    # JSON list, one origin, or origins separated by commas.
    ws_allowed_origins: OriginList = Field(
        default_factory=lambda: ["http://localhost:*", "http://127.0.0.1:*", "http://[::1]:*"]
    )
    # permessage-deflate costs CPU per client per message, since every
    # connection compresses on its own: off unless messages are large and slow links many.
    ws_per_message_deflate: bool = False
    # History, for clients that reconnect: the last HISTORY_SIZE messages of each
    # channel (0: none, and no recovery), kept until HISTORY_TTL seconds after
    # the channel's last publish.
    history_size: int = Field(default=100, ge=0, le=100_000)
    history_ttl: float = Field(default=300.0, gt=0, le=MAX_HISTORY_TTL)
    # Without Redis: bytes of history this process keeps across all channels;
    # past it, the least recently published channels' histories go first.
    history_max_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
{%- endif %}
{%- if cookiecutter.use_redis %}
    # The Redis server, e.g. redis://localhost:6379/0 (rediss:// for TLS,
    # unix:///path for a socket). Unset or empty: the service runs without Redis.
    redis_url: str | None = None
    # Seconds connecting to Redis, or one command to it, may take before it counts as failed.
    redis_timeout: float = Field(default=2.0, gt=0, le=MAX_WAIT)
    # The start of every Redis key and pub/sub channel name the service uses
    # ("<prefix>:counters:<name>"). Database numbers do not scope pub/sub, so two
    # services on one Redis are kept apart by this; unset: the project's slug
    # and REDIS_URL's database number (realtime-service:0), the separation
    # people expect from database numbers.
    redis_prefix: str | None = None
{%- endif %}
{%- if cookiecutter.use_task_queue %}
    # Durable jobs (tasks/, README "Durable jobs"). Seconds one run of a job
    # may take; past it, the run is cancelled and counts as failed.
    job_timeout: int = Field(default=300, ge=1, le=int(MAX_SHUTDOWN))
    # Runs after the first when a job raises; then it is failed, with its error.
    job_retries: int = Field(default=3, ge=0, le=MAX_JOB_RETRIES)
    # Seconds before the first retry, doubling (with jitter) up to the maximum.
    job_retry_delay: float = Field(default=1.0, ge=0, le=MAX_WAIT)
    job_retry_max_delay: float = Field(default=60.0, gt=0, le=MAX_SHUTDOWN)
    # Seconds a running job may go without its worker's heartbeat before it
    # counts as lost (its worker killed) and runs again elsewhere: within
    # about twice this plus 1 s of the worker's death.
    job_heartbeat_timeout: int = Field(default=30, ge=3, le=int(MAX_WAIT))
    # Seconds a finished job's state, result or error stays readable.
    job_result_ttl: int = Field(default=24 * 3600, ge=1, le=MAX_RESULT_TTL)
    # Jobs one worker process runs at once.
    worker_concurrency: int = Field(default=10, ge=1, le=1000)
    # Seconds a stopping worker lets running jobs finish before it cancels
    # them (they are queued to run again).
    worker_shutdown_timeout: int = Field(default=30, ge=1, le=int(MAX_SHUTDOWN))
    # When the periodic example job runs: cron syntax, UTC (minute hour day
    # month weekday), a sixth field for seconds ("* * * * * */10": every ten seconds).
    queue_report_cron: str = "* * * * *"
    # Where each worker serves its metrics (on HOST, like the web service); 0: nowhere.
    worker_metrics_port: int = Field(default=9101, ge=0, le=65535)
{%- endif %}
{%- if cookiecutter.use_redis and cookiecutter.use_websockets %}
    # After losing Redis, the broadcast listener retries after 0.1 s, then
    # doubles the wait (with jitter) up to this many seconds.
    redis_reconnect_max_delay: float = Field(default=5.0, ge=0.1, le=MAX_WAIT)
    # Seconds the broadcast listener may hear nothing before it sends Redis a
    # PING; no PONG within REDIS_TIMEOUT counts as a lost connection, so a
    # silently dead one is noticed within the sum of the two.
    redis_health_check_interval: float = Field(default=5.0, gt=0, le=MAX_WAIT)
{%- endif %}

    @model_validator(mode="after")
    def _authentication_is_configured(self) -> Settings:
        keys = [self.auth_secret, self.auth_public_key, self.auth_jwks_url]
        if sum(key is not None for key in keys) > 1:
            raise ValueError(f"set only one of {', '.join(AUTH_KEYS)}")
        if self.environment == "production" and all(key is None for key in keys):
            raise ValueError(
                f"ENVIRONMENT=production needs one of {', '.join(AUTH_KEYS)}"
                " (authentication cannot be off in production)"
            )
        secret = self.auth_secret
        if secret is not None and len(secret.get_secret_value().encode()) < MIN_SECRET_BYTES:
            raise ValueError(f"AUTH_SECRET must be at least {MIN_SECRET_BYTES} bytes")
        return self

    @field_validator("root_path")
    @classmethod
    def _root_path_is_a_path(cls, path: str) -> str:
        # uvicorn strips it from the front of every request path: without the
        # leading "/" nothing matches. A trailing "/" is dropped (`/` is no prefix).
        if path and not path.startswith("/"):
            raise ValueError('must start with "/" (e.g. /realtime), or be empty')
        return path.rstrip("/")

    @field_validator("auth_public_key")
    @classmethod
    def _public_key_is_usable(cls, pem: str | None) -> str | None:
        if pem is not None:
            public_key(pem)  # its ValueError says what is wrong
        return pem

    @field_validator("auth_jwks_url")
    @classmethod
    def _jwks_url_is_http(cls, url: str | None) -> str | None:
        return None if url is None else _http_url(url)

    @property
    def docs(self) -> bool:
        """Whether the API docs are served."""
        return _unless_production(self.docs_enabled, self.environment)

    @property
    def json_logs(self) -> bool:
        """Whether log lines are JSON objects: LOG_FORMAT, or by default in production."""
        if self.log_format is not None:
            return self.log_format == "json"
        return self.environment == "production"

    @property
    def hosts(self) -> list[str]:
        """TRUSTED_HOSTS, or by default the loopback names in development and any host
        (`["*"]`) in production."""
        if self.trusted_hosts is not None:
            return self.trusted_hosts
        return [ANY] if self.environment == "production" else list(LOOPBACK)
{%- if cookiecutter.use_websockets %}

    @property
    def demo(self) -> bool:
        """Whether the demo page is served."""
        return _unless_production(self.demo_enabled, self.environment)
{%- endif %}
{%- if cookiecutter.use_redis %}

    @field_validator("redis_url")
    @classmethod
    def _redis_url_or_none(cls, url: str | None) -> str | None:
        # Empty means unset, as in `.env.example`; anything else must name a Redis.
        if not url:
            return None
        if not url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        try:
            options = _parsed_redis_url(url)
        except ValueError as exc:  # e.g. a database number that is not a number
            raise ValueError(f"not a Redis URL: {_redis_url_problem(url, exc)}") from None
        for option, value in options.items():  # ?socket_timeout=inf, as REDIS_TIMEOUT
            if isinstance(value, float) and not 0 < value <= MAX_WAIT:
                raise ValueError(
                    f"not a Redis URL: {option} must be seconds above 0, at most {MAX_WAIT:g}"
                )
        return url

    @field_validator("redis_prefix")
    @classmethod
    def _redis_prefix_is_printable(cls, prefix: str | None) -> str | None:
        if prefix is not None and (not _REDIS_PREFIX.fullmatch(prefix) or prefix.endswith(":")):
            raise ValueError(
                "must be 1 to 64 printable ASCII characters without spaces, braces"
                " or a trailing ':' (the service adds the separator)"
            )
        return prefix

{%- if cookiecutter.use_task_queue %}

    @field_validator("queue_report_cron")
    @classmethod
    def _cron_is_valid(cls, cron: str) -> str:
        if len(cron.split()) not in (5, 6) or not croniter.is_valid(cron):
            raise ValueError(
                "must be a cron expression: 5 fields (minute hour day month weekday),"
                " or 6 with seconds last"
            )
        try:
            croniter(cron).get_next()
        except CroniterBadDateError:  # valid fields that never meet (February 31)
            raise ValueError("names no time that ever comes (check the day and month)") from None
        return cron
{%- endif %}

{%- if cookiecutter.use_task_queue %}

    @property
    def job_idempotency_ttl(self) -> int:
        """Seconds a job's idempotency record must last: past its last possible run.

        Every attempt may take JOB_TIMEOUT, be found lost two heartbeat
        timeouts later, and wait a retry delay; then the result is kept
        JOB_RESULT_TTL, during which the same Idempotency-Key finds the job.
        """
        attempt = self.job_timeout + 2 * self.job_heartbeat_timeout + 1 + self.job_retry_max_delay
        return self.job_result_ttl + math.ceil((self.job_retries + 1) * attempt)
{%- endif %}

    def redis_key(self, *parts: str) -> str:
        """The Redis key or channel name for `parts`: `<REDIS_PREFIX>:part:part...`.

        Without REDIS_PREFIX, the prefix is the project's slug and REDIS_URL's
        database number: `redis_key("counters", "x")` is `realtime-service:0:counters:x`.
        """
        prefix = self.redis_prefix
        if prefix is None:
            database = parse_url(self.redis_url).get("db") if self.redis_url else 0
            prefix = f"{PROJECT_SLUG}:{database or 0}"
        return ":".join((prefix, *parts))
{%- endif %}


{%- if cookiecutter.use_redis %}


def _parsed_redis_url(url: str) -> dict[str, Any]:
    """redis-py's options for `url`; ValueError if it is not a Redis URL."""
    options = dict(parse_url(url))
    # The pool checks what parse_url leaves alone (max_connections=-1); it
    # connects to nothing until used.
    ConnectionPool.from_url(url)
    return options


def _redis_url_problem(url: str, error: ValueError) -> str:
    """What is wrong with `url` (redis-py's `error`), in words that never quote its password."""
    shown = masked(url)
    if shown == url:
        return str(error)
    try:
        _parsed_redis_url(shown)
    except ValueError as without_password:
        return str(without_password)
    # `error` may quote a piece of a password that an unescaped "/" or "@" split.
    return (
        "its user and password do not parse"
        ' (write ":", "/" or "@" in a password as %3A, %2F or %40)'
    )
{%- endif %}


def _unless_production(enabled: bool | None, environment: Environment) -> bool:
    return enabled if enabled is not None else environment != "production"


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use.

    A bad setting exits the process (SystemExit) with one line per problem,
    naming the variable, instead of a traceback.
    """
    try:
        return Settings()
    except ValidationError as exc:
        raise SystemExit("\n".join(problems(exc))) from None
    except SettingsError as exc:  # a source that could not be read at all
        raise SystemExit(f"error: settings: {exc}") from None


def problems(exc: ValidationError) -> list[str]:
    """One line per invalid setting: `error: VARIABLE: what is wrong (got value)`."""
    lines = []
    for error in exc.errors():
        # A list's entries add their index to `loc`: the variable is the names alone.
        name = "_".join(part for part in error["loc"] if isinstance(part, str)).upper()
        message = error["msg"].removeprefix("Value error, ")
        where = f"{name}: " if name else ""
        value = error["input"]
        # A URL's password is no more shown than logged (REDIS_URL's, for one).
        given = f" (got {masked(repr(value))})" if name and not isinstance(value, dict) else ""
        lines.append(f"error: {where}{message}{given}")
    return lines
