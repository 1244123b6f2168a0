"""Service settings, read once from the environment and `.env`.

Every field can be set by an environment variable of the same name in upper
case (`PORT=9000`). `.env.example` lists them all with their defaults.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field
{% if cookiecutter.use_redis -%}
from pydantic.functional_validators import field_validator
{% endif -%}
from pydantic_settings import BaseSettings, SettingsConfigDict

LogLevel = Literal["critical", "error", "warning", "info", "debug", "trace"]


class Settings(BaseSettings):
    """Validated configuration; a bad value fails at startup naming the variable."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    app_name: str = {{ cookiecutter.project_name | python_string }}
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    workers: int = Field(default=1, ge=1)
    log_level: LogLevel = "info"
    # How long shutdown waits for open connections and running work before it
    # cancels them; also passed to uvicorn as its graceful-shutdown timeout.
    shutdown_timeout: float = Field(default=10.0, gt=0)
    # Each readiness check must answer within this many seconds.
    ready_timeout: float = Field(default=2.0, gt=0)
{%- if cookiecutter.use_lifespan %}
    # Outbound HTTP: the shared client's timeout, and the upstream URLs that
    # /ready checks. In the environment, a JSON list:
    # UPSTREAM_URLS='["https://api.example.com/health"]'.
    http_timeout: float = Field(default=5.0, gt=0)
    upstream_urls: list[str] = Field(default_factory=list)
{%- endif %}
{%- if cookiecutter.use_background_tasks %}
    # How many finished jobs /jobs/{id} remembers.
    job_history: int = Field(default=1000, ge=1)
{%- endif %}
{%- if cookiecutter.use_websockets %}
    # WebSocket broadcast. A frame larger than this many bytes closes its
    # connection with 1009; an HTTP-published body that large gets 413.
    ws_max_message_size: int = Field(default=64 * 1024, ge=1)
    # Messages a client may fall behind by before it is closed with 1013.
    ws_queue_size: int = Field(default=256, ge=1)
    # Seconds one frame may wait on a client's socket before it is closed with 1013.
    ws_send_timeout: float = Field(default=5.0, gt=0)
    # Bad frames (not JSON, binary) one connection may send before it is closed with 1008.
    ws_max_bad_frames: int = Field(default=5, ge=1)
    # Origins besides the service's own that may open a WebSocket: exact
    # origins, `scheme://host:*` for any port, or "*". In the environment, a
    # JSON list: WS_ALLOWED_ORIGINS='["https://app.example.com"]'.
    ws_allowed_origins: list[str] = Field(
        default_factory=lambda: ["http://localhost:*", "http://127.0.0.1:*", "http://[::1]:*"]
    )
    # permessage-deflate costs CPU per client per message, since every
    # connection compresses on its own: off unless messages are large and slow links many.
    ws_per_message_deflate: bool = False
{%- endif %}
{%- if cookiecutter.use_redis %}
    # The Redis server, e.g. redis://localhost:6379/0 (rediss:// for TLS,
    # unix:///path for a socket). Unset or empty: the service runs without Redis.
    redis_url: str | None = None
    # Seconds connecting to Redis, or one command to it, may take before it counts as failed.
    redis_timeout: float = Field(default=2.0, gt=0)
{%- endif %}
{%- if cookiecutter.use_redis and cookiecutter.use_websockets %}
    # After losing Redis, the broadcast listener retries after 0.1 s, then
    # doubles the wait (with jitter) up to this many seconds.
    redis_reconnect_max_delay: float = Field(default=5.0, ge=0.1)
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
        return url
{%- endif %}


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    return Settings()
