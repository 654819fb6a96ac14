"""A real HTTP server for tests: documents, slow pages, error codes and flaky pages.

Routes (all GET; a query string is ignored, so `?copy` gives the same body at a new URL):
    /doc/<name>                 the text "document <name> ..." (200)
    /slow/<milliseconds>/<name> the same document after a delay
    /copy/<name>/<tag>          the same document as /doc/<name>, at another URL
    /words/<count>/<seed>       <count> pseudo-random words, the same for the same seed
    /near/<count>/<seed>        the words of /words/<count>/<seed> with every 40th one changed
    /status/<code>              an empty response with that status code
    /flaky/<failures>/<key>     503 for the first <failures> requests of <key>, then 200
    /gate/<name>                the document, once the test calls `open_gate(name)`: while it
                                waits, the request is certainly in flight (`hits` says it came)
    /hold/<n>/<name>            the document, once <n> requests of the group of <name> (see
                                `_group`) wait here together: they are answered n at a time,
                                so n were certainly in flight at once (504 if the others never
                                come: a guard for a broken test only)
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def document_text(name: str) -> str:
    return f"document {name} has exactly seven words here"


def random_words(count: int, seed: str, *, change_every: int = 0) -> str:
    """`count` words drawn from a 5,000-word vocabulary, reproducible from `seed`."""
    rng = random.Random(seed)  # noqa: S311 (reproducible test data)
    words = [f"w{rng.randrange(5000)}" for _ in range(count)]
    if change_every:
        words = [f"changed{i}" if i % change_every == 0 else w for i, w in enumerate(words)]
    return " ".join(words)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # the default listen backlog (5) stalls bursts of connections


HOLD_GUARD_SECONDS = 120.0  # how long /hold waits for the rest of its group: a broken test


def _group(path: str) -> str:
    """Requests are counted by group: the last path segment up to its first "-"."""
    return path.rstrip("/").rsplit("/", 1)[-1].split("-", 1)[0]


class LocalSite:
    """Serves the routes above on 127.0.0.1 in a background thread; records what it saw."""

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.in_flight: Counter[str] = Counter()
        self.max_in_flight: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._gates: dict[str, threading.Event] = {}
        self._holds: dict[str, threading.Barrier] = {}
        self._server = _Server(("127.0.0.1", 0), self._handler_class())
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> LocalSite:
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._lock:
            gates = list(self._gates.values())
        for gate in gates:  # no request thread is left waiting
            gate.set()
        with self._lock:
            holds = list(self._holds.values())
        for hold in holds:
            hold.abort()
        self._server.shutdown()
        self._server.server_close()

    def gate(self, name: str) -> threading.Event:
        with self._lock:
            return self._gates.setdefault(name, threading.Event())

    def open_gate(self, name: str) -> None:
        """Let the requests for /gate/<name> (waiting now, or later) have their answer."""
        self.gate(name).set()

    def hold(self, group: str, parties: int) -> threading.Barrier:
        """Where /hold requests of `group` wait; the first request's `parties` counts."""
        with self._lock:
            return self._holds.setdefault(
                group, threading.Barrier(parties, timeout=HOLD_GUARD_SECONDS)
            )

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    def _enter(self, path: str) -> None:
        group = _group(path)
        with self._lock:
            self.hits[path] += 1
            self.in_flight[group] += 1
            self.max_in_flight[group] = max(self.max_in_flight[group], self.in_flight[group])

    def _leave(self, path: str) -> None:
        with self._lock:
            self.in_flight[_group(path)] -= 1

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        site = self

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True  # headers and body go out at once, no 40 ms stall

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                site._enter(self.path)
                try:
                    status, text = self._route(self.path.split("?", 1)[0].strip("/").split("/"))
                finally:
                    # Before the answer goes out: once the client has it, it may send its next
                    # request, which must never find this one still counted as in flight.
                    site._leave(self.path)
                self._send(status, text)

            def _route(self, parts: list[str]) -> tuple[int, str]:
                match parts:
                    case ["doc", name]:
                        return 200, document_text(name)
                    case ["copy", name, _tag]:
                        return 200, document_text(name)
                    case ["words", count, seed]:
                        return 200, random_words(int(count), seed)
                    case ["near", count, seed]:
                        return 200, random_words(int(count), seed, change_every=40)
                    case ["slow", millis, name]:
                        time.sleep(int(millis) / 1000)
                        return 200, document_text(name)
                    case ["gate", name]:
                        if site.gate(name).wait(timeout=300):  # a bound for a broken test only
                            return 200, document_text(name)
                        else:
                            return 504, "the test never opened the gate"
                    case ["hold", parties, name]:
                        try:
                            site.hold(_group(name), int(parties)).wait()
                        except threading.BrokenBarrierError:
                            return 504, "the rest of the group never came"
                        else:
                            return 200, document_text(name)
                    case ["status", code]:
                        return int(code), ""
                    case ["flaky", failures, key]:
                        seen = site.hits[self.path]
                        if seen <= int(failures):
                            return 503, "try again"
                        else:
                            return 200, document_text(key)
                    case _:
                        return 404, "no such route"

            def _send(self, status: int, text: str) -> None:
                body = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler


if __name__ == "__main__":  # serve in a process of its own: `python -m tests.toolkit.http_site`
    server = LocalSite()
    print(server.base_url, flush=True)
    server._server.serve_forever()
