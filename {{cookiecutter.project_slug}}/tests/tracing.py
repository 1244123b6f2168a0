"""Span recorders for the trace tests: the SDK's in-memory exporter behind a TracerProvider."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


class Recorder:
    """A TracerProvider whose ended spans are kept in memory, to hand to `create_app`."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        # Simple, not batched: a span is recorded the moment it ends.
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))

    @property
    def spans(self) -> tuple[ReadableSpan, ...]:
        return self.exporter.get_finished_spans()


_GLOBAL = Recorder()


def global_recorder() -> Recorder:
    """The process's global TracerProvider, set once (OpenTelemetry allows no second),
    as an agent or another library might set it; emptied for each caller."""
    if trace.get_tracer_provider() is not _GLOBAL.provider:
        trace.set_tracer_provider(_GLOBAL.provider)
    _GLOBAL.exporter.clear()
    return _GLOBAL


def parent_id(span: ReadableSpan) -> int | None:
    """The id of `span`'s parent span; None for a root span."""
    return None if span.parent is None else span.parent.span_id


def span_id(span: ReadableSpan) -> int:
    """`span`'s own id."""
    assert span.context is not None
    own: int = span.context.span_id
    return own
