"""`make drill`: the HA drill on a 48-document corpus; exit code 0 when every check held."""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from .ha import Report, drill


async def main() -> int:
    report = Report()
    try:
        with tempfile.TemporaryDirectory(prefix="drill-") as tmp:
            await drill(Path(tmp), documents=48, words=3000, report=report)
    finally:  # what it saw, even when interrupted
        print("\n".join(report.lines))
        print("DRILL PASSED" if report.passed else f"DRILL FAILED: {'; '.join(report.failures)}")
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
