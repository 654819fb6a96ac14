"""`make drill`: the HA drill on a 48-document corpus; exit code 0 when every check held.

Ctrl-C or SIGTERM stops it early: the processes it started are stopped, what it saw so far
is printed, and the exit code is 130 or 143.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import tempfile
from pathlib import Path

from .ha import Report, drill


async def main() -> int:
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
            await drill(Path(tmp), documents=48, words=3000, report=report)
    except asyncio.CancelledError:  # the drill has stopped its processes
        return 128 + (signal.SIGTERM if terminated else signal.SIGINT)
    finally:  # what it saw, even when interrupted
        print("\n".join(report.lines))
        print("DRILL PASSED" if report.passed else f"DRILL FAILED: {'; '.join(report.failures)}")
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
