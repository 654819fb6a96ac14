"""The worker as a real process: draining on SIGTERM, giving up, side by side, kill -9.

Every worker here runs the test-only probe service (tests/runtime/probe.py), so these tests
prove the runtime whatever sample the project keeps. Its activity is held at a gate after
its first checkpoint (tests/toolkit/gate.py): "mid-activity" is a certain moment, not a
race with the machine's speed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import secrets
import signal
import socket
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle

from {{ cookiecutter.package_name }}.runtime.settings import (
    ENV_PREFIX,
)

from ..toolkit.gate import Gate
from ..toolkit.metrics import scrape
from ..toolkit.observe import activity_outcomes, finished_attempts, identities
from ..toolkit.processes import PACKAGE, address_of, free_port, run_process, service_env
from ..toolkit.worker import running_worker, running_workers
from . import probe
from .test_health import get

CHECKPOINT_EVERY = 3
COMPLETED = EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED


def probe_env(
    client: Client, task_queue: str, store_url: str, **settings: object
) -> dict[str, str]:
    return service_env(
        address_of(client),
        task_queue=task_queue,
        state_store_url=store_url,
        cpu_processes=1,
        checkpoint_every_items=CHECKPOINT_EVERY,
        checkpoint_every_seconds=3600,  # by count only: the gate closes at item CHECKPOINT_EVERY
        sticky_queue_timeout_seconds=1,
        graceful_shutdown_seconds=60,
        **settings,
    )


async def start_probe(
    client: Client, task_queue: str, items: int = 8
) -> WorkflowHandle[Any, probe.ProbeResult]:
    return await client.start_workflow(
        probe.ProbeWorkflow.run,
        probe.ProbeInput(items=items),
        id=f"probe-{uuid.uuid4()}",
        task_queue=task_queue,
    )


async def test_sigterm_drains_the_running_activity(
    client: Client, tmp_path: Path, task_queue: str
) -> None:
    health_port = free_port()
    health = f"http://127.0.0.1:{health_port}"
    env = probe_env(client, task_queue, f"sqlite:///{tmp_path / 's.db'}", health_port=health_port)
    gate = Gate(tmp_path / "gate", activity=probe.ACTIVITY)
    async with running_worker(env, gate=gate, service=probe.SPEC) as worker:
        handle = await start_probe(client, task_queue)
        try:
            await gate.wait_held(worker)  # mid-activity, a checkpoint saved, held there
            assert await asyncio.to_thread(get, f"{health}/readyz") == (200, "ready\n")
            worker.send_signal(signal.SIGTERM)
            # Draining: no longer ready, still alive (a liveness failure now would kill it).
            await worker.wait_for_log("draining")
            assert await asyncio.to_thread(get, f"{health}/readyz") == (503, "not ready\n")
            assert await asyncio.to_thread(get, f"{health}/healthz") == (200, "ok\n")
            gate.open()  # the running activity finishes during the drain
            assert await worker.wait() == 0, worker.log
            assert "worker stopped" in worker.log

            # It finished on its first attempt, during the drain: nothing to retry. (No
            # worker is left to run the workflow's next task.)
            assert await activity_outcomes(handle, probe.ACTIVITY) == [COMPLETED]
            assert await finished_attempts(handle, probe.ACTIVITY) == [1]
        finally:
            await handle.terminate("test over")


async def test_unreachable_temporal_is_retried_then_given_up(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{sock.getsockname()[1]}"
    env = service_env(
        address, connect_timeout_seconds=1.5, state_store_url=f"sqlite:///{tmp_path}/s.db"
    )
    code, text = await run_process(sys.executable, "-m", PACKAGE, "worker", env=env, timeout=60)
    assert code == 1, text
    assert f"Temporal at {address} not reachable (" in text  # a retry was logged
    assert f"Temporal at {address} not reachable after 1.5s" in text
    assert "Traceback" not in text


async def test_a_redis_password_in_the_clear_is_warned_at_start(tmp_path: Path) -> None:
    """One warning line naming the setting, before anything connects (the store is not
    contacted at start: no traffic leaves the machine; Temporal is a closed local port)."""
    password = secrets.token_hex(8)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{sock.getsockname()[1]}"
    env = service_env(
        address,
        connect_timeout_seconds=1,
        state_store_url="redis://redis.internal:6379/0",
        state_store_password=password,
    )
    code, text = await run_process(sys.executable, "-m", PACKAGE, "worker", env=env, timeout=60)
    assert code == 1, text  # Temporal unreachable
    [warning] = [line for line in text.splitlines() if "STATE_STORE_PASSWORD" in line]
    assert "WARNING" in warning, text
    assert "rediss://" in warning, text
    assert password not in text


async def test_an_unusable_sqlite_store_stops_the_worker_with_one_line(tmp_path: Path) -> None:
    """Exit 2, as for any bad setting, before Temporal is contacted (a closed local port)."""
    (tmp_path / "file").write_text("a file, not a folder")
    path = tmp_path / "file" / "state.db"
    env = service_env(
        f"127.0.0.1:{free_port()}", connect_timeout_seconds=1, state_store_url=f"sqlite:///{path}"
    )
    code, text = await run_process(sys.executable, "-m", PACKAGE, "worker", env=env, timeout=60)
    assert code == 2, text
    assert "Traceback" not in text
    [line] = [line for line in text.splitlines() if "STATE_STORE_URL" in line]
    assert f"STATE_STORE_URL: SQLite state store {path}: " in line, text
    assert "not reachable" not in text  # it never got as far as Temporal


def listening_addresses(port: int) -> set[str]:
    """The local addresses of the sockets listening on TCP `port`, from /proc (IPv4 and 6)."""
    found = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.partition(":")
            if state != "0A" or int(hex_port, 16) != port:  # 0A: LISTEN
                continue
            raw = bytes.fromhex(address)
            # /proc writes each 32-bit word in host (little-endian) order.
            ordered = b"".join(raw[i : i + 4][::-1] for i in range(0, width // 2, 4))
            found.add(str(ipaddress.ip_address(ordered)))
    return found


@pytest.mark.parametrize("listen_host", [None, "::1"])
async def test_health_and_metrics_listen_on_the_chosen_address(
    client: Client, tmp_path: Path, task_queue: str, listen_host: str | None
) -> None:
    """127.0.0.1 unless `LISTEN_HOST` says otherwise (0.0.0.0 or :: in a container); IPv6
    works. Only loopback addresses are ever contacted here."""
    family = socket.AF_INET6 if listen_host else socket.AF_INET
    ports = []
    for _ in range(2):
        with socket.socket(family) as sock:
            sock.bind((listen_host or "127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
    health_port, metrics_port = ports
    more = {"listen_host": listen_host} if listen_host else {}
    env = probe_env(
        client,
        task_queue,
        f"sqlite:///{tmp_path / 's.db'}",
        health_port=health_port,
        metrics_port=metrics_port,
        **more,
    )
    host = f"[{listen_host}]" if listen_host else "127.0.0.1"
    async with running_worker(env, service=probe.SPEC) as worker:
        assert await asyncio.to_thread(get, f"http://{host}:{health_port}/healthz") == (200, "ok\n")
        status, body = await asyncio.to_thread(get, f"http://{host}:{metrics_port}/metrics")
        assert status == 200, body
        expected = {listen_host or "127.0.0.1"}
        assert listening_addresses(health_port) == expected, worker.log
        assert listening_addresses(metrics_port) == expected, worker.log
        assert f"listen_host={listen_host or '127.0.0.1'}" in worker.log


@pytest.mark.slow(seconds=7)  # two workers and a heartbeat timeout, per store
async def test_kill_9_of_the_holder_resumes_on_the_other_worker_from_its_checkpoint(
    client: Client, tmp_path: Path, task_queue: str, store_url: str
) -> None:
    """kill -9 of the worker (and its pool) running the activity, a checkpoint saved: the
    retry runs on the other worker, restores exactly what was saved, and loses nothing."""
    env = probe_env(client, task_queue, store_url)
    gate = Gate(tmp_path / "gates", activity=probe.ACTIVITY)
    async with running_workers(env, 2, gate=gate, service=probe.SPEC) as workers:
        handle = await start_probe(client, task_queue, items=8)
        holder = await workers.holding(client)
        assert await holder.kill() == -signal.SIGKILL
        workers.open_gates()  # the retry, wherever it runs, must not be held
        result = await asyncio.wait_for(handle.result(), 120)
        (other,) = workers.others(holder)

    assert result.total == probe.expected_total(8)
    assert result.attempt == 2, other.log
    assert result.restored == CHECKPOINT_EVERY  # the held checkpoint, all of it
    assert (result.memoized, result.computed) == (0, 8 - CHECKPOINT_EVERY)  # nothing redone
    assert await identities(handle, probe.ACTIVITY) == {other.identity}


def served_ports(log: str) -> tuple[int, int]:
    """(health, metrics) ports from a worker's "worker started" line."""
    found = re.search(r"worker started: .* health_port=(\d+) metrics_port=(\d+)", log)
    assert found, log
    return int(found[1]), int(found[2])


async def test_two_workers_share_one_task_queue_side_by_side(
    client: Client, tmp_path: Path, task_queue: str
) -> None:
    """`make worker` twice on one machine: the ports are left at their defaults, which only
    one worker can hold; the other serves on free ports and says so. Work that one worker
    cannot take goes to the other: the worker holding the first run's activity (at its
    gate) is told to drain, so it polls no more; a second run then can only run on the
    other. Both runs finish, each activity on the worker it had to be on."""
    env = probe_env(client, task_queue, f"sqlite:///{tmp_path / 's.db'}")
    for name in ("HEALTH_PORT", "METRICS_PORT"):
        del env[ENV_PREFIX + name]  # the defaults, as `make worker` has them
    gate = Gate(tmp_path / "gates", activity=probe.ACTIVITY)
    async with running_workers(env, 2, gate=gate, service=probe.SPEC) as workers:
        ports = [served_ports(worker.log) for worker in workers]
        health, metrics = zip(*ports, strict=True)
        assert len(set(health)) == 2, ports
        assert len(set(metrics)) == 2, ports
        assert all(port > 0 for pair in ports for port in pair), ports
        assert any("is in use (another worker on this machine?)" in w.log for w in workers)
        for port in health:  # (/readyz says "ready" a moment after the line: not yet)
            assert await asyncio.to_thread(get, f"http://127.0.0.1:{port}/healthz") == (200, "ok\n")

        held = await start_probe(client, task_queue)
        holder = await workers.holding(client)
        (other,) = workers.others(holder)
        assert other.gate is not None
        assert holder.gate is not None
        other.gate.open()
        holder.send_signal(signal.SIGTERM)
        await holder.wait_for_log("draining")
        moved = await start_probe(client, task_queue, items=2)
        assert (await asyncio.wait_for(moved.result(), 60)).total == probe.expected_total(2)
        # The SDK's metrics of the worker that ran it, on its own port.
        _, other_metrics = served_ports(other.log)
        exposition = await asyncio.to_thread(scrape, other_metrics)
        assert "temporal_activity_execution_latency" in exposition
        holder.gate.open()
        assert await holder.wait() == 0, holder.log
        assert (await asyncio.wait_for(held.result(), 60)).total == probe.expected_total(8)
        assert await other.terminate() == 0, other.log

    assert await identities(held, probe.ACTIVITY) == {holder.identity}
    assert await identities(moved, probe.ACTIVITY) == {other.identity}
