"""The ASGI application: `create_app()` builds it, `app` is the one uvicorn serves."""

from __future__ import annotations

from fastapi import FastAPI

from . import __version__
from .api.health import router as health_router
{%- if cookiecutter.use_background_tasks %}
from .api.notifications import router as notifications_router
from .jobs import JobRunner
{%- endif %}
{%- if cookiecutter.use_lifespan %}
from .lifespan import lifespan
{%- endif %}
from .readiness import Readiness
from .settings import Settings, get_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the application; nothing opens until the server starts it."""
    settings = settings or get_settings()
    app = FastAPI(
        title=settings.app_name,
        version=__version__,
{%- if cookiecutter.use_lifespan %}
        lifespan=lifespan,
{%- endif %}
    )
    app.state.settings = settings
    app.state.readiness = Readiness(timeout=settings.ready_timeout)
{%- if cookiecutter.use_background_tasks %}
    app.state.jobs = JobRunner(history=settings.job_history)
{%- endif %}
    app.include_router(health_router)
{%- if cookiecutter.use_background_tasks %}
    app.include_router(notifications_router)
{%- endif %}
    return app


app = create_app()
