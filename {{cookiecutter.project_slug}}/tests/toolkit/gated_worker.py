"""`python -m tests.toolkit.gated_worker [module:attribute]`: a worker of any `Service`,
its state store behind a gate.

The same worker as the service's own `worker` command (settings, signals, drain, exit
code; `runtime.worker.run_worker`), with two differences a test needs:

- it runs the `Service` named on the command line (default `<package>.app:SERVICE`), so
  a runtime test can run a test-only service (tests/runtime/probe.py:SERVICE);
- if the environment names a gate (`Gate.env()`, see tests/toolkit/gate.py), the store its
  activities use is a `GatedStore`.

Tests start it through `WorkerProcess.start(env, gate=..., service=...)`
(tests/toolkit/worker.py); the drill does too (drill/cluster.py).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from {{ cookiecutter.package_name }}.runtime.worker import (
        Service,
    )

# The service's imports are inside the functions, as in the package's __main__.py: each pool
# process of this worker imports this module first (spawn's `__mp_main__`), and with them up
# here it paid the whole worker stack, about a second of CPU, before its first chunk.
log = logging.getLogger("tests.toolkit.gated_worker")


def load_service(spec: str) -> Service[Any]:
    """The `Service` at "module:attribute" (e.g. `tests.runtime.probe:SERVICE`)."""
    import importlib

    from {{ cookiecutter.package_name }}.runtime.worker import (
        Service,
    )

    module_name, _, attribute = spec.partition(":")
    service = getattr(importlib.import_module(module_name), attribute or "SERVICE")
    if not isinstance(service, Service):
        raise TypeError(f"{spec} is a {type(service).__name__}, not a Service")
    return service


def main(argv: list[str] | None = None) -> int:
    import asyncio

    from {{ cookiecutter.package_name }}.runtime.client import (
        TemporalUnreachableError,
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
        StartError,
        run_worker,
    )

    from .gate import Gate, GatedStore
    from .processes import PACKAGE

    parser = argparse.ArgumentParser(prog="python -m tests.toolkit.gated_worker")
    parser.add_argument(
        "service", nargs="?", default=f"{PACKAGE}.app:SERVICE", help="module:attribute"
    )
    service = load_service(parser.parse_args(argv).service)
    settings = load_settings(service.settings)
    configure_logging(settings.log_level, settings.log_format)
    gate = Gate.from_env()

    def gated(store: StateStore) -> StateStore:
        assert gate is not None
        return GatedStore(store, gate, identity=settings.identity)

    try:
        asyncio.run(run_worker(service, settings, wrap_store=gated if gate else None))
    except (TemporalUnreachableError, StartError) as exc:
        log.error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    from {{ cookiecutter.package_name }}.runtime.tracing import (
        shutdown as shutdown_tracing,
    )

    code = main()
    shutdown_tracing()  # as cli(): the spans still buffered are sent
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # as the service's own cli(): no interpreter finalisation (sdk-python #300)
