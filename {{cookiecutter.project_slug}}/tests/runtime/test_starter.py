"""`read_urls` and `printable`: what every `run` command does with its input and output; and
`run`'s waiting: it shows why a pending activity is being retried, and bounds the run."""

from __future__ import annotations

import asyncio
import io
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.common import RetryPolicy
from temporalio.worker import Worker

from {{ cookiecutter.package_name }}.runtime.starter import (
    InputError,
    execution_timeout,
    printable,
    read_urls,
    report_failures,
)

from ..conftest import make_settings


def test_urls_from_arguments_then_the_file(tmp_path: Path) -> None:
    urls_file = tmp_path / "urls.txt"
    urls_file.write_text("# a comment\nhttp://a.test/1\n\n  http://a.test/2  # two\r\n")
    assert read_urls(["http://x.test/"], urls_file) == [
        "http://x.test/",
        "http://a.test/1",
        "http://a.test/2",
    ]
    assert read_urls(["http://x.test/"], None) == ["http://x.test/"]


def test_a_byte_order_mark_is_skipped(tmp_path: Path) -> None:
    """Windows editors start UTF-8 files with one: it must not become part of the first URL."""
    urls_file = tmp_path / "urls.txt"
    urls_file.write_bytes(b"\xef\xbb\xbfhttp://a.test/1\nhttp://a.test/2\n")
    assert read_urls([], urls_file) == ["http://a.test/1", "http://a.test/2"]


def test_urls_are_not_judged_here(tmp_path: Path) -> None:
    """Any spelling of the scheme, and even a bad URL, is passed on as written: a URL that
    cannot be fetched is that URL's failure in the result, with its reason."""
    urls_file = tmp_path / "urls.txt"
    urls_file.write_text("HTTP://Example.com/\nHttps://a.test/\nnot a url\nhttp://a.test/\x1b[2J\n")
    assert read_urls([], urls_file) == [
        "HTTP://Example.com/",
        "Https://a.test/",
        "not a url",
        "http://a.test/\x1b[2J",  # one URL: lines end at \n only
    ]


@pytest.mark.parametrize(
    ("content", "why"),
    [
        pytest.param(bytes(range(256)) * 4, "not a text file (it holds NUL bytes)", id="binary"),
        pytest.param(
            b"http://a.test/\n\xff\xfe\x80junk\n",
            "not UTF-8 text (byte 15 is 0xff)",
            id="not-utf-8",
        ),
    ],
)
def test_a_file_that_is_not_text_is_one_input_error(
    tmp_path: Path, content: bytes, why: str
) -> None:
    urls_file = tmp_path / "urls.bin"
    urls_file.write_bytes(content)
    with pytest.raises(InputError) as refused:
        read_urls([], urls_file)
    assert str(refused.value) == f"--urls-file {urls_file}: {why}"


def test_a_file_that_cannot_be_read_is_one_input_error(tmp_path: Path) -> None:
    with pytest.raises(
        InputError, match=r"^--urls-file \S+missing.txt: No such file or directory$"
    ):
        read_urls([], tmp_path / "missing.txt")
    with pytest.raises(InputError, match=r": Is a directory$"):
        read_urls([], tmp_path)


def test_printable_escapes_what_a_terminal_would_act_on() -> None:
    raw = "http://a.test/\x1b[2J\x07\x00\x7f\x9b\u202e\udcff é ü"
    shown = printable(raw)
    assert shown == "http://a.test/\\x1b[2J\\x07\\x00\\x7f\\x9b\\u202e\\udcff é ü"
    assert shown.isprintable()
    assert printable("two\nlines\tx") == "two\nlines\\x09x"
    assert printable("two\nlines", keep_newlines=False) == "two\\x0alines"


GUARD_SECONDS = 60.0  # ends a broken test; no speed makes it pass or fail
release = asyncio.Event()  # set by the test: the activity then succeeds


@activity.defn
async def fails_until_released() -> str:
    if not release.is_set():
        raise RuntimeError(f"upstream not ready (attempt {activity.info().attempt})")
    return "done"


@workflow.defn(sandboxed=False)
class RetriesAnActivity:
    @workflow.run
    async def run(self) -> str:
        return await workflow.execute_activity(
            fails_until_released,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(
                initial_interval=timedelta(seconds=0.2), backoff_coefficient=1
            ),
        )


async def test_the_last_failure_of_a_retried_activity_is_shown(
    client: Client, task_queue: str
) -> None:
    release.clear()
    out = io.StringIO()
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[RetriesAnActivity],
        activities=[fails_until_released],
    ):
        handle = await client.start_workflow(
            RetriesAnActivity.run, id=f"retries-{uuid.uuid4()}", task_queue=task_queue
        )
        watcher = asyncio.create_task(report_failures(handle, out, poll_seconds=0.1))
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + GUARD_SECONDS
            while "upstream not ready" not in out.getvalue():
                assert loop.time() < deadline, out.getvalue()
                await asyncio.sleep(0.05)
            release.set()
            assert await asyncio.wait_for(handle.result(), GUARD_SECONDS) == "done"
        finally:
            release.set()
            watcher.cancel()
    line = out.getvalue().splitlines()[0]
    assert line.startswith("  fails_until_released is on attempt "), line
    assert "the last one failed: upstream not ready (attempt " in line


def test_the_execution_timeout_is_the_setting(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, workflow_execution_timeout_seconds=90)
    assert execution_timeout(settings) == timedelta(seconds=90)
