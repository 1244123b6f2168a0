"""Messages published to channels, by how: counted in whichever process publishes them.

Its own module, so that a queue worker, which publishes job states but
holds no WebSocket, counts them without defining the hub's metrics.
"""

from __future__ import annotations

from prometheus_client import Counter

from . import PREFIX

MESSAGES_PUBLISHED = Counter(
    f"{PREFIX}_messages_published",
    "Messages published by this service, by how: websocket, http, job.",
    ["via"],
)
