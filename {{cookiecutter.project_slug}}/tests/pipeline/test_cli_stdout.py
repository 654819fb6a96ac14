"""`run --json` prints only the document on stdout, even while the Temporal server restarts.

While `run` waits for the workflow, the server is killed (kill -9) and restarted on the same
port and database file. Meanwhile the SDK Core retries its calls and warns about it
(`gRPC call query_workflow retried 5 times`); those lines must reach stderr in the service's
log format (`metrics.core_logging`), never stdout, so that `run --json | jq` keeps working.

The test runs a server, a worker and `run` of its own (not the session's server, which other
tests share). Nothing depends on speed: the workflow's only URL is held at a local HTTP gate
until the server is back, so the workflow cannot finish before or during the outage, and
the server stays down until both `run` and the worker have logged a retry warning.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import sys
import threading
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from ..conftest import PACKAGE, TEMPORAL_CLI, free_port, service_env

# The SDK Core warns from a call's 5th attempt, about 1 s into an outage, and gives up on
# the call after about 10 s (`run` would then fail): the outage ends well before that.
MAX_OUTAGE_SECONDS = 6.0
STARTUP_SECONDS = 60.0
GATE_SECONDS = 120.0  # the gate opens by itself after this, should the test not open it
PROGRESS_LINE = re.compile(r"^  [a-z_]+: \d+/\d+ [A-Za-z]+$", re.MULTILINE)  # not a terminal
RETRIED = re.compile(r"gRPC call \w+ retried \d+ times")
# A plain log line (logs.PLAIN_FORMAT) from the SDK Core: time, level, the Core's logger.
PLAIN_CORE_WARNING = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} WARNING temporalio\.core-sdk_core::\S+: "
    + RETRIED.pattern,
    re.MULTILINE,
)


class Gate:
    """An HTTP server on 127.0.0.1 whose every GET waits until `open()`, then answers."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self._open = threading.Event()
        gate = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                gate.entered.set()
                gate._open.wait(GATE_SECONDS)
                body = b"a document held back until the server was back"
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/gate"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def open(self) -> None:
        self._open.set()

    def close(self) -> None:
        self.open()
        self._server.shutdown()
        self._server.server_close()


class Child:
    """A subprocess in a process group of its own; stdout and stderr read as they come."""

    def __init__(self, name: str, process: asyncio.subprocess.Process) -> None:
        self.name = name
        self.process = process
        self.stdout = bytearray()
        self.stderr = bytearray()
        assert process.stdout is not None
        assert process.stderr is not None
        self._readers = [
            asyncio.create_task(self._drain(process.stdout, self.stdout)),
            asyncio.create_task(self._drain(process.stderr, self.stderr)),
        ]

    @staticmethod
    async def _drain(stream: asyncio.StreamReader, into: bytearray) -> None:
        while chunk := await stream.read(65536):
            into.extend(chunk)

    @property
    def out(self) -> str:
        return self.stdout.decode(errors="replace")

    @property
    def err(self) -> str:
        return self.stderr.decode(errors="replace")

    @property
    def running(self) -> bool:
        return self.process.returncode is None

    def report(self) -> str:
        state = "running" if self.running else f"exit code {self.process.returncode}"
        return (
            f"\n--- {self.name} ({state}), stdout:\n{self.out}"
            f"\n--- {self.name}, stderr:\n{self.err}"
        )

    async def finish(self, timeout: float) -> int | None:
        """The exit code once the process exited and its output is read; None on timeout."""
        try:
            await asyncio.wait_for(self.process.wait(), timeout)
            await asyncio.wait_for(asyncio.gather(*self._readers), 10)
        except TimeoutError:
            return None
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL to the process and everything in its group (a worker's pool processes)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)

    async def stop(self, grace: float = 15.0) -> None:
        """SIGTERM; SIGKILL to the group after `grace` (or at once if it is already gone)."""
        if self.running:
            with contextlib.suppress(ProcessLookupError):
                self.process.terminate()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.process.wait(), grace)
        self.kill()
        await self.process.wait()
        for reader in self._readers:
            reader.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)


class Children:
    """Every process the test started: each one is in every failure message, and stopped."""

    def __init__(self) -> None:
        self.started: list[Child] = []

    async def start(self, name: str, *args: str | Path, env: dict[str, str] | None = None) -> Child:
        process = await asyncio.create_subprocess_exec(
            *args,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        child = Child(name, process)
        self.started.append(child)
        return child

    def report(self) -> str:
        return "".join(child.report() for child in self.started)

    async def wait_for(
        self, what: str, found: Callable[[], object], timeout: float, *alive: Child
    ) -> None:
        """Poll `found()` until true; fail on timeout or if one of `alive` exits."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not found():
            for child in alive:
                assert child.running, f"{child.name} exited before {what}" + self.report()
            assert loop.time() < deadline, f"no {what} after {timeout:g}s" + self.report()
            await asyncio.sleep(0.05)

    async def stop_all(self) -> None:
        for child in reversed(self.started):
            await child.stop()


async def start_server(children: Children, name: str, port: int, db_file: Path) -> Child:
    """`temporal server start-dev` on 127.0.0.1:`port` with its state in `db_file`."""
    server = await children.start(
        name,
        TEMPORAL_CLI,
        *("server", "start-dev", "--headless", "--ip", "127.0.0.1", "--port", str(port)),
        *("--db-filename", str(db_file), "--log-level", "error"),
    )

    def accepting() -> bool:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return True
        return False

    await children.wait_for(f"{name} listening", accepting, STARTUP_SECONDS, server)
    return server


def json_core_warnings(stderr: str) -> list[dict[str, Any]]:
    """The SDK Core's retry warnings among the JSON log lines (logs.JsonFormatter)."""
    found = []
    for line in stderr.split("\n")[:-1]:  # whole lines only: the last may be half written
        if line.startswith("{"):
            record = json.loads(line)
            if (
                record["level"] == "WARNING"
                and record["logger"].startswith("temporalio.core-sdk_core::")
                and RETRIED.match(record["message"])
            ):
                found.append(record)
    return found


@pytest.mark.slow(seconds=8)  # a server outage while `run` waits
async def test_run_json_stdout_is_one_document_across_a_server_restart(tmp_path: Path) -> None:
    port = free_port()
    db_file = tmp_path / "temporal.db"
    workflow_id = f"stdout-{uuid.uuid4().hex[:8]}"
    address = f"127.0.0.1:{port}"
    settings: dict[str, object] = {
        "task_queue": f"stdout-{uuid.uuid4().hex[:8]}",
        "state_store_url": f"sqlite:///{tmp_path / 'state.db'}",
        "fetch_timeout_seconds": GATE_SECONDS,
    }
    # One process logs in each format: the Core's lines must come out right in both.
    worker_env = service_env(
        address, **settings, log_format="plain", cpu_processes=1, graceful_shutdown_seconds=2
    )
    run_env = service_env(address, **settings, log_format="json")
    gate = Gate()
    children = Children()
    try:
        server = await start_server(children, "temporal server", port, db_file)
        worker = await children.start(
            "worker", sys.executable, "-m", PACKAGE, "worker", env=worker_env
        )
        await children.wait_for(
            "'worker started'", lambda: "worker started" in worker.err, 60, worker
        )
        run = await children.start(
            "run",
            *(sys.executable, "-m", PACKAGE, "run", "--json", "--workflow-id", workflow_id),
            gate.url,
            env=run_env,
        )
        # The workflow is running (its fetch waits at the gate) and `run` polls its progress.
        await children.wait_for("fetch at the gate", gate.entered.is_set, STARTUP_SECONDS, run)
        await children.wait_for("progress line", lambda: PROGRESS_LINE.search(run.err), 30, run)

        server.kill()
        assert await server.finish(10) is not None, children.report()
        # Down until both logged a retry: `run` (its progress queries, its wait for the
        # result) and the worker (the held activity's heartbeats, its polls).
        loop = asyncio.get_running_loop()
        outage_ends = loop.time() + MAX_OUTAGE_SECONDS
        await children.wait_for(
            "retry warning from run",
            lambda: json_core_warnings(run.err),
            outage_ends - loop.time(),
            run,
        )
        await children.wait_for(
            "retry warning from the worker",
            lambda: PLAIN_CORE_WARNING.search(worker.err),
            outage_ends - loop.time(),
            run,
            worker,
        )
        await start_server(children, "temporal server (restarted)", port, db_file)
        gate.open()

        code = await run.finish(60)
        assert code == 0, f"run exit code {code}" + children.report()
        try:
            document = json.loads(run.out)  # the whole of stdout: one document, nothing else
        except json.JSONDecodeError as exc:
            raise AssertionError(
                f"stdout is not one JSON document: {exc}" + children.report()
            ) from None
        assert document["workflow_id"] == workflow_id, children.report()
        assert [d["url"] for d in document["documents"]] == [gate.url], children.report()
        assert "\x1b" not in run.err + worker.err, children.report()  # no colour codes
    finally:
        gate.open()
        await children.stop_all()
        gate.close()
