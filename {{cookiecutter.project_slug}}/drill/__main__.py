"""`make drill`: the HA drill on a 48-document corpus; exit code 0 when every check held."""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from .ha import drill


async def main() -> int:
    with tempfile.TemporaryDirectory(prefix="drill-") as tmp:
        report = await drill(Path(tmp), documents=48, words=3000)
    print("\n".join(report.lines))
    print("DRILL PASSED" if report.passed else f"DRILL FAILED: {'; '.join(report.failures)}")
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
