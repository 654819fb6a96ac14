"""The HA drill as a test: three real workers, kill -9 of one mid-stage, SIGTERM of another."""

from __future__ import annotations

from pathlib import Path

from drill.ha import drill


async def test_ha_drill(tmp_path: Path) -> None:
    report = await drill(tmp_path, documents=40, words=3000, heartbeat_timeout=2)
    assert report.passed, "\n".join(report.lines)
