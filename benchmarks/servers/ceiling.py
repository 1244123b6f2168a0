"""Ceiling: a plain `websockets` server that fans each message out with `websockets.broadcast()`.

The cheapest correct fan-out in Python: the envelope is built once per message and written
to every socket synchronously, with no per-client queue, no backpressure and no validation.
Same URL shape and protocol as the service: connect to `/ws/{channel}` to join; a text frame
sent on the socket is published to the channel as `{"type": "message", ...}`.

    python benchmarks/servers/ceiling.py --port 8001
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections import defaultdict

from websockets.asyncio.server import ServerConnection, broadcast, serve

channels: defaultdict[str, set[ServerConnection]] = defaultdict(set)
sequence: defaultdict[str, int] = defaultdict(int)


def envelope(channel: str, data: str) -> str:
    """The service's message frame, built by string formatting from the raw JSON text."""
    sequence[channel] += 1
    seq = sequence[channel]
    return f'{{"type":"message","channel":{json.dumps(channel)},"seq":{seq},"data":{data}}}'


async def handler(websocket: ServerConnection) -> None:
    path = websocket.request.path if websocket.request else ""
    if not path.startswith("/ws/") or len(path) == 4:
        await websocket.close(1008, "expected /ws/{channel}")
        return
    channel = path[4:]
    members = channels[channel]
    members.add(websocket)
    try:
        async for text in websocket:
            if isinstance(text, str):
                broadcast(members, envelope(channel, text))
    finally:
        members.discard(websocket)


async def main(host: str, port: int) -> None:
    async with serve(handler, host, port, compression=None) as server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    try:
        import uvloop  # uvicorn runs the other variants on uvloop; the ceiling gets it too
    except ImportError:
        asyncio.run(main(args.host, args.port))
    else:
        uvloop.run(main(args.host, args.port))
