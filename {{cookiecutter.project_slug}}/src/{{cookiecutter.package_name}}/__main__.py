"""Command line: `python -m <package> worker | run | dev | demo`.

Imports stay inside `main`: pool processes are spawned and import this module first,
so it must be cheap to import.
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
    parser = argparse.ArgumentParser(prog=f"python -m {__package__}", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("worker", help="run a worker until SIGTERM or Ctrl-C, then drain")
    run = commands.add_parser("run", help="run the pipeline over URLs and print the result")
    run.add_argument("urls", nargs="*", metavar="URL", help="URLs to fetch")
    run.add_argument("--urls-file", type=Path, help="file with one URL per line")
    run.add_argument("--workflow-id", help="workflow id (default: pipeline-<random>)")
    run.add_argument("--json", action="store_true", help="print the result as one JSON document")
    commands.add_parser("dev", help="dev server with UI, a worker and the sample documents")
    commands.add_parser("demo", help="start everything, run the sample pipeline once, stop")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command in ("dev", "demo"):
        from . import devstack

        return devstack.dev() if args.command == "dev" else devstack.demo()

    from .client import TemporalUnreachableError
    from .logs import configure_logging
    from .settings import load_settings

    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    if args.command == "worker":
        from .worker import PortUnavailableError, run_worker

        try:
            asyncio.run(run_worker(settings))
        except (TemporalUnreachableError, PortUnavailableError) as exc:
            log.error("%s", exc)
            return 1
        except KeyboardInterrupt:  # Ctrl-C while still connecting: nothing to drain
            return 130
        return 0

    from .starter import new_workflow_id, read_urls, start_and_wait

    try:
        urls = read_urls(args.urls, args.urls_file)
    except OSError as exc:
        print(f"error: --urls-file: {exc}", file=sys.stderr)
        return 2
    if not urls:
        print("error: no URLs given (pass them as arguments or with --urls-file)", file=sys.stderr)
        return 2
    workflow_id = args.workflow_id or new_workflow_id()
    try:
        return asyncio.run(
            start_and_wait(settings, urls, workflow_id=workflow_id, as_json=args.json)
        )
    except TemporalUnreachableError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"interrupted; workflow {workflow_id} goes on running", file=sys.stderr)
        return 130


def cli() -> NoReturn:
    """Entry point: run `main`, then leave without interpreter finalisation.

    The SDK's native threads can crash a short-lived process during finalisation
    (sdk-python issue 300), after all the work is done; flushing and `os._exit` give
    the exit code `main` chose, every time.
    """
    code = main()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    cli()
