"""The minimal sample's settings: the runtime's (`runtime/settings.py`) plus this section.

Field `x` is read from `<ENV_PREFIX>X`, e.g.
    {{ cookiecutter.package_name | upper }}_DOWNLOAD_CONCURRENCY=20
"Starter side" settings are read by `run` and travel in the workflow's input.
"""

from __future__ import annotations

from pydantic import Field

from ..runtime.settings import RuntimeSettings


class MinimalSettings(RuntimeSettings):
    """Every setting of the minimal service: the runtime's, then this sample's section."""

    download_concurrency: int = Field(10, ge=1, le=1000)
    """Most downloads in flight at once inside one download activity."""

    download_timeout_seconds: float = Field(10.0, gt=0)
    """Timeout of one HTTP request (connect, each read, write)."""

    download_max_bytes: int = Field(1024 * 1024, ge=1)
    """A page larger than this is reported as failed instead of being stored."""

    stats_rounds: int = Field(20, ge=1, le=10_000)
    """How much CPU work per page (passes of the hash in textstats.py; starter side)."""

    heartbeat_timeout_seconds: float = Field(30.0, gt=0)
    """An activity that has not heartbeated for this long is retried elsewhere (starter side)."""
