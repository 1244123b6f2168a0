"""One connected WebSocket as the hub sees it: a non-blocking `offer` and a bounded backlog.

Fan-out calls `offer` for every client of a channel and never waits on a
socket. The common case costs no task switch: while nothing is queued for a
client, `offer` runs the ASGI send itself, and with uvicorn a send finishes
without suspending unless the connection's transport is pushing back (its
write buffer is over the high-water mark). Only then does the client get a
writer task, which finishes that send, drains the backlog in order and ends,
putting the client back on the direct path. This is what `websockets.broadcast()`
does (write now, never wait), plus the bound it lacks: a client whose backlog
is full, or whose socket takes longer than the send timeout for one frame, is
asked to close with 1013 (try again later).
"""

from __future__ import annotations

import asyncio
import logging
import struct
import types
from collections import deque
from collections.abc import Callable, Coroutine, Generator
from typing import Any

from fastapi import WebSocketDisconnect, status
from starlette.types import Message

logger = logging.getLogger(__name__)

# The close a client is asked for: (code, reason), or None when the peer is already gone.
Close = tuple[int, str] | None
Send = Callable[[Message], Coroutine[Any, Any, None]]
# True once the connection is known to be lost (the server transport's `is_closing`).
Gone = Callable[[], bool]
# Called once, with the close asked for, when a close is first asked for.
OnClose = Callable[[Close], None]
# Writes an already-framed WebSocket message straight to the connection; False
# (nothing written) when it cannot now and the ordinary `send` must be used.
WriteFrame = Callable[[bytes], bool]
# A send that could not complete at once: the coroutine, and what it awaits.
_Suspended = tuple[Coroutine[Any, Any, None], Any]


@types.coroutine
def _finish(step: Coroutine[Any, Any, None], waiting_on: Any) -> Generator[Any, Any]:
    """Await `step`, a coroutine already started by hand and suspended on `waiting_on`.

    `offer` runs a send's first step synchronously; when it suspends, a task
    takes over from here. This is what `await` itself does with a coroutine's
    later steps: pass each suspension up to the task, and each wake-up down.
    """
    while True:
        try:
            sent = yield waiting_on
        except GeneratorExit:
            step.close()
            raise
        except BaseException as exc:  # cancellation and errors go down to the send
            try:
                waiting_on = step.throw(exc)
            except StopIteration:
                return
        else:
            try:
                waiting_on = step.send(sent)
            except StopIteration:
                return


class Client:
    """A connection's outbound side; `offer` never blocks, `close` only asks."""

    def __init__(
        self,
        client_id: str,
        send: Send,
        *,
        queue_size: int,
        send_timeout: float,
        gone: Gone | None = None,
        write_frame: WriteFrame | None = None,
    ) -> None:
        self.id = client_id
        # The channels it is subscribed to; the hub keeps this in step.
        self.channels: set[str] = set()
        self._send = send
        self._gone = gone
        self._write_frame = write_frame
        self._queue_size = queue_size
        self._send_timeout = send_timeout
        self._backlog: deque[Message] = deque()
        self._writer: asyncio.Task[None] | None = None
        self._closing = False
        self._close: Close = None
        # Who serves the connection sets this to hear of a close asked for elsewhere.
        self.on_close: OnClose | None = None

    @property
    def backlog(self) -> int:
        """Messages waiting for this client's socket."""
        return len(self._backlog)

    @property
    def pushing_back(self) -> bool:
        """True while the socket pushes back and a writer task drains the backlog."""
        return self._writer is not None

    @property
    def closing(self) -> bool:
        """True once a close was asked for or the peer left."""
        return self._closing

    @property
    def close_requested(self) -> Close:
        """The close asked for first: (code, reason); None if none was, or the peer left."""
        return self._close

    def offer(self, message: Message, framed: bytes | None = None) -> None:
        """Send `message` now if the socket takes it, else queue it; never blocks.

        `framed` is the same message as a WebSocket frame (`text_frame`), made
        once for every client of a fan-out: written as it is when the
        connection allows, it saves each client the server's framing.
        A full backlog asks the client to close with 1013 instead.
        """
        if self._closing:
            return
        if self._writer is not None:
            if len(self._backlog) >= self._queue_size:
                self.close(
                    status.WS_1013_TRY_AGAIN_LATER,
                    f"too slow: {self._queue_size} messages behind",
                )
            else:
                self._backlog.append(message)
            return
        if self._gone is not None and self._gone():
            # A write already failed (the peer reset the connection), but the
            # server learns of it only in a later event-loop step. Writing on
            # would only make asyncio log a warning per frame.
            self.disconnected()
            return
        try:
            if framed is not None and self._write_frame is not None and self._write_frame(framed):
                return
            suspended = self._start(message)
        except Exception as exc:
            self._send_failed(exc)
            return
        if suspended is not None:
            self._writer = asyncio.get_running_loop().create_task(
                self._write_backlog(suspended), name=f"websocket writer {self.id}"
            )

    def close(self, code: int, reason: str) -> None:
        """Ask for the connection to be closed with `code`; the first request wins."""
        self._request((code, reason))

    def disconnected(self) -> None:
        """The peer has gone: nothing more can be sent."""
        self._request(None)

    async def stop_writing(self) -> None:
        """Cancel the writer task, if one runs, and wait for it to end."""
        writer = self._writer
        if writer is not None:
            writer.cancel()
            await asyncio.wait([writer])

    def _request(self, close: Close) -> None:
        self._backlog.clear()
        if self._closing:
            return
        self._closing = True
        self._close = close
        if self.on_close is not None:
            self.on_close(close)

    def _start(self, message: Message) -> _Suspended | None:
        """Run a send until it completes (None) or suspends (the send, and what it awaits)."""
        step = self._send(message)
        try:
            waiting_on = step.send(None)
        except StopIteration:
            return None  # written: the common case
        return step, waiting_on

    async def _write_backlog(self, first: _Suspended) -> None:
        """Finish a suspended send, then drain the backlog; a timeout only while waiting."""
        suspended: _Suspended | None = first
        try:
            while suspended is not None:
                async with asyncio.timeout(self._send_timeout):
                    await _finish(*suspended)
                # Once the socket takes frames again, most sends complete at
                # once: run them directly until one has to wait.
                suspended = None
                while suspended is None and self._backlog:
                    suspended = self._start(self._backlog.popleft())
        except TimeoutError:
            self.close(
                status.WS_1013_TRY_AGAIN_LATER,
                f"too slow: no frame written in {self._send_timeout:g}s",
            )
        except Exception as exc:
            self._send_failed(exc)
        finally:
            self._writer = None

    def _send_failed(self, exc: Exception) -> None:
        # Sending to a peer that has gone raises one of these, depending on
        # where the server noticed; that is an ordinary ending, not an error.
        if isinstance(exc, WebSocketDisconnect | OSError | RuntimeError):
            logger.debug(
                "client %s gone while sending: %r", self.id, exc, extra={"client_id": self.id}
            )
            self.disconnected()
        else:
            logger.exception("sending to client %s failed", self.id, extra={"client_id": self.id})
            self.close(status.WS_1011_INTERNAL_ERROR, "internal error")


def text_frame(text: str) -> bytes:
    """`text` as one WebSocket text frame from a server: FIN set, unmasked, no extension.

    RFC 6455 section 5.2: 0x81, then the payload length in 7 bits, or 126 and
    16 bits, or 127 and 64 bits (network byte order), then the UTF-8 payload.
    """
    payload = text.encode()
    size = len(payload)
    if size < 126:
        head = struct.pack("!BB", 0x81, size)
    elif size < 1 << 16:
        head = struct.pack("!BBH", 0x81, 126, size)
    else:
        head = struct.pack("!BBQ", 0x81, 127, size)
    return head + payload
