"""`python -m <package> run`: JSON and readable output, exit codes, URL files."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import pty
import re
import signal
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Callable
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
    PipelineProgress,
    Progress,
)
from {{ cookiecutter.package_name }}.pipeline.report import (
    PipelineReport,
)
from {{ cookiecutter.package_name }}.pipeline.starter import (
    BatchProgress,
    ProgressDisplay,
    in_turn,
    progress_bar,
    stage_urls,
    stages,
)
from {{ cookiecutter.package_name }}.runtime.pool import (
    CpuPool,
)
from {{ cookiecutter.package_name }}.runtime.store import (
    StateStore,
)
from {{ cookiecutter.package_name }}.runtime.ui import (
    default_ui_url,
    workflow_link,
)
from {{ cookiecutter.package_name }}.runtime.worker import (
    build_worker,
)

from ..conftest import (
    _own_groups,
    address_of,
    free_port,
    make_settings,
    running_worker,
    service_cwd,
    service_env,
)
from ..toolkit.gate import Gate
from ..toolkit.http_site import LocalSite
from ..toolkit.launcher import PIPE, start_python

PACKAGE = "{{ cookiecutter.package_name }}"


@pytest.fixture
async def worker(
    client: Client, tmp_path: Path, task_queue: str, pool: CpuPool
) -> AsyncIterator[Settings]:
    """A worker in this process; `run` must use its settings (the same state store)."""
    settings = make_settings(tmp_path, task_queue=task_queue)
    async with (
        settings.open_store() as store,
        build_worker(client, settings, register(settings, store, pool)),
    ):
        yield settings


async def run_separately(
    *command: str, env: dict[str, str], timeout: float
) -> tuple[int, str, str]:
    """`run_process` of a Python command (`sys.executable, ...`), with stdout and stderr kept
    apart: its exit code, stdout and stderr.

    It runs in `service_cwd()` (no developer's `.env`), in a process group of its own that
    is killed however this ends; on a timeout (only a broken test: choose it far above the
    time the command needs) the AssertionError shows what it had printed.
    """
    assert command[0] == sys.executable, command
    process = await start_python(command[1:], env=env, cwd=service_cwd(), stdout=PIPE, stderr=PIPE)
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


def input_env(**settings: object) -> dict[str, str]:
    """A `run` environment whose Temporal is a closed port on 127.0.0.1: bad input must stop
    `run` before it connects (had it got that far, it would fail there, never hang)."""
    return service_env(f"127.0.0.1:{free_port()}", connect_timeout_seconds=2, **settings)


def closed_redis() -> str:
    return f"redis://127.0.0.1:{free_port()}/0"


@pytest.mark.parametrize(
    "case", ["binary-junk", "missing-file", "a-directory", "redis-unreachable", "sqlite-unwritable"]
)
async def test_bad_input_or_an_unusable_store_is_one_line_and_exit_2(
    tmp_path: Path, case: str
) -> None:
    """Exit 2 and one line on stderr, no traceback; 1 is for a workflow that failed."""
    (tmp_path / "file").write_text("a file, not a folder")
    urls = tmp_path / "urls.txt"
    urls.write_text("http://127.0.0.1:9/doc/x\n")
    store = f"sqlite:///{tmp_path / 'state.db'}"
    expected = f"error: --urls-file {urls}: "
    if case == "binary-junk":
        urls.write_bytes(bytes(range(256)) * 64)
        expected += "not a text file (it holds NUL bytes)"
    elif case == "missing-file":
        urls = tmp_path / "missing.txt"
        expected = f"error: --urls-file {urls}: No such file or directory"
    elif case == "a-directory":
        urls = tmp_path
        expected = f"error: --urls-file {urls}: Is a directory"
    elif case == "redis-unreachable":
        store = closed_redis()
        expected = f"error: Redis state store {store}: "
    else:
        store = f"sqlite:///{tmp_path / 'file' / 'state.db'}"
        expected = f"error: SQLite state store {tmp_path / 'file' / 'state.db'}: "
    env = input_env(state_store_url=store)
    code, stdout, stderr = await run_separately(
        sys.executable, "-m", PACKAGE, "run", "--urls-file", str(urls), env=env, timeout=120
    )
    output = shown(code, stdout, stderr)
    assert (code, stdout) == (2, ""), output
    assert stderr.count("\n") == 1, output
    assert stderr.startswith(expected), output
    assert "Traceback" not in stderr, output


async def test_a_bom_any_scheme_case_and_control_characters(
    client: Client, site: LocalSite, worker: Settings, tmp_path: Path
) -> None:
    """A URL file saved with a byte-order mark reads as without; `HTTP://` is a URL like any
    other (passed on as written); a URL holding terminal escapes is printed escaped, in the
    summary and on stderr, never raw."""
    first = site.url("doc/bom-first")
    upper = site.url("doc/bom-upper").replace("http://", "HTTP://")
    hostile = site.url("status/404") + "?\x1b[2J\x1b]0;owned\x07"
    urls = tmp_path / "urls.txt"
    urls.write_bytes(b"\xef\xbb\xbf" + f"{first}\n{upper}\n{hostile}\n".encode())

    code, stdout, stderr = await run_cli(client, worker, "--json", "--urls-file", str(urls))
    output = shown(code, stdout, stderr)
    assert code == 0, output
    result = PipelineReport.model_validate(json.loads(stdout))
    assert first in [d.url for d in result.documents], output  # not a bad URL "\ufeffhttp..."
    assert upper in [d.url for d in result.documents + result.failed], output  # as written
    assert [f.url for f in result.failed if f.url == hostile] == [hostile]

    code, stdout, stderr = await run_cli(client, worker, "--urls-file", str(urls))
    output = shown(code, stdout, stderr)
    assert code == 0, output
    assert "\x1b" not in stdout + stderr, output
    assert "\x07" not in stdout + stderr, output
    assert "?\\x1b[2J\\x1b]0;owned\\x07: " in stdout, output  # the failure's line, escaped


def test_no_urls_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run"]) == 2
    assert "error: no URLs given" in capsys.readouterr().err


def test_progress_bar() -> None:
    progress = Progress(stage="fetch", done=12, total=40)
    assert progress_bar(progress, width=10) == "  fetch        [###.......]    12/40 URLs"
    assert progress_bar(Progress(stage="done", done=0, total=0), width=4) == (
        "  done         [####]     0/0"
    )


def test_stages_add_the_running_batches_to_the_finished_ones() -> None:
    pipeline = PipelineProgress(
        stage="batches", done=250, total=600, fetched=240, failed=10, batch_size=250, running=[1, 2]
    )
    batches = {
        1: BatchProgress(urls=250, fetched=100),  # fetching
        2: BatchProgress(urls=100, fetched=100, documents=90, fingerprinted=30),  # 10 failed
    }
    assert stages(pipeline, batches) == [
        Progress(stage="fetch", done=250 + 100 + 100, total=600),
        Progress(stage="fingerprint", done=240 + 30, total=600 - 10 - 10),
    ]
    # Before any batch has fetched everything, stage 2 has not started.
    first = PipelineProgress(stage="batches", done=0, total=9, batch_size=5, running=[0, 1])
    fetching = {0: BatchProgress(urls=5, fetched=2), 1: BatchProgress(urls=4)}
    assert stages(first, fetching) == [Progress(stage="fetch", done=2, total=9)]
    # Stage 3: the counts of every batch.
    third = PipelineProgress(stage="duplicates", done=0, total=8, fetched=8, failed=1)
    assert stages(third, {}) == [
        Progress(stage="fetch", done=9, total=9),
        Progress(stage="fingerprint", done=8, total=8),
        Progress(stage="duplicates", done=0, total=8),
    ]


def test_a_poll_describes_a_bounded_number_of_batches_in_turn() -> None:
    running = list(range(20))
    chosen, turn = in_turn(running, 0, 8)
    assert chosen == list(range(8))
    chosen, turn = in_turn(running, turn, 8)
    assert chosen == list(range(8, 16))
    chosen, turn = in_turn(running, turn, 8)
    assert chosen == [16, 17, 18, 19, 0, 1, 2, 3]
    assert in_turn([4, 5], turn, 8) == ([4, 5], 0)


def fetch(done: int, total: int = 200) -> Progress:
    return Progress(stage="fetch", done=done, total=total)


def test_plain_lines_come_per_whole_percent_and_never_go_back() -> None:
    out = io.StringIO()
    display = ProgressDisplay(out, tty=False)
    for progress in [fetch(0), fetch(1), fetch(2), fetch(3), fetch(1), fetch(4), fetch(200)]:
        display.show([progress])
    display.show([fetch(200), Progress(stage="fingerprint", done=0, total=200)])
    display.show([fetch(200), Progress(stage="fingerprint", done=190, total=190)])
    display.close()
    # 1/200 is 0.5 %: no line. 1/200 after 3/200 (an activity retried): 3/200 is kept.
    assert out.getvalue().splitlines() == [
        "  fetch: 0/200 URLs",
        "  fetch: 2/200 URLs",
        "  fetch: 4/200 URLs",
        "  fetch: 200/200 URLs",
        "  fingerprint: 0/200 documents",
        "  fingerprint: 190/190 documents",
    ]


def screen(text: str) -> list[str]:
    """What a terminal shows after `text`: carriage returns, newlines, cursor up (ESC [ n A),
    erase to the end of the line (ESC [ K) and of the screen (ESC [ J) are followed; nothing
    else is expected."""
    lines, row, column = [""], 0, 0
    for piece in re.findall(r"\x1b\[\d*[AKJ]|\r|\n|[^\x1b\r\n]+", text):
        if piece == "\r":
            column = 0
        elif piece == "\n":
            row, column = row + 1, 0
            lines += [""] * (row + 1 - len(lines))
        elif piece.endswith("A"):
            row = max(0, row - int(piece[2:-1] or 1))
        elif piece.endswith("K"):
            lines[row] = lines[row][:column]
        elif piece.endswith("J"):
            lines[row] = lines[row][:column]
            lines[row + 1 :] = [""] * (len(lines) - row - 1)
        else:
            line = lines[row].ljust(column)
            lines[row] = line[:column] + piece + line[column + len(piece) :]
            column += len(piece)
    return lines


def test_terminal_bars_are_redrawn_in_place() -> None:
    out = io.StringIO()
    display = ProgressDisplay(out, tty=True)
    display.show([fetch(50, 100)])
    display.show([fetch(100, 100), Progress(stage="fingerprint", done=10, total=100)])
    display.show(
        [
            fetch(100, 100),
            Progress(stage="fingerprint", done=95, total=95),
            Progress(stage="duplicates", done=95, total=95),
        ]
    )
    display.close()
    assert screen(out.getvalue()) == [
        progress_bar(fetch(100, 100)),
        progress_bar(Progress(stage="fingerprint", done=95, total=95)),
        progress_bar(Progress(stage="duplicates", done=95, total=95)),
        "",
    ]


def test_a_note_goes_above_the_bars() -> None:
    """A retried activity's failure (`run` reads it with describe()) gets a line of its own;
    the bars are drawn again below it."""
    out = io.StringIO()
    display = ProgressDisplay(out, tty=True)
    two = [fetch(100, 100), Progress(stage="fingerprint", done=10, total=100)]
    display.show(two)
    display.note("batch 0: fingerprint_documents is on attempt 2; the last one failed: boom")
    display.show(two)
    display.close()
    assert [line.rstrip() for line in screen(out.getvalue())] == [
        "  batch 0: fingerprint_documents is on attempt 2; the last one failed: boom",
        *(progress_bar(progress) for progress in two),
        "",
    ]


class LiveRun:
    """`python -m <package> run` as a subprocess whose stderr is read while it runs: from a
    pipe, or from a pseudo-terminal (`tty=True`), where `run` draws its bars as it would for
    a person. It runs in a process group of its own; `close` kills the group."""

    def __init__(self, env: dict[str, str], *args: str, tty: bool = False) -> None:
        self.env, self.args, self.tty = env, args, tty
        self.stdout = bytearray()
        self.stderr = bytearray()
        self._tasks: list[asyncio.Task[None]] = []
        self._thread: threading.Thread | None = None

    @property
    def err(self) -> str:
        return self.stderr.decode(errors="replace")

    async def start(self) -> LiveRun:
        master = slave = -1
        if self.tty:
            master, slave = pty.openpty()
        self.process = await start_python(
            ["-m", PACKAGE, "run", *self.args],
            env=self.env,
            cwd=service_cwd(),
            stdout=PIPE,
            stderr=slave if self.tty else PIPE,
        )
        _own_groups.add(self.process.pid)
        assert self.process.stdout is not None
        self._tasks.append(asyncio.create_task(self._drain(self.process.stdout, self.stdout)))
        if self.tty:
            os.close(slave)  # the child has its own: reads end (EIO) once it exits
            self._thread = threading.Thread(target=self._read_terminal, args=(master,))
            self._thread.start()
        else:
            assert self.process.stderr is not None
            self._tasks.append(asyncio.create_task(self._drain(self.process.stderr, self.stderr)))
        return self

    @staticmethod
    async def _drain(stream: asyncio.StreamReader, into: bytearray) -> None:
        while chunk := await stream.read(65536):
            into.extend(chunk)

    def _read_terminal(self, master: int) -> None:
        try:
            while chunk := os.read(master, 65536):
                self.stderr.extend(chunk)
        except OSError:  # EIO: no process has the terminal open any more
            pass
        finally:
            os.close(master)

    def report(self) -> str:
        return (
            f"exit code {self.process.returncode}\nstdout:\n{self.stdout.decode(errors='replace')}"
            f"\nstderr:\n{self.err}"
        )

    async def wait_for(self, what: str, found: Callable[[str], bool]) -> None:
        """Until `found(stderr)`; fails if `run` exits first. The timeout only catches a broken
        test: nothing here waits on speed."""
        deadline = asyncio.get_running_loop().time() + 120
        while not found(self.err):
            assert self.process.returncode is None, f"run exited before {what}: {self.report()}"
            assert asyncio.get_running_loop().time() < deadline, f"no {what}: {self.report()}"
            await asyncio.sleep(0.05)

    async def finish(self) -> int:
        await asyncio.wait_for(self.process.wait(), 120)
        await asyncio.wait_for(asyncio.gather(*self._tasks), 30)
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 30)
        assert self.process.returncode is not None
        return self.process.returncode

    async def close(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        await self.process.wait()
        for task in self._tasks:
            task.cancel()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 30)


@contextlib.asynccontextmanager
async def live_run(env: dict[str, str], *args: str, tty: bool = False) -> AsyncIterator[LiveRun]:
    run = await LiveRun(env, *args, tty=tty).start()
    try:
        yield run
    finally:
        await run.close()


PROGRESS_LINE = re.compile(r"^  [a-z]+: \d+/\d+ [A-Za-z]+$", re.MULTILINE)


def cli_env(client: Client, settings: Settings, **more: object) -> dict[str, str]:
    return service_env(
        address_of(client),
        task_queue=settings.task_queue,
        state_store_url=settings.state_store_url,
        **more,
    )


@pytest.mark.parametrize("tty", [False, True], ids=["plain", "terminal"])
async def test_progress_moves_while_a_batch_is_fetching(
    client: Client, site: LocalSite, worker: Settings, tty: bool
) -> None:
    # One batch of 4 URLs; the 4th waits at a gate that only this test opens, so the batch
    # (its fetch activity) is certainly still running when 3 of 4 are shown.
    gate = f"moving{uuid.uuid4().hex}"
    urls = [site.url(f"doc/moving-{i}") for i in range(3)] + [site.url(f"gate/{gate}")]
    mid_batch = (
        re.compile(r"fetch +\[#+\.+\] +3/4 URLs")
        if tty
        else re.compile(r"^  fetch: 3/4 URLs$", re.M)
    )
    async with live_run(cli_env(client, worker), *urls, tty=tty) as run:
        try:
            await run.wait_for("3/4 URLs fetched", lambda err: bool(mid_batch.search(err)))
            assert site.hits[f"/gate/{gate}"] == 1, run.report()  # held there, not answered
        finally:
            site.open_gate(gate)
        code = await run.finish()
        assert code == 0, run.report()
    assert run.stdout.decode().startswith("Workflow pipeline-"), run.report()
    done = [
        progress_bar(Progress(stage=stage, done=4, total=4))
        for stage in ("fetch", "fingerprint", "duplicates")
    ]
    if tty:  # the last bars, complete, each on its line
        assert screen(run.err)[-4:] == [*done, ""], run.err
    else:
        lines = PROGRESS_LINE.findall(run.err)
        assert lines.index("  fetch: 3/4 URLs") < lines.index("  fetch: 4/4 URLs"), run.err
        assert "  fingerprint: 4/4 documents" in lines, run.err
        assert lines[-1] == "  duplicates: 4/4 documents", run.err


async def test_progress_moves_while_a_batch_is_fingerprinting(
    client: Client, site: LocalSite, tmp_path: Path, task_queue: str
) -> None:
    # A worker whose state store closes a gate at the first checkpoint of stage 2: from then
    # on its store calls wait, so the batch is held mid-way (at most one chunk of 1 document
    # per pool slot done) until the test opens the gate. Its heartbeats go on meanwhile.
    env = service_env(
        address_of(client),
        task_queue=task_queue,
        state_store_url=f"sqlite:///{tmp_path / 'state.db'}",
        cpu_chunk_size=1,
        checkpoint_every_items=1,
        cpu_processes=2,
    )
    gate = Gate(tmp_path / "gate", activity="fingerprint_documents")
    urls = [site.url(f"words/300/fingerprint-progress-{i}") for i in range(12)]
    mid_batch = re.compile(r"^  fingerprint: (\d+)/12 documents$", re.M)

    def part_done(err: str) -> bool:
        return any(0 < int(m.group(1)) < 12 for m in mid_batch.finditer(err))

    async with running_worker(env, gate=gate) as worker, live_run(env, *urls) as run:
        try:
            await gate.wait_held(worker)
            await run.wait_for("some of 12 documents fingerprinted", part_done)
            assert "  fetch: 12/12 URLs" in PROGRESS_LINE.findall(run.err), run.report()
        finally:
            gate.open()
        code = await run.finish()
        assert code == 0, run.report()
    assert PROGRESS_LINE.findall(run.err)[-1] == "  duplicates: 12/12 documents", run.report()


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


@pytest.mark.slow(seconds=12)  # 100,000 URLs in 50 batches
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
