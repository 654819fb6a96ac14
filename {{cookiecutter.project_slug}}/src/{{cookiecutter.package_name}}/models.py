"""The data that crosses the workflow history: inputs, results and progress.

Everything here is a pydantic model serialised by the SDK's pydantic data converter.
Keep these small: bodies live in the state store and only their keys travel.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class MinHashParams(BaseModel):
    """What a signature depends on besides the text: part of every memo key."""

    num_perm: int = Field(128, ge=1)
    shingle_size: int = Field(3, ge=1)


class PipelineOptions(BaseModel):
    """How the workflow orchestrates its stages; the starter fills these from settings."""

    fetch_batch_size: int = Field(20, ge=1)
    heartbeat_timeout_seconds: float = Field(30.0, gt=0)
    activity_start_to_close_seconds: float = Field(3600.0, gt=0)
    minhash: MinHashParams = MinHashParams()
    similarity_threshold: float = Field(0.8, gt=0, le=1)


class PipelineInput(BaseModel):
    """What `python -m <package> run` sends to the pipeline workflow."""

    urls: list[str]
    options: PipelineOptions = PipelineOptions()


class FetchBatch(BaseModel):
    """One fetch activity's work: a slice of the pipeline's URLs."""

    urls: list[str]


class DocumentRef(BaseModel):
    """A fetched document; its body is in the state store under `body_key(sha256)`."""

    url: str
    sha256: str
    bytes: int
    words: int


class FailedUrl(BaseModel):
    """A URL that failed for good (after retries), and why."""

    url: str
    reason: str


class FetchResult(BaseModel):
    documents: list[DocumentRef] = []
    failed: list[FailedUrl] = []


class FingerprintRequest(BaseModel):
    """Stage 2's work: the documents whose bodies are in the store, and the parameters."""

    documents: list[DocumentRef]
    minhash: MinHashParams


class FingerprintStats(BaseModel):
    """Where stage 2's signatures came from, in the attempt that finished."""

    computed: int
    restored: int
    memoized: int
    attempt: int


class FingerprintResult(BaseModel):
    """Signatures stay in the state store (under `signatures_key`); only the key travels."""

    signatures_key: str
    stats: FingerprintStats


class DuplicatesRequest(BaseModel):
    signatures_key: str
    documents: list[DocumentRef]
    threshold: float


class Progress(BaseModel):
    """Answer of the workflow's `progress` query."""

    stage: str
    done: int
    total: int


class PipelineStats(BaseModel):
    urls: int
    fetched: int
    failed: int
    bytes: int
    words: int
    fetch_seconds: float
    fingerprint: FingerprintStats | None = None


class PipelineResult(BaseModel):
    """The pipeline's result; later stages add their own fields."""

    documents: list[DocumentRef]
    failed: list[FailedUrl]
    duplicates: list[list[str]] = []
    """Groups of URLs with near-duplicate bodies; each sorted, the groups sorted."""
    stats: PipelineStats


def body_key(sha256: str) -> str:
    """State-store key of a document body: content-addressed, so a body is stored once."""
    return f"body:{sha256}"
