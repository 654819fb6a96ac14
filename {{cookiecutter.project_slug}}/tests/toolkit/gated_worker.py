"""`python -m tests.toolkit.gated_worker`: the service's worker, its state store behind a gate.

The same worker as the service's own `worker` command (settings, signals, drain, exit
code), except that the store its activities use is a `GatedStore` configured from the
environment (`Gate.env()`, see tests/toolkit/gate.py). Tests start it with
`start_worker(env, gate=...)`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys

from {{ cookiecutter.package_name }}.app import (
    SERVICE,
)
from {{ cookiecutter.package_name }}.runtime.logs import (
    configure_logging,
)
from {{ cookiecutter.package_name }}.runtime.settings import (
    load_settings,
)
from {{ cookiecutter.package_name }}.runtime.store import (
    StateStore,
)
from {{ cookiecutter.package_name }}.runtime.worker import (
    run_worker,
)

from .gate import Gate, GatedStore


def main() -> int:
    settings = load_settings(SERVICE.settings)
    configure_logging(settings.log_level, settings.log_format)
    gate = Gate.from_env()

    def gated(store: StateStore) -> StateStore:
        return GatedStore(store, gate)

    asyncio.run(run_worker(SERVICE, settings, wrap_store=gated))
    return 0


if __name__ == "__main__":
    code = main()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # as the service's own cli(): no interpreter finalisation (sdk-python #300)
