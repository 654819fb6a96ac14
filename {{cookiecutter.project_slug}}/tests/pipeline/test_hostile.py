"""The real pipeline (a worker process, the dev server) over good and hostile URLs together.

Every hostile URL (tests/toolkit/hostile_site.py) must be that URL's failure, with its
reason, while the good ones give the right documents, the run completes, and the worker's
memory stays bounded although one response decodes to 256 MiB. Traffic goes to loopback
only: 127.0.0.1, which the tests allow (`fetch_allowed_networks`), and 127.0.0.2, which
they do not. How other addresses are judged is tested without connecting (test_http.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.client import Client

from {{ cookiecutter.package_name }}.pipeline.models import (
    PipelineInput,
    PipelineOptions,
)
from {{ cookiecutter.package_name }}.pipeline.report import (
    read_report,
)
from {{ cookiecutter.package_name }}.pipeline.workflows import (
    PipelineWorkflow,
)

from ..conftest import make_settings
from ..toolkit.hostile_site import SECOND_HOST, HostileSite
from ..toolkit.http_site import document_text
from ..toolkit.processes import address_of, service_env
from ..toolkit.worker import running_worker

MAX_BYTES = 1 << 20  # the body limit in this test: the bomb decodes to 256 times that
DEADLINE_SECONDS = 3  # per URL; /slow sends a byte a second, for 100,000 seconds
PEAK_RSS_MIB = 250
"""The worker's peak resident memory allowed (VmHWM). An idle worker has about 65 MiB; the
bomb alone, decoded in memory, would take 256 MiB."""
RESULT_GUARD_SECONDS = 300.0  # ends a broken test; no speed makes it pass or fail


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident set size (VmHWM in /proc/<pid>/status), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmHWM for process {pid}")


def cases(site: HostileSite) -> tuple[dict[str, str], dict[str, str]]:
    """(good URL -> the name of its document, hostile URL -> how its reason starts)."""
    good = {
        site.url("good/alpha"): "alpha",
        site.url("good/beta").replace("http://", "HTTP://"): "beta",  # schemes ignore case
        site.url("hops/5/gamma"): "gamma",  # five redirects: the most allowed
        site.url("charset/delta"): "delta",  # unknown charset: read as UTF-8
    }
    hostile = {
        site.url("loop/0"): "more than 5 redirects",
        site.url("hops/6/epsilon"): "more than 5 redirects",
        site.url("to-other/zeta"): f"address {SECOND_HOST} is loopback, not allowed",
        site.url("good/eta", host=SECOND_HOST): f"address {SECOND_HOST} is loopback",
        f"http://[::ffff:{SECOND_HOST}]:{site.port}/good/theta": f"address {SECOND_HOST} is",
        site.url("fake-gzip/iota"): "bad gzip body",
        site.url("bomb"): f"body over {MAX_BYTES} bytes decoded",
        site.url("nested-bomb"): "nested Content-Encoding 'gzip, gzip' refused",
        site.url("brotli"): "Content-Encoding 'br' not supported",
        site.url("slow"): f"not done within {DEADLINE_SECONDS}s",
        site.url("missing"): "HTTP 404",
        "http://xn--/x": "bad URL",
        "http://127.0.0.1:99999/x": "bad URL: Port out of range",
        f"http://127.1:{site.port}/good/kappa": "bad URL",  # legacy spelling of 127.0.0.1
        "ftp://127.0.0.1/x": "bad URL: only http:// and https://",
        "not a url": "bad URL",
    }
    return good, hostile


@pytest.mark.slow(seconds=5)  # a worker process, a bomb and a 3 s deadline
async def test_hostile_urls_fail_alone_and_the_pipeline_completes(
    client: Client, hostile: HostileSite, tmp_path: Path, task_queue: str
) -> None:
    good, bad = cases(hostile)
    urls = [url for pair in zip(good, bad, strict=False) for url in pair]
    urls += list(bad)[len(good) :]
    assert sorted(urls) == sorted([*good, *bad])
    store_url = f"sqlite:///{tmp_path / 'state.db'}"
    env = service_env(
        address_of(client),
        task_queue=task_queue,
        state_store_url=store_url,
        fetch_max_bytes=MAX_BYTES,
        fetch_deadline_seconds=DEADLINE_SECONDS,
        cpu_processes=1,
    )
    async with running_worker(env) as worker:
        started = time.monotonic()
        handle = await client.start_workflow(
            PipelineWorkflow.run,
            PipelineInput(urls=urls, options=PipelineOptions(batch_size=5)),
            id=f"hostile-{uuid.uuid4()}",
            task_queue=task_queue,
            execution_timeout=timedelta(seconds=RESULT_GUARD_SECONDS),
        )
        result = await asyncio.wait_for(handle.result(), RESULT_GUARD_SECONDS)
        peak = peak_rss_mib(worker.pid)
        elapsed = time.monotonic() - started
    async with make_settings(tmp_path, state_store_url=store_url).open_store() as store:
        report = await read_report(store, result, handle.id)

    documents = {d.url: d for d in report.documents}
    assert sorted(documents) == sorted(good), report.failed
    for url, name in good.items():
        assert documents[url].sha256 == hashlib.sha256(document_text(name).encode()).hexdigest()
    reasons = {f.url: f.reason for f in report.failed}
    assert sorted(reasons) == sorted(bad)
    for url, start in bad.items():
        assert reasons[url].startswith(start), (url, reasons[url])
    assert hostile.hits["/good/eta"] == hostile.hits["/good/zeta"] == 0  # never reached
    assert hostile.hits["/loop/6"] == 0  # the sixth redirect is not followed
    assert peak < PEAK_RSS_MIB, f"worker peak RSS {peak:.0f} MiB"
    print(f"hostile pipeline: {elapsed:.1f}s, worker peak RSS {peak:.0f} MiB")  # with -s
