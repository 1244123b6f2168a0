"""A backend that records a span per publish; the hub gets one only while traces are on.

Only publishing is traced: once per message, whoever publishes (the HTTP
route, a client's `publish` command, a job's progress). Delivering a
message to each subscriber is not: a span per frame would cost more than the
frame, and say less than the publish's span.
"""

from __future__ import annotations

from opentelemetry.trace import SpanKind, Tracer

from .backend import Backend, Receiver
from .envelope import Draft, Position
from .history import History


class TracedBackend:
    """`backend`, with a span named `publish` around each publish: the channel as
    `messaging.destination.name`, the message's `broadcast.offset` and `broadcast.epoch`."""

    def __init__(self, backend: Backend, tracer: Tracer) -> None:
        self._backend = backend
        self._tracer = tracer

    async def publish(self, channel: str, message: Draft) -> Position:
        """The backend's publish, in a span; a BroadcastUnavailable marks the span failed."""
        attributes = {"messaging.destination.name": channel, "messaging.operation.type": "send"}
        with self._tracer.start_as_current_span(
            "publish", kind=SpanKind.PRODUCER, attributes=attributes
        ) as span:
            position = await self._backend.publish(channel, message)
            span.set_attribute("broadcast.offset", position.offset)
            span.set_attribute("broadcast.epoch", position.epoch)
            return position

    async def start(self, receiver: Receiver) -> None:
        await self._backend.start(receiver)

    async def stop(self) -> None:
        await self._backend.stop()

    async def history(self, channel: str, since: int | None, limit: int | None = None) -> History:
        return await self._backend.history(channel, since, limit)

    async def subscribe(self, channel: str) -> None:
        await self._backend.subscribe(channel)

    async def unsubscribe(self, channel: str) -> None:
        await self._backend.unsubscribe(channel)

    def ready(self) -> str | None:
        return self._backend.ready()


def traced(backend: Backend, tracer: Tracer | None) -> Backend:
    """`backend` with a span per publish, or `backend` itself when `tracer` is None."""
    return backend if tracer is None else TracedBackend(backend, tracer)
