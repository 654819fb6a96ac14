"""`StatsWorkflow` end to end on the real dev server: an in-process worker for the result,
and the real CLI against a worker process."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from pathlib import Path

from temporalio.client import Client

from {{ cookiecutter.package_name }}.app import (
    register,
)
from {{ cookiecutter.package_name }}.minimal.models import (
    StatsRequest,
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
    open_store,
)
from {{ cookiecutter.package_name }}.runtime.worker import (
    build_worker,
)

from ..conftest import (
    PACKAGE,
    address_of,
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
        open_store(settings.state_store_url) as store,
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

    expected = page_stats(document_text("first"), 3)
    assert [(p.url, p.stats, p.error) for p in result.pages] == [
        (urls[0], expected, None),
        (urls[1], None, "HTTP 500"),
        (urls[2], expected, None),  # the same body: computed once, found twice
    ]


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
        expected = page_stats(document_text("cli"), 20)  # the default stats_rounds
        assert (page["url"], page["stats"]) == (urls[0], expected.model_dump(mode="json"))


async def test_run_refuses_no_urls_with_exit_2(client: Client) -> None:
    code, stdout, stderr = await asyncio.to_thread(run_cli, env=service_env(address_of(client)))
    assert (code, stdout) == (2, "")
    assert stderr == "error: no URLs given (pass them as arguments or with --urls-file)\n"
