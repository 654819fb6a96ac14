"""Workers for resilience tests: real processes to kill -9 and SIGTERM, or one in this process.

`WorkerProcess` is `python -m <package> worker` (or, with a gate or another service,
`python -m tests.toolkit.gated_worker`), started the way a pod runs it:

- it leads a process group of its own, which its pool children join: `kill()` reaches them
  all, as a deleted pod or a dead node does;
- it has a known Temporal identity (`worker.identity`), so a test can tell which worker
  Temporal gave an activity to;
- its log (stderr) is read all along (a full pipe would stall it) and kept (`worker.log`);
- it runs in `service_cwd()` with `service_env()`, so no developer's `.env` or settings
  reach it.

    async with running_worker(env, gate=Gate(tmp_path / "gate")) as worker:
        ...
        await worker.kill()                  # SIGKILL to the group; its exit code (-9)
        assert await worker.drain(gate) == 0  # SIGTERM, "draining", open the gate, exit 0

`running_workers(env, 2, gate=...)` starts several side by side, each with a gate of its
own; `workers.holding()` is the one whose gate closed: certainly the worker running the
gated activity, mid-way, with a checkpoint saved. Whatever a test started is stopped when
its block ends, however it ends.

`in_process_worker` runs a `Service` inside the test process instead (faster; for tests
that do not kill the worker, or that break something else, such as the store).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import signal
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any, overload

from temporalio.client import Client
from temporalio.worker import Worker

from {{ cookiecutter.package_name }}.app import (
    SERVICE,
)
from {{ cookiecutter.package_name }}.runtime.pool import (
    CpuPool,
)
from {{ cookiecutter.package_name }}.runtime.settings import (
    ENV_PREFIX,
    RuntimeSettings,
)
from {{ cookiecutter.package_name }}.runtime.worker import (
    Service,
    build_worker,
)

from .gate import Gate, GatedStore
from .launcher import PIPE, ChildProcess, start_python
from .leak_guard import OWN_GROUPS
from .metrics import scrape, totals
from .observe import pending_activity
from .processes import PACKAGE, free_port, kill_group, service_cwd

START_TIMEOUT = 60.0  # guards only: no speed makes a test pass or fail by them
STOP_TIMEOUT = 60.0
_numbers = itertools.count(1)
_readers: set[asyncio.Task[None]] = set()


class WorkerProcess:
    """One worker subprocess, leading its own process group. Make it with `start`."""

    def __init__(self, process: ChildProcess, identity: str, gate: Gate | None) -> None:
        self.process = process
        self.identity = identity
        self.gate = gate
        self.metrics_port = 0  # set by `start(serve_metrics=True)`
        self._lines: list[str] = []

    @classmethod
    async def start(
        cls,
        env: dict[str, str],
        *,
        gate: Gate | None = None,
        service: str | None = None,
        identity: str | None = None,
        serve_metrics: bool = False,
    ) -> WorkerProcess:
        """Start a worker with `env` (from `service_env`); return once it polls.

        `gate`: its state store behind that gate. `service`: a `Service` as
        "module:attribute" instead of the app's. Either runs `tests.toolkit.gated_worker`;
        neither, the service's own `worker` command. `identity`: its Temporal identity
        (default `worker-<n>-<random>@test`). `serve_metrics`: /metrics on a free port
        (`metrics_port`, `metrics()`). Fails with the worker's log if it does not start.
        """
        if not serve_metrics:
            return await cls._start(env, gate, service, identity)
        for _ in range(5):
            port = free_port()  # free a moment ago: another program may take it first
            try:
                worker = await cls._start(
                    {**env, f"{ENV_PREFIX}METRICS_PORT": str(port)}, gate, service, identity
                )
            except AssertionError as error:  # the worker said the port is in use: another
                if "in use" not in str(error):
                    raise
                continue
            worker.metrics_port = port
            return worker
        raise AssertionError("five free ports in a row were taken before the worker bound them")

    @classmethod
    async def _start(
        cls, env: dict[str, str], gate: Gate | None, service: str | None, identity: str | None
    ) -> WorkerProcess:
        identity = identity or f"worker-{next(_numbers)}-{uuid.uuid4().hex[:6]}@test"
        env = {**env, f"{ENV_PREFIX}IDENTITY": identity}
        if gate is not None:
            gate.folder.mkdir(parents=True, exist_ok=True)
            env.update(gate.env())
        if gate is None and service is None:
            command = ["-m", PACKAGE, "worker"]
        else:
            command = ["-m", "tests.toolkit.gated_worker", *([service] if service else [])]
        process = await start_python(command, env=env, cwd=service_cwd(), stderr=PIPE)
        OWN_GROUPS.add(process.pid)
        worker = cls(process, identity, gate)
        try:
            await worker._read_log_until_started()
        except BaseException:
            await worker.stop()
            raise
        return worker

    async def _read_log_until_started(self) -> None:
        assert self.process.stderr is not None
        stream = self.process.stderr
        started = asyncio.Event()

        async def read() -> None:
            while line := await stream.readline():
                self._lines.append(line.decode(errors="replace"))
                if "worker started" in self._lines[-1]:
                    started.set()

        reader = asyncio.create_task(read())
        _readers.add(reader)  # keeps reading after this returns, until the worker ends
        reader.add_done_callback(_readers.discard)
        waiting = asyncio.create_task(started.wait())
        await asyncio.wait(
            [waiting, reader], timeout=START_TIMEOUT, return_when=asyncio.FIRST_COMPLETED
        )
        waiting.cancel()
        if not started.is_set():
            raise AssertionError(f"the worker did not start:\n{self.log}")

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        return self.process.returncode

    @property
    def log(self) -> str:
        """Everything the worker has written to stderr so far (for assertion messages)."""
        return "".join(self._lines)

    def send_signal(self, sig: int) -> None:
        """`sig` to the worker process alone (its pool children ignore SIGINT and SIGTERM)."""
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(sig)

    def signal_group(self, sig: int) -> None:
        """`sig` to the whole group, as Ctrl-C in a terminal or a pod's deletion does."""
        kill_group(self.pid, sig)

    async def wait(self, timeout: float = STOP_TIMEOUT) -> int:
        """Its exit code, once it has exited; fails with its log after `timeout` (a guard)."""
        try:
            return await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            raise AssertionError(f"the worker did not exit in {timeout:g}s:\n{self.log}") from None

    async def wait_for_log(self, text: str, timeout: float = STOP_TIMEOUT) -> None:
        """Wait until the worker has logged `text`; fails if it exits first."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while text not in self.log:
            if self.returncode is not None or loop.time() > deadline:
                raise AssertionError(f"the worker never logged {text!r}:\n{self.log}")
            await asyncio.sleep(0.02)

    async def kill(self) -> int:
        """kill -9 of the worker and its pool children (the group); its exit code (-9)."""
        self.signal_group(signal.SIGKILL)
        return await self.wait()

    async def terminate(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM, as Kubernetes stops a pod; its exit code once it has drained."""
        self.send_signal(signal.SIGTERM)
        return await self.wait(timeout)

    async def drain(
        self, gate: Gate | None = None, *, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT
    ) -> int:
        """Stop it mid-activity: `sig`, wait until it is draining (it polls no more), open
        `gate` (default its own) so the held activity finishes during the drain; its exit
        code. `sig=signal.SIGINT` sends Ctrl-C to the whole group, as a terminal does."""
        if sig == signal.SIGINT:
            self.signal_group(sig)
        else:
            self.send_signal(sig)
        await self.wait_for_log("draining", timeout)
        if (gate := gate or self.gate) is not None:
            gate.open()
        return await self.wait(timeout)

    async def metrics(self) -> dict[str, float]:
        """Its /metrics now, each metric summed over its labels (`serve_metrics=True`)."""
        assert self.metrics_port, "start it with serve_metrics=True"
        return dict(totals(await asyncio.to_thread(scrape, self.metrics_port)))

    async def stop(self) -> None:
        """Make sure the worker and its group are gone (the `finally` of every test)."""
        kill_group(self.pid)
        await self.process.wait()


@contextlib.asynccontextmanager
async def running_worker(
    env: dict[str, str],
    *,
    gate: Gate | None = None,
    service: str | None = None,
    identity: str | None = None,
    serve_metrics: bool = False,
) -> AsyncIterator[WorkerProcess]:
    """`WorkerProcess.start(...)`, killed (with its group) when the block ends, if need be."""
    worker = await WorkerProcess.start(
        env, gate=gate, service=service, identity=identity, serve_metrics=serve_metrics
    )
    try:
        yield worker
    finally:
        await worker.stop()


class Workers(Sequence[WorkerProcess]):
    """Workers on one task queue, each with a gate of its own (if gated)."""

    def __init__(self, workers: list[WorkerProcess]) -> None:
        self._workers = workers

    @overload
    def __getitem__(self, index: int) -> WorkerProcess: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[WorkerProcess]: ...
    def __getitem__(self, index: int | slice) -> WorkerProcess | Sequence[WorkerProcess]:
        return self._workers[index]

    def __len__(self) -> int:
        return len(self._workers)

    def __iter__(self) -> Iterator[WorkerProcess]:
        return iter(self._workers)

    async def holding(self, client: Client | None = None, timeout: float = 120.0) -> WorkerProcess:
        """The worker whose gate closed: it runs the gated activity, a checkpoint saved, held.

        With `client`, Temporal must agree: the activity the gate names is pending, started
        by this worker's identity. Fails at once if a worker exits first; the timeout only
        guards against a broken test.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for worker in self._workers:
                assert worker.gate is not None, "start them with a gate"
                if worker.gate.is_held():
                    if client is not None:
                        await confirm_holder(client, worker)
                    return worker
                if worker.returncode is not None:
                    raise AssertionError(
                        f"{worker.identity} exited ({worker.returncode}) before any gate "
                        f"closed:\n{worker.log}"
                    )
            if loop.time() > deadline:
                raise AssertionError(f"no worker's gate closed in {timeout:g}s")
            await asyncio.sleep(0.02)

    def others(self, worker: WorkerProcess) -> list[WorkerProcess]:
        return [w for w in self._workers if w is not worker]

    def open_gates(self) -> None:
        """Open every gate: nothing (a retry, another run) is held from now on."""
        for worker in self._workers:
            if worker.gate is not None:
                worker.gate.open()


async def confirm_holder(client: Client, worker: WorkerProcess) -> None:
    """Fail unless Temporal says the activity `worker`'s gate holds is running on `worker`."""
    assert worker.gate is not None
    held = worker.gate.holder()
    handle = client.get_workflow_handle(held.workflow_id, run_id=held.workflow_run_id)
    pending = await pending_activity(handle, held.activity_type)
    seen = pending.last_worker_identity if pending is not None else None
    assert seen == worker.identity, (
        f"Temporal has {held.activity_type} on {seen}, not {worker.identity}"
    )


@contextlib.asynccontextmanager
async def running_workers(
    env: dict[str, str],
    count: int = 2,
    *,
    gate: Gate | None = None,
    service: str | None = None,
) -> AsyncIterator[Workers]:
    """`count` workers with `env`, started side by side; each gets `gate.for_worker(i)`.
    All are killed when the block ends, if need be."""
    async with contextlib.AsyncExitStack() as stack:

        async def one(i: int) -> WorkerProcess:
            own = gate.for_worker(f"worker-{i}") if gate is not None else None
            return await stack.enter_async_context(running_worker(env, gate=own, service=service))

        try:
            async with asyncio.TaskGroup() as group:
                starting = [group.create_task(one(i)) for i in range(count)]
        except BaseExceptionGroup as errors:  # the first says why; the rest were cancelled
            raise errors.exceptions[0] from None
        yield Workers([task.result() for task in starting])


@contextlib.asynccontextmanager
async def in_process_worker(
    client: Client,
    settings: RuntimeSettings,
    *,
    service: Service[Any] = SERVICE,
    pool: CpuPool | None = None,
    gate: Gate | None = None,
) -> AsyncIterator[Worker]:
    """`service`'s worker in this process, polling `settings.task_queue` until the block ends.

    Its state store is `settings.state_store_url`, behind `gate` if given; `pool` is the
    process pool its CPU work runs on (a new one of `settings.cpu_processes` if None).
    """
    async with contextlib.AsyncExitStack() as stack:
        store = await stack.enter_async_context(settings.open_store())
        if gate is not None:
            store = GatedStore(store, gate)
        if pool is None:
            pool = stack.enter_context(CpuPool(settings.cpu_processes))
        registration = service.register(settings, store, pool)
        yield await stack.enter_async_context(build_worker(client, settings, registration))
