"""Command line: `python -m <package> worker | run | demo-run | dev | demo`.

`worker`, `dev` and `demo` belong to the runtime; `run` is the sample's starter, and
`app.py` says what it takes. Imports stay inside `main`: pool processes are spawned and
import this module first, so it must be cheap to import.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path
from typing import NoReturn

log = logging.getLogger(__package__)


def _parser() -> argparse.ArgumentParser:
    from . import app

    parser = argparse.ArgumentParser(prog=f"python -m {__package__}", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("worker", help="run a worker until SIGTERM or Ctrl-C, then drain")
    run = commands.add_parser("run", help="start the sample's workflow and print its result")
    app.add_run_arguments(run)
    demo_run = commands.add_parser(
        "demo-run", help="`run` with the sample's demo arguments (app.demo_arguments)"
    )
    demo_run.add_argument("urls_file", type=Path, help="file of the sample site's URLs")
    commands.add_parser("dev", help="dev server with UI, a worker and the sample site")
    commands.add_parser("demo", help="start everything, run the sample once, stop")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from . import app

    if args.command in ("dev", "demo"):
        from .runtime import devstack

        start = devstack.dev if args.command == "dev" else devstack.demo
        return start(app.SERVICE.settings, app.demo_arguments)

    from .runtime.client import TemporalUnreachableError
    from .runtime.logs import configure_logging
    from .runtime.settings import load_settings
    from .runtime.worker import StartError, StoreUnusableError, run_worker

    settings = load_settings(app.SERVICE.settings)
    configure_logging(settings.log_level, settings.log_format)
    if args.command == "demo-run":  # compose's run-sample: the demo's run, defined in app.py
        args = _parser().parse_args(["run", *app.demo_arguments(args.urls_file)])
    if args.command == "run":
        return app.run(settings, args)
    try:
        asyncio.run(run_worker(app.SERVICE, settings))
    except (TemporalUnreachableError, StartError) as exc:
        log.error("%s", exc)
        return 1
    except StoreUnusableError as exc:  # a bad setting, as load_settings reports them
        log.error("%s", exc)
        return 2
    except KeyboardInterrupt:  # Ctrl-C while still connecting: nothing to drain
        return 130
    return 0


def cli() -> NoReturn:
    """Entry point: run `main`, then leave without interpreter finalisation.

    The SDK's native threads can crash a short-lived process during finalisation
    (sdk-python issue 300), after all the work is done; flushing and `os._exit` give
    the exit code `main` chose, every time. Buffered spans (tracing.py) are sent first.
    """
    code = main()
    from .runtime import tracing

    tracing.shutdown()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    cli()
