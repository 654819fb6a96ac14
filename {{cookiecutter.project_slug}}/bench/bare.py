"""`python -m bench.bare`: the sample's workflows and activities on a bare SDK worker.

What the scale run compares the service's worker with: the same `register` (app.py), the
same settings, store and process pool, but none of the template's machinery around them:
no interceptors (the loop watchdog, tracing), no metrics runtime or health server, no
signal-driven drain, the SDK's default heartbeat throttling, and checkpoints off. Whatever
the service's worker costs beyond this one is the price of that machinery.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.envconfig import ClientConfig
from temporalio.worker import Worker

from {{ cookiecutter.package_name }}.app import (
    Settings,
    register,
)
from {{ cookiecutter.package_name }}.runtime.pool import (
    CpuPool,
)
from {{ cookiecutter.package_name }}.runtime.settings import (
    load_settings,
)

NEVER = 10**9  # checkpoint interval (items, seconds): no save in any run


async def main() -> None:
    settings = load_settings(Settings).model_copy(
        update={"checkpoint_every_items": NEVER, "checkpoint_every_seconds": NEVER}
    )
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    config = ClientConfig.load_client_connect_config()
    client = await Client.connect(
        **config, identity=settings.identity or "bare", data_converter=pydantic_data_converter
    )
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    with CpuPool(settings.cpu_processes) as pool:
        await pool.warm_up()  # as the service's worker does: no process start in a run
        async with settings.open_store() as store:
            registration = register(settings, store, pool)
            worker = Worker(
                client,
                task_queue=settings.task_queue,
                workflows=registration.workflows,
                activities=registration.activities,
            )
            async with worker:
                logging.info("worker started (bare SDK worker)")
                await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())
