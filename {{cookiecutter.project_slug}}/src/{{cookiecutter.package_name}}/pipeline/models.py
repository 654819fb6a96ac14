"""The data that crosses the workflow history: inputs, results and progress.

Everything here is a pydantic model serialised by the SDK's pydantic data converter.
One rule keeps every payload and every history small however large the run: a list that
grows with the input never travels through Temporal. It goes to the state store, and only
its key and its counts travel. Bodies live under `body_key`, a pipeline's lists under keys
made by `batch_key` and `pipeline_key`.
"""

from __future__ import annotations

from pydantic import BaseModel, Field, model_validator

MAX_BATCH_SIZE = 2000
"""Keeps a batch's inline URL list (at most ~2 KB per URL) well under Temporal's 2 MB payload
limit, and a batch's checkpoint and memory small."""
PIPELINE_DATA_TTL_SECONDS = 7 * 24 * 3600
"""How long a run's staged input and its result lists stay in the state store."""


class MinHashParams(BaseModel):
    """What a signature depends on besides the text: part of every memo key."""

    num_perm: int = Field(128, ge=1)
    shingle_size: int = Field(3, ge=1)


class PipelineOptions(BaseModel):
    """How the workflow orchestrates its stages; the starter fills these from settings."""

    batch_size: int = Field(250, ge=1, le=MAX_BATCH_SIZE)
    """URLs per batch (one child workflow); 250 was chosen by `make bench`'s scale run."""
    parallel_batches: int = Field(4, ge=1, le=1000)
    heartbeat_timeout_seconds: float = Field(30.0, gt=0)
    activity_start_to_close_seconds: float = Field(3600.0, gt=0)
    minhash: MinHashParams = MinHashParams()
    similarity_threshold: float = Field(0.8, gt=0, le=1)
    continue_as_new_after_events: int = Field(4000, ge=50)
    """Start a fresh run of the pipeline workflow once its history has this many events
    (Temporal warns at 10,240 and stops a workflow at 51,200)."""


class StagedUrls(BaseModel):
    """URLs staged in the state store by the starter: chunk i is a JSON list under `key(i)`.

    The claim-check pattern: `run --urls-file` with 100,000 lines sends this, not the lines.
    """

    prefix: str
    chunks: int = Field(ge=0)
    count: int = Field(ge=0)

    def key(self, index: int) -> str:
        return f"{self.prefix}:{index:06d}"


class Totals(BaseModel):
    """Counts summed over the finished batches: all the pipeline workflow keeps of them."""

    batches: int = 0
    urls: int = 0
    fetched: int = 0
    failed: int = 0
    bytes: int = 0
    words: int = 0
    fingerprint: FingerprintStats = Field(default_factory=lambda: FingerprintStats())

    def add(self, batch: BatchResult) -> None:
        self.batches += 1
        self.urls += batch.urls
        self.fetched += batch.fetched
        self.failed += batch.failed
        self.bytes += batch.bytes
        self.words += batch.words
        self.fingerprint = self.fingerprint.plus(batch.fingerprint)


class Carried(BaseModel):
    """What one run of the pipeline hands to the next when it continues as new."""

    next_batch: int
    totals: Totals
    started_at: float
    """POSIX time the first run started; the duration in the result spans all runs."""


class PipelineInput(BaseModel):
    """What starts the pipeline: a few URLs inline, or many staged in the state store."""

    urls: list[str] = []
    staged: StagedUrls | None = None
    options: PipelineOptions = PipelineOptions()
    carried: Carried | None = None

    @model_validator(mode="after")
    def _one_source(self) -> PipelineInput:
        if self.urls and self.staged is not None:
            raise ValueError("give either urls or staged, not both")
        return self


class BatchInput(BaseModel):
    """One batch's work, a child workflow's input: its URLs inline or as a key, and where its
    lists go (`batch_key(data_key, index, ...)`)."""

    data_key: str
    index: int
    urls: list[str] = []
    urls_key: str | None = None
    options: PipelineOptions


class FetchRequest(BaseModel):
    """Stage 1's work: URLs inline or under `urls_key`; the result goes under `documents_key`."""

    urls: list[str] = []
    urls_key: str | None = None
    documents_key: str


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
    """A batch's documents and failures: stored under the batch's documents key."""

    documents: list[DocumentRef] = []
    failed: list[FailedUrl] = []


class FetchSummary(BaseModel):
    """What the fetch activity returns: counts only; the lists are in the state store."""

    fetched: int
    failed: int
    bytes: int
    words: int


class FingerprintRequest(BaseModel):
    """Stage 2's work: the documents listed under `documents_key`; signatures go to
    `signatures_key` (a JSON object: body SHA-256 -> signature)."""

    documents_key: str
    signatures_key: str
    minhash: MinHashParams


class FingerprintStats(BaseModel):
    """Where stage 2's signatures came from, in the attempt that finished."""

    computed: int = 0
    restored: int = 0
    memoized: int = 0
    attempt: int = 0

    def plus(self, other: FingerprintStats) -> FingerprintStats:
        """Both batches' counts summed; `attempt` is the most attempts either needed."""
        return FingerprintStats(
            computed=self.computed + other.computed,
            restored=self.restored + other.restored,
            memoized=self.memoized + other.memoized,
            attempt=max(self.attempt, other.attempt),
        )


class BatchResult(BaseModel):
    """A child workflow's result: counts; its lists are under its batch keys."""

    index: int
    urls: int
    fetched: int
    failed: int
    bytes: int
    words: int
    fingerprint: FingerprintStats


class DuplicatesRequest(BaseModel):
    """Stage 3's work: every batch's signatures, compared across batches."""

    data_key: str
    batches: int
    num_perm: int
    threshold: float


class DuplicatesSummary(BaseModel):
    """Stage 3's result: counts; the groups are under `pipeline_key(data_key, "duplicates")`."""

    groups: int
    documents: int


class Progress(BaseModel):
    """Answer of the workflow's `progress` query."""

    stage: str
    done: int
    total: int


class PipelineProgress(Progress):
    """Answer of the pipeline's `progress` query: `done` counts the URLs of finished batches.

    The URLs and documents done inside a running batch are in its activities' heartbeat
    details, which `run` reads with describe() (the workflow never sees them): `running`
    says which batches to look at.
    """

    fetched: int = 0
    """Documents fetched by the finished batches (their fingerprints are done too)."""
    failed: int = 0
    """URLs of the finished batches that failed."""
    batch_size: int = 0
    running: list[int] = []
    """Indexes of the batches running now: at most `parallel_batches`."""


class PipelineStats(BaseModel):
    urls: int
    fetched: int
    failed: int
    bytes: int
    words: int
    batches: int
    seconds: float
    fingerprint: FingerprintStats


class PipelineResult(BaseModel):
    """The pipeline workflow's result: counts, and the key under which its lists are.

    `report.read_report` (or `run --json`) reads the documents, failures and groups back.
    """

    data_key: str
    stats: PipelineStats
    duplicate_groups: int


def body_key(sha256: str) -> str:
    """State-store key of a document body: content-addressed, so a body is stored once."""
    return f"body:{sha256}"


def pipeline_key(data_key: str, what: str) -> str:
    """State-store key of one of a pipeline run's own lists (e.g. its duplicate groups)."""
    return f"{data_key}:{what}"


def batch_key(data_key: str, index: int, what: str) -> str:
    """State-store key of one batch's list: `documents` (a FetchResult) or `signatures`."""
    return f"{data_key}:batch:{index:06d}:{what}"
