"""The app class: FastAPI with room for layers outside its whole middleware stack.

FastAPI puts its own error layer (the 500 of an unhandled exception) and its
body limit (the 413 of `max_body_size`) outside every middleware added with
`add_middleware`: their answers never pass those. What must see every answer
(the request id it carries, the metrics that count it) wraps the stack here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp

Layer = Callable[[ASGIApp], ASGIApp]


class Service(FastAPI):
    """FastAPI whose `wrap_outermost` layers wrap its whole stack, FastAPI's own layers too."""

    def __init__(self, **options: Any) -> None:
        self._outermost: list[Layer] = []
        super().__init__(**options)

    def wrap_outermost(self, layer: Layer) -> None:
        """Wrap the whole stack in `layer`; the layer wrapped last is outermost.

        Call it before the app serves its first request, as `add_middleware`.
        """
        self._outermost.append(layer)

    def build_middleware_stack(self) -> ASGIApp:
        app = super().build_middleware_stack()
        for layer in self._outermost:
            app = layer(app)
        return app
