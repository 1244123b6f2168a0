"""Traces (the `otel` extra): FastAPI's built-in OpenTelemetry spans, and one per broadcast publish.

Off unless configured, and then free: FastAPI's telemetry is switched off
outright rather than left to look for a provider on every request, and
nothing else is traced. Traces are on when `create_app` is handed a
TracerProvider, or when the environment names an OTLP endpoint
(OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT): FastAPI
then sets up the exporter at startup (its `auto_configure`, which needs the
extra's OTLP/HTTP exporter), reading the OTEL_* variables from the process's
environment as the OpenTelemetry SDK does (not from `.env`).

Traced: each HTTP request and each WebSocket connection (one span for the
whole connection, none per message), and each publish to the broadcast
backend. Not traced: /health, /ready and /metrics, polled all day by probes
and scrapers; FastAPI's operation spans (dependencies, serialisation); its
OpenTelemetry metrics and logs (/metrics and the log lines cover those).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping
from typing import Any

from fastapi.telemetry import TelemetryConfig
from opentelemetry import trace

# Polled by probes and scrapers: a span each would drown the traces that matter.
EXCLUDED_PATHS = frozenset({"/health", "/ready", "/metrics"})

# FastAPI's telemetry with nothing on: each request skips it after three checks.
OFF: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False, "auto_configure": False}


def configured(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the environment asks for traces: an OTLP endpoint set, neither
    OTEL_SDK_DISABLED=true nor OTEL_TRACES_EXPORTER=none."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return False
    endpoints = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
    return any(environ.get(name, "").strip() for name in endpoints)


def telemetry(provider: trace.TracerProvider | None) -> TelemetryConfig:
    """FastAPI's `telemetry=`: traces only, to `provider`, or exported as the environment
    says; OFF when neither asks for them."""
    if provider is None and not configured():
        return OFF
    return {
        "tracer_provider": provider,
        "tracing": True,
        "metrics": False,
        "logs": False,
        # Without them the service's own spans are children of the request's span.
        "operation_spans": False,
        # With no provider handed in, FastAPI builds one from the OTEL_* variables at startup.
        "auto_configure": provider is None,
        "exclude": excluded,
    }


def tracer(provider: trace.TracerProvider | None) -> trace.Tracer | None:
    """The service's own tracer: `provider`'s, or the global one FastAPI sets up from the
    environment; None while traces are off."""
    if provider is not None:
        return provider.get_tracer(__package__ or __name__)
    if configured():
        # A proxy until FastAPI sets the global provider at startup, then that provider's.
        return trace.get_tracer(__package__ or __name__)
    return None


def excluded(scope: MutableMapping[str, Any]) -> bool:
    """Whether a request or connection (its ASGI scope) goes untraced: EXCLUDED_PATHS,
    behind ROOT_PATH or not."""
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    return path in EXCLUDED_PATHS
