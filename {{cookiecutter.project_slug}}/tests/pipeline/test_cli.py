"""`python -m <package> run`: JSON and readable output, exit codes, URL files."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.client import Client

from bench.limits import measure
from {{ cookiecutter.package_name }}.__main__ import (
    main,
)
from {{ cookiecutter.package_name }}.app import (
    Settings,
    register,
)
from {{ cookiecutter.package_name }}.pipeline.models import (
    Progress,
)
from {{ cookiecutter.package_name }}.pipeline.report import (
    PipelineReport,
)
from {{ cookiecutter.package_name }}.pipeline.starter import (
    default_ui_url,
    progress_bar,
    stage_urls,
    workflow_link,
)
from {{ cookiecutter.package_name }}.runtime.pool import (
    CpuPool,
)
from {{ cookiecutter.package_name }}.runtime.store import (
    StateStore,
    open_store,
)
from {{ cookiecutter.package_name }}.runtime.worker import (
    build_worker,
)

from ..conftest import _own_groups, address_of, make_settings, service_cwd, service_env
from ..toolkit.http_site import LocalSite

PACKAGE = "{{ cookiecutter.package_name }}"


@pytest.fixture
async def worker(
    client: Client, tmp_path: Path, task_queue: str, pool: CpuPool
) -> AsyncIterator[Settings]:
    """A worker in this process; `run` must use its settings (the same state store)."""
    settings = make_settings(tmp_path, task_queue=task_queue)
    async with (
        open_store(settings.state_store_url) as store,
        build_worker(client, settings, register(settings, store, pool)),
    ):
        yield settings


async def run_separately(
    *command: str, env: dict[str, str], timeout: float
) -> tuple[int, str, str]:
    """`run_process`, with stdout and stderr kept apart: its exit code, stdout and stderr.

    It runs in `service_cwd()` (no developer's `.env`), in a process group of its own that
    is killed however this ends; on a timeout (only a broken test: choose it far above the
    time the command needs) the AssertionError shows what it had printed.
    """
    process = await asyncio.create_subprocess_exec(
        *command,
        env=env,
        cwd=service_cwd(),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    _own_groups.add(process.pid)  # the session's check for leftover processes looks there too
    assert process.stdout is not None
    assert process.stderr is not None
    out: list[bytes] = []
    err: list[bytes] = []

    async def read(stream: asyncio.StreamReader, chunks: list[bytes]) -> None:
        while chunk := await stream.read(65536):
            chunks.append(chunk)

    def text(chunks: list[bytes]) -> str:
        return b"".join(chunks).decode(errors="replace")

    readers = [
        asyncio.create_task(read(process.stdout, out)),
        asyncio.create_task(read(process.stderr, err)),
    ]
    try:
        done, _ = await asyncio.wait(readers, timeout=timeout)
        if len(done) < len(readers):
            raise AssertionError(
                f"{' '.join(command)} ran over {timeout:g} s:\n"
                f"stdout:\n{text(out)}\nstderr:\n{text(err)}"
            )
        await process.wait()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        for reader in readers:
            reader.cancel()
        await process.wait()
    assert process.returncode is not None
    return process.returncode, text(out), text(err)


async def run_cli(
    client: Client,
    settings: Settings,
    *args: str,
    timeout: float = 120.0,
    **more_settings: object,
) -> tuple[int, str, str]:
    """`python -m <package> run ARGS` against the worker of `settings`: code, stdout, stderr."""
    env = service_env(
        address_of(client),
        task_queue=settings.task_queue,
        state_store_url=settings.state_store_url,
        **more_settings,
    )
    return await run_separately(
        sys.executable, "-m", PACKAGE, "run", *args, env=env, timeout=timeout
    )


def shown(code: int, stdout: str, stderr: str) -> str:
    return f"exit code {code}\nstdout:\n{stdout}\nstderr:\n{stderr}"


async def test_json_output_is_the_whole_result(
    client: Client, site: LocalSite, worker: Settings
) -> None:
    urls = [site.url("doc/cli-a"), site.url("status/404"), site.url("doc/cli-b")]
    urls.append(site.url("copy/cli-a/again"))
    code, stdout, stderr = await run_cli(client, worker, "--json", *urls, batch_size=2)
    output = shown(code, stdout, stderr)
    assert code == 0, output
    result = PipelineReport.model_validate(json.loads(stdout))
    assert [d.url for d in result.documents] == [urls[0], urls[2], urls[3]]
    assert [f.url for f in result.failed] == [urls[1]]
    assert result.duplicates == [sorted([urls[0], urls[3]])]
    assert (result.stats.urls, result.stats.batches) == (4, 2)
    assert "started workflow pipeline-" in stderr, output
    assert "http://127.0.0.1:8233/namespaces/default/workflows/pipeline-" in stderr, output
    assert "\r" not in stderr, output  # not a terminal: plain progress lines


async def test_readable_summary_and_urls_file(
    client: Client, site: LocalSite, worker: Settings, tmp_path: Path
) -> None:
    urls_file = tmp_path / "urls.txt"
    urls_file.write_text(
        f"# sample\n{site.url('doc/file-a')}\n\n{site.url('status/410')}  # gone\n"
    )
    code, stdout, stderr = await run_cli(
        client, worker, "--urls-file", str(urls_file), "--workflow-id", "cli-summary"
    )
    output = shown(code, stdout, stderr)
    assert code == 0, output
    assert stdout.startswith("Workflow cli-summary: fetched 1 of 2 URLs ("), output
    assert f"  {site.url('status/410')}: HTTP 410 Gone" in stdout, output


async def test_consecutive_runs_all_exit_zero(
    client: Client, site: LocalSite, worker: Settings
) -> None:
    for run in range(3):
        code, stdout, stderr = await run_cli(client, worker, "--json", site.url("doc/again"))
        assert code == 0, f"run {run + 1}: {shown(code, stdout, stderr)}"


async def test_a_failed_workflow_exits_one_with_the_reason(
    client: Client, site: LocalSite, worker: Settings
) -> None:
    workflow_id = f"doomed-{uuid.uuid4()}"
    gate = f"doomed{uuid.uuid4().hex}"  # the fetch of this page waits until the test opens it
    cli = asyncio.create_task(
        run_cli(client, worker, "--workflow-id", workflow_id, site.url(f"gate/{gate}"))
    )
    try:
        deadline = asyncio.get_running_loop().time() + 120  # a guard for a broken test only
        while not site.hits[f"/gate/{gate}"]:  # then the fetch is certainly in flight
            if cli.done():
                code, stdout, stderr = await cli
                raise AssertionError(
                    f"the CLI exited before the fetch began: {shown(code, stdout, stderr)}"
                )
            assert asyncio.get_running_loop().time() < deadline, "the fetch never began"
            await asyncio.sleep(0.05)
        await client.get_workflow_handle(workflow_id).terminate("operator said stop")
        code, stdout, stderr = await cli
    finally:
        site.open_gate(gate)  # no request thread is left waiting
        if not cli.done():
            cli.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await cli
    assert code == 1, shown(code, stdout, stderr)
    assert stdout == "", shown(code, stdout, stderr)
    assert "error: pipeline failed: TerminatedError: " in stderr, shown(code, stdout, stderr)


def test_no_urls_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run"]) == 2
    assert "error: no URLs given" in capsys.readouterr().err


def test_progress_bar() -> None:
    progress = Progress(stage="fetch", done=12, total=40)
    assert progress_bar(progress, width=10) == "  fetch        [###.......]    12/40"
    assert progress_bar(Progress(stage="done", done=0, total=0), width=4) == (
        "  done         [####]     0/0"
    )


def test_links_to_the_temporal_ui() -> None:
    assert default_ui_url("localhost:7233") == "http://localhost:8233"
    assert default_ui_url("127.0.0.1:41234") == "http://127.0.0.1:8233"
    assert default_ui_url("my-ns.a1b2c.tmprl.cloud:7233") == "https://cloud.temporal.io"
    assert default_ui_url("temporal.internal:7233") is None
    link = workflow_link("https://cloud.temporal.io/", "my-ns.a1b2c", "pipeline 1/2")
    assert link == "https://cloud.temporal.io/namespaces/my-ns.a1b2c/workflows/pipeline%201/2"


async def test_staging_drops_repeats_and_chunks_by_batch_size(store: StateStore) -> None:
    urls = [f"http://example.test/{i % 7}" for i in range(20)]  # 7 distinct
    staged = await stage_urls(store, "wf-staged", urls, chunk_size=3)
    assert (staged.count, staged.chunks) == (7, 3)
    chunks = [await store.get_json(staged.key(i)) for i in range(staged.chunks)]
    assert chunks == [[f"http://example.test/{i}" for i in range(7)][j : j + 3] for j in (0, 3, 6)]


async def test_a_100000_line_urls_file_never_travels_as_one_payload(
    client: Client, worker: Settings, tmp_path: Path
) -> None:
    # URLs that fail at once (not http), so the run is about the input's size, not downloads.
    urls_file = tmp_path / "urls.txt"
    urls_file.write_text("".join(f"ftp://example.test/{i}\n" for i in range(100_000)))
    code, stdout, stderr = await run_cli(
        client,
        worker,
        "--json",
        "--urls-file",
        str(urls_file),
        "--workflow-id",
        "cli-100k",
        timeout=300,  # a guard for a broken test only
        batch_size=2000,
        parallel_batches=8,
    )
    assert code == 0, shown(code, stdout, stderr)
    result = PipelineReport.model_validate(json.loads(stdout))
    assert len(result.failed) == 100_000
    assert result.failed[-1].url == "ftp://example.test/99999"
    assert (result.stats.urls, result.stats.batches) == (100_000, 50)

    handle = client.get_workflow_handle("cli-100k")
    limits = await measure(client, handle.id)
    assert limits.histories == 51  # the pipeline and its 50 batches
    assert limits.largest_payload < 2_000  # keys and counts only
    started = (await handle.fetch_history()).events[0]
    assert started.workflow_execution_started_event_attributes.input.ByteSize() < 2_000
