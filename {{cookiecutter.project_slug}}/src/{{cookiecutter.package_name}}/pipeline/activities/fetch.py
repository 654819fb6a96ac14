"""Stage 1, fetch: download many URLs at once on one event loop (async I/O).

Downloading is I/O-bound: while one request waits on the network, the event loop runs
the others, so a single process with `async`/`await` keeps many downloads in flight
and the GIL does not matter. Two rules make that work inside a Temporal worker:

- never block the event loop (no `requests`, no `time.sleep`): every activity and
  the worker's own heartbeats share it;
- bound the concurrency (a semaphore), so a batch of 1,000 URLs does not open 1,000
  sockets at once.

Bodies go to the state store under their SHA-256, and the batch's list of documents goes
there too: the activity returns only counts, because everything an activity returns is
stored in the workflow history and must stay small however large the batch.
A URL that fails for good is reported as failed and the batch goes on; transient
failures (timeouts, refused connections, 5xx, 429) are retried here, URL by URL, so one
flaky URL does not make Temporal re-run the whole batch.
"""

from __future__ import annotations

import asyncio
import hashlib

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from ...runtime.heartbeat import heartbeat_until_cancelled
from ...runtime.metrics import ServiceMetrics
from ...runtime.store import StateStore
from ..models import (
    PIPELINE_DATA_TTL_SECONDS,
    DocumentRef,
    FailedUrl,
    FetchRequest,
    FetchResult,
    FetchSummary,
    body_key,
)

RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
RETRY_BACKOFF_SECONDS = 0.2


class FetchError(Exception):
    """A URL could not be fetched; `transient` says whether trying again may help."""

    def __init__(self, reason: str, *, transient: bool) -> None:
        super().__init__(reason)
        self.transient = transient


class FetchActivities:
    """The fetch activity with its dependencies (store and limits) injected by the worker."""

    def __init__(
        self,
        store: StateStore,
        *,
        concurrency: int,
        timeout_seconds: float,
        retries: int,
        max_bytes: int,
    ) -> None:
        self.store = store
        self.concurrency = concurrency
        self.timeout_seconds = timeout_seconds
        self.retries = retries
        self.max_bytes = max_bytes

    @activity.defn(name="fetch_documents")
    async def fetch_documents(self, request: FetchRequest) -> FetchSummary:
        """Download every URL of the batch, at most `concurrency` at a time; store the list of
        documents and failures under `request.documents_key`."""
        urls = request.urls
        if request.urls_key is not None:
            staged = await self.store.get_json(request.urls_key)
            if staged is None:
                raise ApplicationError(
                    f"staged URLs {request.urls_key} are not in the state store",
                    type="MissingInput",
                    non_retryable=True,
                )
            urls = staged
        semaphore = asyncio.Semaphore(self.concurrency)
        done = 0

        async def fetch_counted(client: httpx.AsyncClient, url: str) -> DocumentRef | FailedUrl:
            nonlocal done
            outcome = await self._fetch_with_retries(client, semaphore, url)
            done += 1
            return outcome

        limits = httpx.Limits(max_connections=self.concurrency)
        async with httpx.AsyncClient(
            timeout=self.timeout_seconds, limits=limits, follow_redirects=True
        ) as client:
            heartbeats = asyncio.create_task(heartbeat_until_cancelled(lambda: done))
            try:
                async with asyncio.TaskGroup() as group:
                    tasks = [group.create_task(fetch_counted(client, url)) for url in urls]
            finally:
                heartbeats.cancel()
        outcomes = [task.result() for task in tasks]
        result = FetchResult(
            documents=[o for o in outcomes if isinstance(o, DocumentRef)],
            failed=[o for o in outcomes if isinstance(o, FailedUrl)],
        )
        await self.store.put(
            request.documents_key,
            result.model_dump_json().encode(),
            ttl_seconds=PIPELINE_DATA_TTL_SECONDS,
        )
        metrics = ServiceMetrics.for_current_activity()
        metrics.documents_fetched.add(len(result.documents))
        metrics.documents_failed.add(len(result.failed))
        return FetchSummary(
            fetched=len(result.documents),
            failed=len(result.failed),
            bytes=sum(d.bytes for d in result.documents),
            words=sum(d.words for d in result.documents),
        )

    async def _fetch_with_retries(
        self, client: httpx.AsyncClient, semaphore: asyncio.Semaphore, url: str
    ) -> DocumentRef | FailedUrl:
        tries = self.retries + 1
        for attempt in range(1, tries + 1):
            try:
                async with semaphore:
                    body, encoding = await self._download(client, url)
            except FetchError as failure:
                if not failure.transient or attempt == tries:
                    suffix = f" (after {tries} tries)" if failure.transient and tries > 1 else ""
                    return FailedUrl(url=url, reason=f"{failure}{suffix}")
                # Wait outside the semaphore, so a flaky URL does not hold a download slot.
                await asyncio.sleep(RETRY_BACKOFF_SECONDS * 2 ** (attempt - 1))
                continue
            sha256 = hashlib.sha256(body).hexdigest()
            await self.store.put(body_key(sha256), body)
            words = len(body.decode(encoding, errors="replace").split())
            return DocumentRef(url=url, sha256=sha256, bytes=len(body), words=words)
        raise AssertionError("unreachable: the loop returns on its last try")

    async def _download(self, client: httpx.AsyncClient, url: str) -> tuple[bytes, str]:
        """The body and its text encoding, or FetchError saying why not."""
        if not url.startswith(("http://", "https://")):
            raise FetchError("bad URL: only http:// and https:// are fetched", transient=False)
        try:
            async with client.stream("GET", url) as response:
                if response.status_code in RETRYABLE_STATUS:
                    raise FetchError(f"HTTP {response.status_code}", transient=True)
                if response.is_error:
                    reason = f"HTTP {response.status_code} {response.reason_phrase}".strip()
                    raise FetchError(reason, transient=False)
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise FetchError(f"body over {self.max_bytes} bytes", transient=False)
                    chunks.append(chunk)
                return b"".join(chunks), response.encoding or "utf-8"
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            raise FetchError(f"bad URL: {exc}", transient=False) from None
        except httpx.TimeoutException:
            raise FetchError(f"timed out after {self.timeout_seconds:g}s", transient=True) from None
        except httpx.TransportError as exc:
            raise FetchError(f"{type(exc).__name__}: {exc}", transient=True) from None
