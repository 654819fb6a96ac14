"""A hostile HTTP server for tests: every way one URL can misbehave, on loopback only.

It listens on 127.0.0.1 and on 127.0.0.2 (same port), so a redirect can lead to a second
loopback address that the tests' allow-list (127.0.0.1/32) leaves out. It speaks HTTP/1.1
by hand on asyncio streams (its own thread and loop), so it can send what no well-behaved
server library would. One request per connection. Routes (GET):

    /good/<name>            the text of tests/toolkit/http_site.py's /doc/<name> (200)
    /hops/<n>/<name>        <n> redirects (n >= 1), the last one to /good/<name>
    /loop/<n>               a redirect to /loop/<n+1>, for ever
    /to-other/<name>        a redirect to /good/<name> on 127.0.0.2
    /gzip/<name>            the /good/<name> document, gzipped (a good compressed body)
    /fake-gzip/<name>       `Content-Encoding: gzip` on a plain body
    /bomb                   one gzip layer over `bomb_bytes` zero bytes (~1 KB per MB)
    /nested-bomb            `Content-Encoding: gzip, gzip`: the bomb gzipped once more
    /brotli                 `Content-Encoding: br`
    /charset/<name>         the document with `charset=x-no-such-charset`
    /slow                   a 100,000-byte body, one byte a second
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import struct
import threading
import zlib
from collections import Counter

from .http_site import document_text

SECOND_HOST = "127.0.0.2"
UNKNOWN_CHARSET = "x-no-such-charset"


def gzip_zeros(size: int) -> bytes:
    """A gzip stream of `size` zero bytes, made without holding them all in memory.

    One MiB of zeros is compressed once, then repeated: a full flush ends it byte-aligned and
    with no reference to anything before it. (Compressing all 256 MiB took 1.5 s of CPU in
    every xdist worker; the CRC of the zeros, the only pass over them, takes 0.1 s.)
    """
    mib = bytes(1 << 20)
    whole, rest = divmod(size, len(mib))
    deflate = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)  # raw: the gzip frame is ours
    block = deflate.compress(mib) + deflate.flush(zlib.Z_FULL_FLUSH)
    end = deflate.compress(bytes(rest)) + deflate.flush()
    crc = 0
    for _ in range(whole):
        crc = zlib.crc32(mib, crc)
    crc = zlib.crc32(bytes(rest), crc)
    header = bytes([0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 2, 255])  # deflate; no name, time or flags
    return header + block * whole + end + struct.pack("<II", crc, size & 0xFFFFFFFF)


class HostileSite:
    """Start with `start()`, stop with `stop()`; `url(path)` on 127.0.0.1, `url(path,
    host=SECOND_HOST)` on 127.0.0.2; `hits` counts requests per path."""

    def __init__(self, *, bomb_bytes: int = 256 << 20) -> None:
        self.bomb_bytes = bomb_bytes
        self.bomb = gzip_zeros(bomb_bytes)
        self.nested_bomb = gzip.compress(self.bomb)
        self.hits: Counter[str] = Counter()
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._servers: list[asyncio.Server] = []
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def start(self) -> HostileSite:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(timeout=30)
        return self

    def stop(self) -> None:
        async def close() -> None:
            for server in self._servers:
                server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}/{path.lstrip('/')}"

    async def _listen(self) -> None:
        for _ in range(20):  # the port free on 127.0.0.1 may be taken on 127.0.0.2
            first = await asyncio.start_server(self._serve, "127.0.0.1", 0)
            port = first.sockets[0].getsockname()[1]
            try:
                second = await asyncio.start_server(self._serve, SECOND_HOST, port)
            except OSError:
                first.close()
                continue
            self._servers, self.port = [first, second], port
            return
        raise AssertionError("no port free on both 127.0.0.1 and 127.0.0.2")

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await reader.readuntil(b"\r\n\r\n")
            path = request.split(b" ", 2)[1].decode("latin-1")
            self.hits[path] = self.hits[path] + 1
            await self._route(path.strip("/").split("/"), reader, writer)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, IndexError):
            pass  # the client went away (it is allowed to: that is what is tested)
        except asyncio.CancelledError:
            pass  # `stop()`: end quietly (Python 3.11's streams log a cancelled handler)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _route(
        self, parts: list[str], reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        match parts:
            case ["good", name]:
                await _send(writer, 200, document_text(name).encode())
            case ["hops", count, name]:
                left = int(count)
                to = f"/hops/{left - 1}/{name}" if left > 1 else f"/good/{name}"
                await _send(writer, 302, b"", Location=to)
            case ["loop", count]:
                await _send(writer, 302, b"", Location=f"/loop/{int(count) + 1}")
            case ["to-other", name]:
                await _send(writer, 302, b"", Location=self.url(f"good/{name}", SECOND_HOST))
            case ["gzip", name]:
                packed = gzip.compress(document_text(name).encode())
                await _send(writer, 200, packed, **{"Content-Encoding": "gzip"})
            case ["fake-gzip", name]:
                plain = document_text(name).encode()
                await _send(writer, 200, plain, **{"Content-Encoding": "gzip"})
            case ["bomb"]:
                await _send(writer, 200, self.bomb, **{"Content-Encoding": "gzip"})
            case ["nested-bomb"]:
                await _send(writer, 200, self.nested_bomb, **{"Content-Encoding": "gzip, gzip"})
            case ["brotli"]:
                await _send(writer, 200, b"\x1b\x03\x00\xf8", **{"Content-Encoding": "br"})
            case ["charset", name]:
                content_type = f"text/plain; charset={UNKNOWN_CHARSET}"
                body = document_text(name).encode()
                await _send(writer, 200, body, **{"Content-Type": content_type})
            case ["slow"]:
                await _head(writer, 200, **{"Content-Length": "100000"})
                for _ in range(100_000):
                    if reader.at_eof() or writer.is_closing():
                        return  # the client gave up
                    writer.write(b"x")
                    await writer.drain()
                    await asyncio.sleep(1)
            case _:
                await _send(writer, 404, b"not here")


async def _head(writer: asyncio.StreamWriter, status: int, **headers: str) -> None:
    fields = {"Content-Type": "text/plain; charset=utf-8", "Connection": "close", **headers}
    lines = [f"HTTP/1.1 {status} X", *(f"{k}: {v}" for k, v in fields.items()), "", ""]
    writer.write("\r\n".join(lines).encode("latin-1"))
    await writer.drain()


async def _send(writer: asyncio.StreamWriter, status: int, body: bytes, **headers: str) -> None:
    await _head(writer, status, **{"Content-Length": str(len(body)), **headers})
    writer.write(body)
    await writer.drain()
