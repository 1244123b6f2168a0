"""Prometheus metrics of the service, served at GET /metrics (README "Metrics").

Each module defines the metrics of one part on prometheus-client's default
registry, so that whatever another module registers there is served too.
"""

from __future__ import annotations

# Every metric's name starts with the package's: `<package>_websocket_connections`.
PREFIX = __name__.partition(".")[0]
