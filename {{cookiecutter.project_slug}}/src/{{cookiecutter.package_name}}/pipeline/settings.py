"""The pipeline's own settings: the runtime's (`runtime/settings.py`) plus this section.

Same rules as the runtime's: field `x` is read from `<ENV_PREFIX>X`, e.g.
    MY_TEMPORAL_SERVICE_FETCH_CONCURRENCY=20
and a bad value stops the program at start naming the variable. "Starter side" settings
are read by `run` and travel to the workflow in its input, so one run keeps them even if
the workers' environment changes meanwhile.
"""

from __future__ import annotations

from pydantic import Field

from ..runtime.settings import RuntimeSettings


class PipelineSettings(RuntimeSettings):
    """Every setting of the pipeline service: the runtime's, then the pipeline's section."""

    fetch_concurrency: int = Field(10, ge=1, le=1000)
    """Most downloads in flight at once inside one fetch activity."""

    fetch_timeout_seconds: float = Field(10.0, gt=0)
    """Timeout of one HTTP request (connect, each read, write)."""

    fetch_retries: int = Field(2, ge=0, le=10)
    """Extra tries for a URL that failed transiently (timeout, refused, 5xx, 429)."""

    fetch_max_bytes: int = Field(10 * 1024 * 1024, ge=1)
    """A body larger than this is reported as failed instead of being stored."""

    batch_size: int = Field(250, ge=1, le=2000)
    """URLs per batch: one child workflow fetches and fingerprints them (starter side). The
    default and bounds of `PipelineOptions.batch_size` (models.py)."""

    parallel_batches: int = Field(4, ge=1, le=1000)
    """Batches (child workflows) running at once, spread over all workers (starter side)."""

    heartbeat_timeout_seconds: float = Field(30.0, gt=0)
    """An activity that has not heartbeated for this long is retried elsewhere."""

    cpu_chunk_size: int = Field(16, ge=1)
    """Documents per task sent to the pool. Small chunks keep cancellation prompt (one chunk of
    2,000-word documents is about 70 ms of work); below ~16 short documents, sending a chunk
    costs the worker more than computing it (the scale run: 4 gave about 10% fewer docs/s)."""

    minhash_permutations: int = Field(128, ge=1, le=4096)
    """Permutations per MinHash signature (starter side)."""

    shingle_size: int = Field(3, ge=1, le=20)
    """Words per shingle (starter side)."""

    similarity_threshold: float = Field(0.8, gt=0, le=1)
    """Estimated Jaccard similarity at which documents count as near-duplicates (starter side)."""
