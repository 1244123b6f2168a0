"""A prefix-stripping reverse proxy (as Traefik StripPrefix or Caddy handle_path): /realtime/x -> /x,
/realtime -> /; any other path gets 404 from the 'site'. usage: strip_proxy.py listen_port upstream_port"""

import asyncio
import sys

LISTEN, UP = int(sys.argv[1]), int(sys.argv[2])
PREFIX = b"/realtime"


async def pipe(r, w):
    try:
        while data := await r.read(65536):
            w.write(data)
            await w.drain()
    except Exception:
        pass
    finally:
        w.close()


async def handle(cr, cw):
    line = await cr.readline()
    method, target, version = line.split(b" ", 2)
    print("proxy:", method.decode(), target.decode(), flush=True)
    if target == PREFIX or target.startswith((PREFIX + b"/", PREFIX + b"?")):
        target = target[len(PREFIX) :] or b"/"
        if target.startswith(b"?"):
            target = b"/" + target
    else:
        cw.write(b"HTTP/1.1 404 Not Found\r\ncontent-length: 9\r\nconnection: close\r\n\r\nnot found")
        await cw.drain()
        cw.close()
        return
    ur, uw = await asyncio.open_connection("127.0.0.1", UP)
    uw.write(b" ".join((method, target, version)))
    await asyncio.gather(pipe(cr, uw), pipe(ur, cw))


async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", LISTEN)
    async with server:
        await server.serve_forever()


asyncio.run(main())
