"""The health endpoints over real HTTP: answers, readiness, a blocked loop, a port in use."""

from __future__ import annotations

import asyncio
import socket
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from {{ cookiecutter.package_name }}.runtime.health import (
    start_health_server,
)
from {{ cookiecutter.package_name }}.runtime.settings import (
    ENV_PREFIX,
    RuntimeSettings,
)
from {{ cookiecutter.package_name }}.runtime.worker import (
    PortUnavailableError,
    run_worker,
)

from . import probe


def get(url: str, method: str = "GET", timeout: float = 5.0) -> tuple[int, str]:
    """Status and body of a request from a thread (the event loop must stay free)."""
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


async def test_liveness_readiness_and_errors() -> None:
    ready = False
    async with await start_health_server(0, lambda: ready, host="127.0.0.1") as server:
        base = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        assert await asyncio.to_thread(get, f"{base}/healthz") == (200, "ok\n")
        assert await asyncio.to_thread(get, f"{base}/readyz") == (503, "not ready\n")
        ready = True
        assert await asyncio.to_thread(get, f"{base}/readyz?verbose") == (200, "ready\n")
        assert await asyncio.to_thread(get, f"{base}/readyz", "HEAD") == (200, "")
        assert (await asyncio.to_thread(get, f"{base}/metrics"))[0] == 404
        assert (await asyncio.to_thread(get, f"{base}/healthz", "POST"))[0] == 405


async def test_a_blocked_event_loop_fails_the_liveness_probe() -> None:
    async with await start_health_server(0, lambda: True, host="127.0.0.1") as server:
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/healthz"
        outcome: list[object] = []

        def probe() -> None:  # like the kubelet: a request with a timeout
            try:
                outcome.append(get(url, timeout=0.3))
            except TimeoutError as exc:
                outcome.append(exc)

        thread = threading.Thread(target=probe)
        thread.start()
        # Block the event loop, as a synchronous call in an activity would, for exactly as
        # long as the probe waits: the loop is blocked from before its request until after
        # its timeout, however fast or slow the machine is. (The join's own timeout only
        # ends a broken test.)
        thread.join(timeout=60)
        assert not thread.is_alive(), "the probe never returned"
        assert len(outcome) == 1
        assert isinstance(outcome[0], TimeoutError), outcome[0]
        assert await asyncio.to_thread(get, url) == (200, "ok\n")  # the loop runs again


@pytest.mark.parametrize("setting", ["health_port", "metrics_port"])
async def test_a_port_in_use_stops_the_worker_with_one_line(setting: str, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        ports = {"health_port": 0, "metrics_port": 0, setting: port}
        store = f"sqlite:///{tmp_path / 'state.db'}"
        settings = RuntimeSettings(_env_file=None, state_store_url=store, **ports)
        with pytest.raises(PortUnavailableError) as raised:
            await run_worker(probe.SERVICE, settings)  # fails before it connects to anything
    message = str(raised.value)
    assert message.startswith(f"{ENV_PREFIX}{setting.upper()}={port}: ")
    assert "in use" in message
    assert message.endswith("(choose another port, or 0 to serve none)")
