"""The HA drill as a test: three real workers, kill -9 of one mid-stage, SIGTERM of another."""

from __future__ import annotations

from pathlib import Path

from drill.ha import Report, drill


async def test_ha_drill(tmp_path: Path) -> None:
    report = Report()
    try:
        await drill(tmp_path, documents=40, words=3000, heartbeat_timeout=2, report=report)
    finally:  # the drill's output, which pytest shows when the test fails, however it fails
        print("\n".join(report.lines))
    passed = report.passed
    assert passed, "the drill failed (its output is above): " + "; ".join(report.failures)
