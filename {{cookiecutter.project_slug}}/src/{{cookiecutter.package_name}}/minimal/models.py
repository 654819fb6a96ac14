"""What travels between the starter, the workflow and the activities (pydantic models).

Page bodies never travel through Temporal: the download activity puts them in the state
store and passes their SHA-256 (a claim check), so a run's history stays small whatever
the pages weigh.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from .textstats import TextStats

DATA_TTL_SECONDS = 7 * 24 * 3600  # bodies and checkpoints of one run; memo entries have their own


def text_key(sha256: str) -> str:
    """The state-store key of a downloaded body."""
    return f"text:{sha256}"


class StatsRequest(BaseModel):
    """The workflow's input."""

    urls: list[str] = Field(min_length=1)
    rounds: int = Field(20, ge=1)
    heartbeat_timeout_seconds: float = Field(30.0, gt=0)


class Page(BaseModel):
    """One downloaded URL: its body's SHA-256 and size, or why it failed."""

    url: str
    sha256: str | None = None
    size: int = 0
    error: str | None = None


class ComputeRequest(BaseModel):
    """The CPU activity's input: the bodies to compute, by SHA-256."""

    sha256s: list[str]
    rounds: int = Field(ge=1)


class PageStats(BaseModel):
    """Word statistics of one body (the result of `textstats.page_stats`)."""

    words: int = Field(ge=0)
    unique: int = Field(ge=0)
    top: list[tuple[str, int]]
    fingerprint: str = Field(pattern=r"^[0-9a-f]{16}$")

    @classmethod
    def of(cls, stats: TextStats) -> PageStats:
        """The checked model of what `page_stats` returned in a pool process."""
        return cls(**stats._asdict())


class PageResult(BaseModel):
    """One URL in the workflow's result."""

    url: str
    stats: PageStats | None = None
    error: str | None = None


class StatsResult(BaseModel):
    """The workflow's result, in the order of the input URLs."""

    pages: list[PageResult]
