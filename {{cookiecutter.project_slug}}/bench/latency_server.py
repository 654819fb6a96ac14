"""A minimal asyncio HTTP/1.1 server that answers every GET after a fixed delay.

The fetch benchmark measures the activity, not a test server: this one costs far less
CPU per request than `http.server` (no thread per connection, keep-alive), so on a small
machine the numbers show the client's overhead. Run: `python -m bench.latency_server MS`.

With a word count (`python -m bench.latency_server MS WORDS`) each path gets a document of
that many pseudo-random words seeded by the path (`tests.toolkit.http_site.random_words`), and a
path ending in `/near` gets a near-duplicate of the path without it: the scale run's corpus.
"""

from __future__ import annotations

import asyncio
import sys


def document(path: str, words: int) -> bytes:
    from tests.toolkit.http_site import random_words

    seed, near = path.removesuffix("/near"), path.endswith("/near")
    return random_words(words, seed, change_every=40 if near else 0).encode()


async def serve(delay: float, words: int = 0) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while request := await reader.readuntil(b"\r\n\r\n"):
                path = request.split(b" ", 2)[1]
                await asyncio.sleep(delay)
                if words:
                    body = document(path.decode(), words)
                else:
                    body = b"document " + path + b" served after a delay"
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
    print(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1]) / 1000, int(sys.argv[2]) if len(sys.argv) > 2 else 0))
