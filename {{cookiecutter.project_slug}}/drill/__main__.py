"""`make drill`: the HA drill of the project's drill case (tests/<sample>/drill_case.py);
exit code 0 when every check held.

    python -m drill                                   # 48 items
    python -m drill --items 200 --case tests.pipeline.drill_case
    python -m drill --address 127.0.0.1:7233           # on `make dev`'s server: see it in the UI

Ctrl-C or SIGTERM stops it early: the processes it started are stopped, what it saw so far
is printed, and the exit code is 130 or 143.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import tempfile
from pathlib import Path

from .case import find_case
from .ha import Report, drill


async def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m drill", description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=48, help="items per run (default 48)")
    parser.add_argument("--case", help="module[:attribute] of the drill case (default: found)")
    parser.add_argument(
        "--address",
        metavar="HOST:PORT",
        help="a running Temporal server to drill on (default: a dev server of its own)",
    )
    args = parser.parse_args()
    try:
        case = find_case(args.case)
    except LookupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report = Report()
    task = asyncio.current_task()
    assert task is not None
    terminated = []

    def on_sigterm() -> None:
        terminated.append(True)
        task.cancel()

    # Ctrl-C cancels this task already (asyncio.run); SIGTERM, by default, would end the
    # process at once and leave the drill's processes (in sessions of their own) running.
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, on_sigterm)
    try:
        with tempfile.TemporaryDirectory(prefix="drill-") as tmp:
            await drill(
                Path(tmp), case=case, items=args.items, report=report, server_address=args.address
            )
    except asyncio.CancelledError:  # the drill has stopped its processes
        return 128 + (signal.SIGTERM if terminated else signal.SIGINT)
    finally:  # what it saw, even when interrupted
        print("\n".join(report.lines))
        print("DRILL PASSED" if report.passed else f"DRILL FAILED: {'; '.join(report.failures)}")
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
