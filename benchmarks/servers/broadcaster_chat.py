"""Broadcaster: encode/broadcaster's README chat pattern on its in-memory backend.

https://github.com/encode/broadcaster#readme: per connection, a receiver task publishes what
the client sends and a sender iterates the subscription; the first to finish cancels the other.
Served by FastAPI, keyed by channel so it accepts the same URL shape as the service.

    uvicorn broadcaster_chat:app --app-dir benchmarks/servers --port 8003
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from broadcaster import Broadcast
from fastapi import FastAPI, WebSocket

broadcast = Broadcast("memory://")
sequence: dict[str, int] = {}


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with broadcast:
        yield


app = FastAPI(lifespan=lifespan)


@app.websocket("/ws/{channel}")
async def chatroom_ws(websocket: WebSocket, channel: str) -> None:
    await websocket.accept()

    async with anyio.create_task_group() as task_group:
        # run until first is complete
        async def run_chatroom_ws_receiver() -> None:
            await chatroom_ws_receiver(websocket, channel)
            task_group.cancel_scope.cancel()

        task_group.start_soon(run_chatroom_ws_receiver)
        await chatroom_ws_sender(websocket, channel)


async def chatroom_ws_receiver(websocket: WebSocket, channel: str) -> None:
    async for data in websocket.iter_text():
        seq = sequence[channel] = sequence.get(channel, 0) + 1
        message = f'{{"type":"message","channel":{json.dumps(channel)},"seq":{seq},"data":{data}}}'
        await broadcast.publish(channel=channel, message=message)


async def chatroom_ws_sender(websocket: WebSocket, channel: str) -> None:
    async with broadcast.subscribe(channel=channel) as subscriber:
        async for event in subscriber:  # type: ignore[union-attr]
            await websocket.send_text(event.message)  # type: ignore[union-attr]
