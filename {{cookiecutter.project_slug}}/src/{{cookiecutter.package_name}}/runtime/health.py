"""Health endpoints for Kubernetes probes: `/healthz` (liveness) and `/readyz` (readiness).

    async with await start_health_server(8080, ready=lambda: worker.is_running and not draining,
                                         host="127.0.0.1"):
        ...

`/healthz` answers 200 as long as the event loop runs: the answer comes from the loop
itself, so a loop blocked by synchronous code (the usual cause of heartbeat timeouts)
fails the probe by not answering. `/readyz` answers 200 while `ready()` is true and 503
otherwise (still connecting, or draining after SIGTERM): a draining worker stays alive,
but is no longer counted as available. GET and HEAD only, no keep-alive, standard library
only, so this module can be copied into another project on its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from http import HTTPStatus

READ_TIMEOUT_SECONDS = 5.0
MAX_REQUEST_BYTES = 8192


async def start_health_server(
    port: int,
    ready: Callable[[], bool],
    host: str = "127.0.0.1",
) -> asyncio.Server:
    """Serve the endpoints on `host:port` (0: any free port) until the server is closed.

    `host` is this machine only by default; a container passes `0.0.0.0` or `::` (every
    IPv6 address, and IPv4 too where the system maps it), so that the kubelet's probes
    reach it (the worker takes it from the `listen_host` setting).

    The server is an async context manager that closes it. Raises OSError if the port
    cannot be bound (in use, or not allowed).
    """

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT_SECONDS)
            method, path = _request_line(head)
            status, body = _answer(method, path, ready)
            writer.write(_response(status, body, with_body=method != "HEAD"))
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            pass  # a client that hung up or sent garbage gets nothing
        finally:
            writer.close()

    return await asyncio.start_server(handle, host, port, limit=MAX_REQUEST_BYTES)


def _request_line(head: bytes) -> tuple[str, str]:
    parts = head.split(b"\r\n", 1)[0].decode("latin-1").split()
    if len(parts) != 3:
        return "", ""
    return parts[0], parts[1].split("?", 1)[0]


def _answer(method: str, path: str, ready: Callable[[], bool]) -> tuple[HTTPStatus, bytes]:
    if not method:
        return HTTPStatus.BAD_REQUEST, b"bad request\n"
    if method not in ("GET", "HEAD"):
        return HTTPStatus.METHOD_NOT_ALLOWED, b"GET or HEAD\n"
    if path == "/healthz":
        return HTTPStatus.OK, b"ok\n"
    if path == "/readyz":
        if ready():
            return HTTPStatus.OK, b"ready\n"
        return HTTPStatus.SERVICE_UNAVAILABLE, b"not ready\n"
    return HTTPStatus.NOT_FOUND, b"/healthz or /readyz\n"


def _response(status: HTTPStatus, body: bytes, *, with_body: bool) -> bytes:
    head = (
        f"HTTP/1.1 {status.value} {status.phrase}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("ascii") + (body if with_body else b"")
