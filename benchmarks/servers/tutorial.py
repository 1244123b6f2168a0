"""Tutorial: FastAPI's documented ConnectionManager pattern, a list of sockets sent to in turn.

From https://fastapi.tiangolo.com/advanced/websockets/#handling-disconnections-and-multiple-clients,
keyed by channel so it accepts the same URL shape as the service. One `await send_text()` per
client per message, in order: one client that stops reading stalls every other one.

    uvicorn tutorial:app --app-dir benchmarks/servers --port 8002
"""

from __future__ import annotations

import json

from fastapi import FastAPI, WebSocket, WebSocketDisconnect


class ConnectionManager:
    def __init__(self) -> None:
        self.active_connections: dict[str, list[WebSocket]] = {}
        self.sequence: dict[str, int] = {}

    async def connect(self, websocket: WebSocket, channel: str) -> None:
        await websocket.accept()
        self.active_connections.setdefault(channel, []).append(websocket)

    def disconnect(self, websocket: WebSocket, channel: str) -> None:
        self.active_connections[channel].remove(websocket)

    async def broadcast(self, channel: str, data: str) -> None:
        seq = self.sequence[channel] = self.sequence.get(channel, 0) + 1
        message = f'{{"type":"message","channel":{json.dumps(channel)},"seq":{seq},"data":{data}}}'
        for connection in self.active_connections[channel]:
            await connection.send_text(message)


manager = ConnectionManager()
app = FastAPI()


@app.websocket("/ws/{channel}")
async def websocket_endpoint(websocket: WebSocket, channel: str) -> None:
    await manager.connect(websocket, channel)
    try:
        while True:
            data = await websocket.receive_text()
            await manager.broadcast(channel, data)
    except WebSocketDisconnect:
        manager.disconnect(websocket, channel)
