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

The downloads go through the runtime's guarded GET (`runtime/http.py`): whatever a URL
does (a redirect loop, a compressed bomb, a private or metadata address, a server sending
a byte a second, a URL that does not parse), it is that URL's failure, with a reason.
"""

from __future__ import annotations

import asyncio
import hashlib

from temporalio import activity
from temporalio.exceptions import ApplicationError

from ...runtime.heartbeat import heartbeat_until_cancelled
from ...runtime.http import FetchFailure, FetchPolicy, GuardedHttp, HttpClient, HttpClientFactory
from ...runtime.metrics import ServiceMetrics
from ...runtime.store import BufferedPuts, StateStore
from ..models import (
    PIPELINE_DATA_TTL_SECONDS,
    DocumentRef,
    FailedUrl,
    FetchRequest,
    FetchResult,
    FetchSummary,
    body_key,
)

RETRY_BACKOFF_SECONDS = 0.2
BODIES_PER_WRITE = 64


class FetchActivities:
    """The fetch activity with its dependencies (store and limits) injected by the worker."""

    def __init__(
        self,
        store: StateStore,
        *,
        policy: FetchPolicy,
        concurrency: int,
        retries: int,
        client: HttpClientFactory = GuardedHttp,  # another one: bench/fetch_clients.py
    ) -> None:
        self.store = store
        self.client = client
        self.policy = policy
        self.concurrency = concurrency
        self.retries = retries

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

        async def fetch_counted(
            http: HttpClient, bodies: BufferedPuts, url: str
        ) -> DocumentRef | FailedUrl:
            nonlocal done
            outcome = await self._fetch_with_retries(http, bodies, semaphore, url)
            done += 1
            return outcome

        # Bodies are written in batches (one transaction or round trip per 64), and all of
        # them before the list that names them.
        async with (
            self.client(self.policy, connections=self.concurrency) as http,
            BufferedPuts(self.store, max_items=BODIES_PER_WRITE) as bodies,
        ):
            heartbeats = asyncio.create_task(heartbeat_until_cancelled(lambda: done))
            try:
                # The guarded GET never raises for a URL: what can end this group early is
                # the state store failing, and then the whole attempt should fail (and retry).
                async with asyncio.TaskGroup() as group:
                    tasks = [group.create_task(fetch_counted(http, bodies, url)) for url in urls]
            except BaseExceptionGroup as errors:
                raise errors.exceptions[0] from None  # its own type and message, for the history
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
        self, http: HttpClient, bodies: BufferedPuts, semaphore: asyncio.Semaphore, url: str
    ) -> DocumentRef | FailedUrl:
        tries = self.retries + 1
        for attempt in range(1, tries + 1):
            async with semaphore:
                outcome = await http.get(url)
            if isinstance(outcome, FetchFailure):
                if not outcome.transient or attempt == tries:
                    suffix = f" (after {tries} tries)" if outcome.transient and tries > 1 else ""
                    return FailedUrl(url=url, reason=f"{outcome.reason}{suffix}")
                # Wait outside the semaphore, so a flaky URL does not hold a download slot.
                await asyncio.sleep(RETRY_BACKOFF_SECONDS * 2 ** (attempt - 1))
                continue
            body = outcome.body
            sha256 = hashlib.sha256(body).hexdigest()
            await bodies.put(body_key(sha256), body)
            words = len(body.decode(outcome.encoding, errors="replace").split())
            return DocumentRef(url=url, sha256=sha256, bytes=len(body), words=words)
        raise AssertionError("unreachable: the loop returns on its last try")
