"""`StatsWorkflow` end to end on the real dev server: an in-process worker for the result,
and the real CLI against a worker process."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from pathlib import Path

import pytest
from temporalio import activity
from temporalio.client import Client

from {{ cookiecutter.package_name }} import (
    SERVICE_NAME,
)
from {{ cookiecutter.package_name }}.app import (
    register,
)
from {{ cookiecutter.package_name }}.minimal.models import (
    PageResult,
    PageStats,
    StatsRequest,
    StatsResult,
)
from {{ cookiecutter.package_name }}.minimal.starter import (
    summary,
)
from {{ cookiecutter.package_name }}.minimal.textstats import (
    page_stats,
)
from {{ cookiecutter.package_name }}.minimal.workflows import (
    StatsWorkflow,
)
from {{ cookiecutter.package_name }}.runtime.pool import (
    CpuPool,
)
from {{ cookiecutter.package_name }}.runtime.store import (
    StateStore,
)
from {{ cookiecutter.package_name }}.runtime.worker import (
    build_worker,
)

from ..conftest import (
    PACKAGE,
    address_of,
    expiries,
    free_port,
    make_settings,
    run_in_group,
    running_worker,
    service_cwd,
    service_env,
)
from ..toolkit.http_site import LocalSite, document_text

RESULT_TIMEOUT_SECONDS = 120  # a guard for a stuck workflow; no speed passes or fails it


async def test_every_page_gets_its_stats_or_its_error(
    client: Client, pool: CpuPool, site: LocalSite, tmp_path: Path, task_queue: str
) -> None:
    settings = make_settings(tmp_path, task_queue=task_queue)
    urls = [site.url("doc/first"), site.url("status/500"), site.url("doc/first?again")]
    async with (
        settings.open_store() as store,
        build_worker(client, settings, register(settings, store, pool)),
    ):
        handle = await client.start_workflow(
            StatsWorkflow.run,
            StatsRequest(urls=urls, rounds=3),
            id=f"stats-{uuid.uuid4()}",
            task_queue=task_queue,
        )
        async with asyncio.timeout(RESULT_TIMEOUT_SECONDS):
            result = await handle.result()
        assert await handle.query(StatsWorkflow.stage) == "done"

    expected = PageStats.of(page_stats(document_text("first"), 3))
    assert [(p.url, p.stats, p.error) for p in result.pages] == [
        (urls[0], expected, None),
        (urls[1], None, "HTTP 500"),
        (urls[2], expected, None),  # the same body: computed once, found twice
    ]


async def test_every_key_has_the_service_prefix_and_a_ttl(
    client: Client, pool: CpuPool, site: LocalSite, store_url: str, tmp_path: Path, task_queue: str
) -> None:
    """After a run, on each backend: every key has the service's prefix and an expiry."""
    settings = make_settings(tmp_path, task_queue=task_queue, state_store_url=store_url)
    async with settings.open_store() as store:
        # redis-py imports some modules on its first command: done here, not while a workflow
        # task runs in the sandbox (which warns about imports it sees then).
        await store.get("warm-up")
        async with build_worker(client, settings, register(settings, store, pool)):
            handle = await client.start_workflow(
                StatsWorkflow.run,
                StatsRequest(urls=[site.url("doc/ttl-one"), site.url("doc/ttl-two")], rounds=2),
                id=f"stats-{uuid.uuid4()}",
                task_queue=task_queue,
            )
            async with asyncio.timeout(RESULT_TIMEOUT_SECONDS):
                await handle.result()
    found = expiries(store_url)
    assert {key.split(":")[1] for key in found} >= {"text", "memo"}, sorted(found)
    assert [key for key in found if not key.startswith(f"{SERVICE_NAME}:")] == []
    assert [key for key, ttl in found.items() if ttl is None] == []


class AltersABodyOnce(StateStore):
    """`inner`, except that the first body compute_stats reads has just been altered in the
    store: a poisoned (or corrupted) value between the two activities."""

    def __init__(self, inner: StateStore) -> None:
        self.inner = inner
        self.altered: list[str] = []

    async def get(self, key: str) -> bytes | None:
        in_stats = activity.in_activity() and activity.info().activity_type == "compute_stats"
        if key.startswith("text:") and in_stats and not self.altered:
            self.altered.append(key)
            await self.inner.put(key, b"another page altogether")
        return await self.inner.get(key)

    async def put(self, key: str, value: bytes, *, ttl_seconds: float | None = None) -> None:
        await self.inner.put(key, value, ttl_seconds=ttl_seconds)

    async def delete(self, key: str) -> None:
        await self.inner.delete(key)


async def test_a_body_altered_in_the_store_is_downloaded_again_never_used(
    client: Client, pool: CpuPool, site: LocalSite, tmp_path: Path, task_queue: str
) -> None:
    settings = make_settings(tmp_path, task_queue=task_queue)
    urls = [site.url("doc/altered")]
    async with settings.open_store() as store:
        altering = AltersABodyOnce(store)
        async with build_worker(client, settings, register(settings, altering, pool)):
            handle = await client.start_workflow(
                StatsWorkflow.run,
                StatsRequest(urls=urls, rounds=3),
                id=f"stats-{uuid.uuid4()}",
                task_queue=task_queue,
            )
            async with asyncio.timeout(RESULT_TIMEOUT_SECONDS):
                result = await handle.result()
    assert len(altering.altered) == 1
    assert [p.stats for p in result.pages] == [
        PageStats.of(page_stats(document_text("altered"), 3))
    ]
    history = await handle.fetch_history()
    scheduled = [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
    ]
    assert scheduled == ["download_pages", "compute_stats"] * 2


def run_cli(*arguments: str, env: dict[str, str]) -> tuple[int, str, str]:
    """`python -m <package> run ...` in its own process group: exit code, stdout, stderr."""
    done = run_in_group(
        [sys.executable, "-m", PACKAGE, "run", *arguments], timeout=120, cwd=service_cwd(), env=env
    )
    return done.returncode, done.stdout, done.stderr


async def test_run_prints_one_line_per_page_and_json_on_request(
    client: Client, site: LocalSite, tmp_path: Path, task_queue: str
) -> None:
    store_url = f"sqlite:///{tmp_path / 'state.db'}"
    env = service_env(
        address_of(client), task_queue=task_queue, state_store_url=store_url, cpu_processes=1
    )
    urls = [site.url("doc/cli"), site.url("status/404")]
    async with running_worker(env):
        code, stdout, stderr = await asyncio.to_thread(run_cli, *urls, env=env)
        assert code == 0, stderr
        assert stdout.splitlines() == [
            f"{urls[0]}  7 words, 7 distinct; top: cli(1) document(1) exactly(1) has(1) here(1)",
            f"{urls[1]}  failed: HTTP 404 Not Found",
            "2 pages: 1 done, 1 failed",
        ]
        assert "started workflow stats-" in stderr

        urls_file = tmp_path / "urls.txt"
        urls_file.write_text(f"# a comment\n{urls[0]}\n", encoding="utf-8")
        code, stdout, stderr = await asyncio.to_thread(
            run_cli, "--json", "--urls-file", str(urls_file), env=env
        )
        assert code == 0, stderr
        (page,) = json.loads(stdout)["pages"]
        expected = PageStats.of(page_stats(document_text("cli"), 20))  # the default stats_rounds
        assert (page["url"], page["stats"]) == (urls[0], expected.model_dump(mode="json"))


async def test_run_refuses_no_urls_with_exit_2(client: Client) -> None:
    code, stdout, stderr = await asyncio.to_thread(run_cli, env=service_env(address_of(client)))
    assert (code, stdout) == (2, "")
    assert stderr == "error: no URLs given (pass them as arguments or with --urls-file)\n"


@pytest.mark.parametrize("case", ["binary-junk", "missing-file"])
async def test_a_bad_urls_file_is_one_line_and_exit_2(tmp_path: Path, case: str) -> None:
    """Exit 2 (1 is for a workflow that failed) and one line, before Temporal is contacted."""
    urls = tmp_path / "urls.txt"
    if case == "binary-junk":
        urls.write_bytes(bytes(range(256)) * 64)
        expected = f"error: --urls-file {urls}: not a text file (it holds NUL bytes)\n"
    else:
        expected = f"error: --urls-file {urls}: No such file or directory\n"
    env = service_env(f"127.0.0.1:{free_port()}", connect_timeout_seconds=2)
    code, stdout, stderr = await asyncio.to_thread(run_cli, "--urls-file", str(urls), env=env)
    assert (code, stdout, stderr) == (2, "", expected)


def test_the_summary_shows_a_hostile_url_escaped() -> None:
    """A URL holding terminal escapes is printed escaped: it cannot clear the screen or
    retitle the window of whoever runs `run`."""
    hostile = "http://127.0.0.1:9/x?\x1b[2J\x1b]0;owned\x07"
    shown = summary(StatsResult(pages=[PageResult(url=hostile, error="HTTP 404")]))
    assert (
        shown.splitlines()[0] == "http://127.0.0.1:9/x?\\x1b[2J\\x1b]0;owned\\x07  failed: HTTP 404"
    )
    assert "\x1b" not in shown
