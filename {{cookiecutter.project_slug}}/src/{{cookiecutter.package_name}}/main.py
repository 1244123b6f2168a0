"""The ASGI application: `create_app()` builds it, `app` is the one uvicorn serves."""

from __future__ import annotations

import logging

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from opentelemetry.trace import TracerProvider
from starlette.exceptions import HTTPException

from . import __version__, tracing
{%- if cookiecutter.use_websockets %}
from .api import browser_client, demo, history, messages, ws
{%- endif %}
{%- if cookiecutter.use_redis %}
from .api.counters import router as counters_router
{%- endif %}
from .api.health import router as health_router
{%- if cookiecutter.use_task_queue %}
from .api.jobs import router as jobs_router
{%- endif %}
{%- if cookiecutter.use_background_tasks and not cookiecutter.use_task_queue %}
from .api.notifications import router as notifications_router
{%- endif %}
{%- if cookiecutter.use_background_tasks and cookiecutter.use_task_queue %}
from .api.queued_notifications import router as notifications_router
{%- endif %}
from .auth.tokens import Authenticator
{%- if cookiecutter.use_websockets %}
from .broadcast.hub import Hub
{%- endif %}
{%- if cookiecutter.use_websockets and not cookiecutter.use_redis %}
from .broadcast.memory import memory_backend
{%- endif %}
{%- if cookiecutter.use_websockets and cookiecutter.use_redis %}
from .broadcast.selection import broadcast_backend
{%- endif %}
{%- if cookiecutter.use_websockets %}
from .broadcast.traced import traced
{%- endif %}
from .errors import EVERY_ROUTE, http_error
from .handshake import not_found
from .head import HeadAsGet
from .hosts import ANY, TrustedHosts
{%- if cookiecutter.use_background_tasks and not cookiecutter.use_task_queue %}
from .jobs import JobRunner
{%- endif %}
{%- if cookiecutter.use_lifespan %}
from .lifespan import lifespan
{%- endif %}
from .limits import short_validation_errors
from .logs import configure_logging
from .metrics.exposition import add_metrics
{%- if cookiecutter.use_websockets %}
from .metrics.websocket import instrument
{%- endif %}
from .outermost import Service
from .readiness import Readiness
{%- if cookiecutter.use_websockets %}
from .realtime.collector import tune_garbage_collector
{%- endif %}
from .request_ids import RequestIds
from .settings import Settings, get_settings

logger = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None, *, tracer_provider: TracerProvider | None = None
) -> FastAPI:
    """Build the application; nothing opens until the server starts it.

    Traces go to `tracer_provider` when given, else where the OTEL_* variables
    say, else nowhere, at no cost (tracing.py).
    """
    settings = settings or get_settings()
    # Under `uvicorn <package>.main:app` nothing else gives this package's loggers a handler.
    configure_logging(settings.log_level, json=settings.json_logs)
    docs = settings.docs
    app = Service(
        title=settings.app_name,
        version=__version__,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
        openapi_url="/openapi.json" if docs else None,
        # Every route: 413 once the declared length or the bytes read pass it.
        max_body_size=settings.max_body_size,
        responses=EVERY_ROUTE,
        telemetry=tracing.telemetry(tracer_provider),
{%- if cookiecutter.use_lifespan %}
        lifespan=lifespan,
{%- endif %}
    )
    app.state.settings = settings
    app.state.authenticator = Authenticator(settings)
    if not app.state.authenticator.enabled:
        logger.warning(
            "authentication is OFF: no AUTH_SECRET, AUTH_PUBLIC_KEY or AUTH_JWKS_URL is set,"
            " so anyone may subscribe and publish anywhere (development only)"
        )
    app.state.readiness = Readiness(timeout=settings.ready_timeout)
{%- if cookiecutter.use_background_tasks and not cookiecutter.use_task_queue %}
    app.state.jobs = JobRunner(history=settings.job_history)
{%- endif %}
{%- if cookiecutter.use_websockets %}
    # A process that holds thousands of connections (realtime/collector.py).
    tune_garbage_collector()
    # Built here, not in a lifespan, so it also serves without one: it starts
    # its backend on first use.
    app.state.hub = Hub(
        traced(
{%- if cookiecutter.use_redis %}
            broadcast_backend(settings),
{%- else %}
            memory_backend(settings),
{%- endif %}
            tracing.tracer(tracer_provider),
        ),
        queue_size=settings.ws_queue_size,
        send_timeout=settings.ws_send_timeout,
        max_connections=settings.ws_max_connections,
    )
    app.state.readiness.add("broadcast", app.state.hub.ready)
{%- endif %}
    # A WebSocket handshake to a path no route serves: 404, not Starlette's bare 403.
    app.router.default = not_found(app.router.not_found)
    app.include_router(health_router)
{%- if cookiecutter.use_background_tasks and not cookiecutter.use_task_queue %}
    app.include_router(notifications_router)
{%- endif %}
{%- if cookiecutter.use_redis %}
    # Only with a Redis to count in (and to queue jobs in): the schema offers no
    # route that could only answer 503 (a client generated from it would call
    # it all the same).
    if settings.redis_url is not None:
        app.include_router(counters_router)
{%- if cookiecutter.use_task_queue %}
        app.include_router(jobs_router)
{%- endif %}
{%- if cookiecutter.use_background_tasks and cookiecutter.use_task_queue %}
        app.include_router(notifications_router)
{%- endif %}
{%- endif %}
{%- if cookiecutter.use_websockets %}
    app.include_router(messages.router)
    app.include_router(history.router)
    app.include_router(browser_client.router)
    if settings.demo:
        app.include_router(demo.router)
    if settings.metrics_enabled:
        # First of the middleware, so innermost: it reads the route the router matched.
        add_metrics(app, *instrument(app.state.hub))
    app.add_middleware(ws.RealtimeEndpoint)
{%- else %}
    if settings.metrics_enabled:
        # First of the middleware, so innermost: it reads the route the router matched.
        add_metrics(app)
{%- endif %}
    app.add_middleware(HeadAsGet)
    if ANY not in settings.hosts:
        # Added last, so outermost: every request and handshake passes it first.
        app.add_middleware(TrustedHosts, patterns=settings.hosts)
    # Around everything, FastAPI's own 413 and 500 too: every answer carries its id.
    app.wrap_outermost(RequestIds)
    app.add_exception_handler(RequestValidationError, short_validation_errors)
    app.add_exception_handler(HTTPException, http_error)
    return app


app = create_app()
