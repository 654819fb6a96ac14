"""Record tests/minimal/histories/stats.json: a run of `StatsWorkflow` on a fresh dev server
(tests/toolkit/history.py).

Run it with `make history` (`python -m tests.minimal.record_history`) after an intended
change to the workflow code, once no old workflows are running.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowHandle

from {{ cookiecutter.package_name }}.minimal.models import (
    StatsRequest,
)
from {{ cookiecutter.package_name }}.minimal.workflows import (
    StatsWorkflow,
)

from ..toolkit.history import record
from ..toolkit.http_site import LocalSite

HISTORIES = Path(__file__).parent / "histories"


async def main() -> None:
    site = LocalSite().start()

    async def run(client: Client, task_queue: str) -> dict[str, WorkflowHandle[Any, Any]]:
        urls = [site.url("doc/a"), site.url("status/404"), site.url("doc/b")]
        handle = await client.start_workflow(
            StatsWorkflow.run,
            StatsRequest(urls=urls, rounds=2),
            id="recorded-stats",
            task_queue=task_queue,
        )
        await handle.result()
        return {"stats": handle}

    try:
        await record(HISTORIES, run)
    finally:
        site.stop()


if __name__ == "__main__":
    asyncio.run(main())
