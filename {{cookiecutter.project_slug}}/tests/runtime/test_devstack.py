"""`make run` (the demo) and `make dev`: the dev server's output, the whole demo, and a local
redis-server when the state store is a Redis that is not running."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from {{ cookiecutter.package_name }}.runtime.devstack import (
    REDIS_DIR,
    SAMPLES_PORT,
    SERVER_LOG,
    SERVER_PORT,
    UI_PORT,
    ephemeral_ports,
    is_listening,
    local_redis,
    port_or_free,
    start_dev_server,
    stop_dev_server,
)
from {{ cookiecutter.package_name }}.runtime.store import (
    open_store,
)

from ..conftest import PACKAGE, PROJECT, run_process, service_env
from ..toolkit.redis_server import RedisServer, free_port, redis_server_binary

SERVER_BANNER = "Temporal Server:"  # the first lines `temporal server start-dev` prints


def kill_processes_naming(text: str) -> list[str]:
    """Kill the processes whose command line contains `text`; return those command lines."""
    listed = subprocess.run(
        ["ps", "-A", "-ww", "-o", "pid=,args="], capture_output=True, text=True, check=True
    )
    found = []
    for line in listed.stdout.splitlines():
        pid, _, args = line.strip().partition(" ")
        if text in args and int(pid) != os.getpid():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
            found.append(args)
    return found


@pytest.fixture
def default_ports_taken() -> Iterator[None]:
    """The demo's default ports held by the test, so that it takes free ones: a `make dev`
    or another test run on this machine cannot collide with it (nor it with them)."""
    with contextlib.ExitStack() as stack:
        for port in (SERVER_PORT, UI_PORT, SAMPLES_PORT):
            sock = stack.enter_context(socket.socket())
            with contextlib.suppress(OSError):  # taken already: avoided all the same
                sock.bind(("127.0.0.1", port))
                sock.listen()
        yield


def test_a_taken_port_gives_way_to_a_free_one_below_the_ephemeral_range() -> None:
    """Not a `bind(0)` port: the dev server takes its internal services' ports that way, and
    one of them once was the port the demo had given it (the server panicked)."""
    low = ephemeral_ports().start
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        taken = int(held.getsockname()[1])
        assert port_or_free(taken) < low
    free = free_port()
    assert port_or_free(free) == free


@pytest.mark.slow(seconds=6)  # the whole demo: a dev server, a worker and a run
async def test_the_demo_runs_the_sample_and_prints_no_error(
    tmp_path: Path, default_ports_taken: None
) -> None:
    shutil.copytree(PROJECT / "sample_data", tmp_path / "sample_data")
    try:
        code, output = await run_process(
            sys.executable,
            *("-m", PACKAGE, "demo"),
            env=service_env(state_store_url=f"sqlite:///{tmp_path / 'state.db'}"),
            cwd=tmp_path,
            timeout=300,  # a guard for a broken test only
        )
    finally:
        # The dev server has a session of its own (Ctrl-C must not reach it): should the
        # demo have been killed, the group kill missed it. Its database path names it.
        left = kill_processes_naming(str(tmp_path / ".temporal"))
    assert code == 0, output
    assert not left, f"the demo left these running: {left}\n{output}"
    # The sample's run (app.run with app.demo_arguments) over the local site: whatever the
    # sample prints, it started its workflow and ended with exit code 0 (asserted above).
    assert re.search(r"^started workflow \S+ on task queue ", output, re.M), output
    # Nothing that reads as a failure: the dev server's output is in its log, not here.
    assert not re.search(r"^error|\bERROR\b", output, re.M), output
    assert SERVER_BANNER not in output, output
    assert SERVER_BANNER in (tmp_path / SERVER_LOG).read_text(), output


def test_the_dev_server_writes_to_its_log_not_the_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    port = free_port()
    server = start_dev_server(port, free_port())
    try:
        assert is_listening("127.0.0.1", port)
    finally:
        stop_dev_server(server)
    assert server.returncode == 0
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")
    assert SERVER_BANNER in SERVER_LOG.read_text()


def test_errors_it_logged_while_it_ran_are_shown_when_it_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A stand-in for the server: any process; the log says what a server in trouble logs.
    monkeypatch.chdir(tmp_path)
    SERVER_LOG.parent.mkdir()
    problem = 'time=2026-12-01T10:00:00.000 level=ERROR msg="persistence: disk I/O error"'
    # What a server still acquiring its shard logs on a busy machine, then retries: noise.
    starting = (
        'time=2026-12-01T09:59:59.000 level=ERROR msg="Queue reader unable to retrieve tasks"'
        ' shard-id=1 component=transfer-queue-processor error="shard status unknown"'
    )
    # What it logs when the worker connects before the server's frontend is ready: noise.
    not_ready = (
        'time=2026-12-01T09:59:59.500 level=ERROR msg="service failures"'
        ' operation=GetSystemInfo grpc_code=Unavailable error="Frontend is not healthy yet"'
    )
    # What it logs when a draining worker's polls end: the demo stops the worker first.
    drained = (
        'time=2026-12-01T10:00:01.000 level=ERROR msg="unable to add metrics baggage to gRPC'
        ' trailer" error="rpc error: code = Internal desc = transport: SendHeader called'
        ' multiple times"'
    )
    SERVER_LOG.write_text(f"Temporal CLI\n{starting}\n{not_ready}\n{problem}\n{drained}\n")
    stand_in = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    stop_dev_server(stand_in)
    err = capsys.readouterr().err
    assert f"logged 1 error(s) while it ran (all its output: {SERVER_LOG})" in err
    assert f"  {problem}" in err.splitlines()
    assert "shard status unknown" not in err
    assert "not healthy yet" not in err
    assert "metrics baggage" not in err
    assert "exited with code" not in err  # it stopped when asked


def test_a_server_that_cannot_start_shows_the_end_of_its_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".temporal" / "dev.db").mkdir(parents=True)  # a folder: no database there
    with pytest.raises(SystemExit) as stopped:
        start_dev_server(free_port(), free_port())
    message = str(stopped.value)
    assert message.startswith("error: temporal server start-dev exited with code 1"), message
    assert str(SERVER_LOG) in message
    assert "unable to open database file" in message


async def test_a_local_redis_is_started_for_the_block_and_keeps_its_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    redis_server_binary()  # skipped without one (except in CI): see tests/toolkit/redis_server.py
    monkeypatch.chdir(tmp_path)
    port = free_port()
    url = f"redis://localhost:{port}/0"
    with local_redis(url):
        async with open_store(url) as store:
            await store.put("k", b"kept")
    assert not is_listening("127.0.0.1", port)
    assert (tmp_path / REDIS_DIR / "appendonlydir").is_dir()
    with local_redis(url):  # the next `make run` finds what the last one stored
        async with open_store(url) as store:
            assert await store.get("k") == b"kept"
    assert not is_listening("127.0.0.1", port)


@pytest.mark.parametrize(
    ("url", "has_password"),
    [
        pytest.param("redis://redis.internal:6379/0", False, id="another-host"),
        pytest.param("rediss://localhost:6380/0", False, id="tls"),
        pytest.param("redis://localhost:{free}/0", True, id="with-a-password"),
        pytest.param("sqlite:///.state/state.db", False, id="sqlite"),
    ],
)
def test_other_stores_are_left_alone(
    url: str, has_password: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with local_redis(url.format(free=free_port()), has_password=has_password):
        pass
    assert not (tmp_path / REDIS_DIR).exists()


def test_a_running_redis_is_used_as_it_is(
    redis_server: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with local_redis(redis_server.url()):
        pass
    assert not (tmp_path / REDIS_DIR).exists()
    assert is_listening("127.0.0.1", redis_server.port)


def test_without_redis_server_it_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path))
    url = f"redis://127.0.0.1:{free_port()}/0"
    with (
        pytest.raises(SystemExit, match="apt-get install redis-server") as stopped,
        local_redis(url),
    ):
        pass
    assert url in str(stopped.value)
