"""`python -m <package> run`: JSON and readable output, exit codes, URL files."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.client import Client

from {{ cookiecutter.package_name }}.__main__ import (
    main,
)
from {{ cookiecutter.package_name }}.models import (
    PipelineResult,
    Progress,
)
from {{ cookiecutter.package_name }}.pool import (
    CpuPool,
)
from {{ cookiecutter.package_name }}.starter import (
    default_ui_url,
    progress_bar,
    workflow_link,
)
from {{ cookiecutter.package_name }}.store import (
    open_store,
)
from {{ cookiecutter.package_name }}.worker import (
    build_worker,
)

from .conftest import address_of, make_settings, service_env
from .http_site import LocalSite

PACKAGE = "{{ cookiecutter.package_name }}"


@pytest.fixture
async def worker(
    client: Client, tmp_path: Path, task_queue: str, pool: CpuPool
) -> AsyncIterator[None]:
    settings = make_settings(tmp_path, task_queue=task_queue)
    async with (
        open_store(settings.state_store_url) as store,
        build_worker(client, settings, store, pool),
    ):
        yield


async def run_cli(client: Client, task_queue: str, *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        PACKAGE,
        "run",
        *args,
        env=service_env(address_of(client), task_queue=task_queue),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


@pytest.mark.usefixtures("worker")
async def test_json_output_is_the_result(client: Client, site: LocalSite, task_queue: str) -> None:
    urls = [site.url("doc/cli-a"), site.url("status/404"), site.url("doc/cli-b")]
    code, stdout, stderr = await run_cli(client, task_queue, "--json", *urls)
    assert code == 0, stderr
    result = PipelineResult.model_validate(json.loads(stdout))
    assert [d.url for d in result.documents] == [urls[0], urls[2]]
    assert [f.url for f in result.failed] == [urls[1]]
    assert "started workflow pipeline-" in stderr
    assert "http://127.0.0.1:8233/namespaces/default/workflows/pipeline-" in stderr
    assert "\r" not in stderr  # not a terminal: plain progress lines


@pytest.mark.usefixtures("worker")
async def test_readable_summary_and_urls_file(
    client: Client, site: LocalSite, task_queue: str, tmp_path: Path
) -> None:
    urls_file = tmp_path / "urls.txt"
    urls_file.write_text(
        f"# sample\n{site.url('doc/file-a')}\n\n{site.url('status/410')}  # gone\n"
    )
    code, stdout, _ = await run_cli(
        client, task_queue, "--urls-file", str(urls_file), "--workflow-id", "cli-summary"
    )
    assert code == 0
    assert stdout.startswith("Workflow cli-summary: fetched 1 of 2 URLs (")
    assert f"  {site.url('status/410')}: HTTP 410 Gone" in stdout


@pytest.mark.usefixtures("worker")
async def test_consecutive_runs_all_exit_zero(
    client: Client, site: LocalSite, task_queue: str
) -> None:
    codes = [
        (await run_cli(client, task_queue, "--json", site.url("doc/again")))[0] for _ in range(3)
    ]
    assert codes == [0, 0, 0]


@pytest.mark.usefixtures("worker")
async def test_a_failed_workflow_exits_one_with_the_reason(
    client: Client, site: LocalSite, task_queue: str
) -> None:
    workflow_id = f"doomed-{uuid.uuid4()}"
    cli = asyncio.create_task(
        run_cli(client, task_queue, "--workflow-id", workflow_id, site.url("slow/5000/doomed"))
    )
    for _ in range(600):  # at most 30 s for the CLI to start the workflow and fetch begin
        if site.hits["/slow/5000/doomed"]:
            break
        assert not cli.done(), "the CLI exited before the fetch began"
        await asyncio.sleep(0.05)
    await client.get_workflow_handle(workflow_id).terminate("operator said stop")
    code, stdout, stderr = await cli
    assert code == 1
    assert stdout == ""
    assert "error: pipeline failed: TerminatedError: " in stderr


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
