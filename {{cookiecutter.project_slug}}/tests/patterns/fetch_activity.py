"""The async I/O activity, copied alone: a batch fetched from a local site, at most 2 at once.

Run by tests/test_patterns.py in a venv holding only the files and dependencies that
docs/patterns.md lists, with the package copied as `yourpackage`. Deliberately thin: it
calls the activity as the worker would, through `ActivityEnvironment`.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from temporalio.testing import ActivityEnvironment
from yourpackage.pipeline.activities.fetch import FetchActivities
from yourpackage.pipeline.models import FetchRequest, FetchResult, body_key
from yourpackage.runtime.http import FetchPolicy, parse_networks
from yourpackage.runtime.store import SqliteStateStore

CONCURRENCY = 2


class Site(BaseHTTPRequestHandler):
    """`/doc/<n>` after 0.1 s; anything else is 404. Counts requests in flight."""

    lock = threading.Lock()
    in_flight = 0
    most_in_flight = 0

    def do_GET(self) -> None:
        with Site.lock:
            Site.in_flight += 1
            Site.most_in_flight = max(Site.most_in_flight, Site.in_flight)
        try:
            time.sleep(0.1)
        finally:
            # Before the answer goes out: once the client has it, it may send its next
            # request, which must never find this one still counted (seen 3 of 2 on a busy
            # machine, when the answer went first).
            with Site.lock:
                Site.in_flight -= 1
        if not self.path.startswith("/doc/"):
            self.send_error(404)
            return
        body = f"document {self.path} has a few words".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


async def main(db: str) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Site)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    refused = base.replace("127.0.0.1", "127.0.0.2")  # loopback, but not in the allow-list
    urls = [f"{base}/doc/{i}" for i in range(6)] + [f"{base}/missing", "ftp://nowhere/x", refused]
    try:
        async with SqliteStateStore(db) as store:
            # The site is on 127.0.0.1: the guarded GET refuses loopback unless allowed.
            policy = FetchPolicy(
                timeout_seconds=5,
                max_bytes=10_000,
                allowed_networks=parse_networks(["127.0.0.1/32"]),
            )
            fetch = FetchActivities(store, policy=policy, concurrency=CONCURRENCY, retries=1)
            request = FetchRequest(urls=urls, documents_key="documents:smoke")
            summary = await ActivityEnvironment().run(fetch.fetch_documents, request)
            assert (summary.fetched, summary.failed) == (6, 3), summary
            stored = await store.get(request.documents_key)  # the lists: in the store
            assert stored is not None
            result = FetchResult.model_validate_json(stored)
            assert [d.url for d in result.documents] == urls[:6]
            assert [f.url for f in result.failed] == urls[6:], result.failed
            assert result.failed[2].reason == "address 127.0.0.2 is loopback, not allowed"
            for document in result.documents:
                body = await store.get(body_key(document.sha256))
                assert body is not None
                assert hashlib.sha256(body).hexdigest() == document.sha256
                assert document.words == 6
    finally:
        server.shutdown()
    assert 1 <= Site.most_in_flight <= CONCURRENCY, Site.most_in_flight


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
    print("ok", flush=True)
    os._exit(0)  # skip finalisation, where the SDK's threads can crash (sdk-python issue 300)
