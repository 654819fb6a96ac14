"""Start the tests' Python subprocesses as forks of a warm interpreter: same processes, less CPU.

Every worker and `run` a test starts as `python -m <package> ...` begins by importing
temporalio, pydantic and aiohttp: about a second of CPU on a small machine, the largest cost
of `make test` (some 50 such starts). The launcher is one process per test session that has
imported them already (under pytest-xdist, the controller runs it and every xdist worker
uses it). Asked to start `python -m M args` or `python -c CODE args`, it forks; the child
takes the caller's environment, working folder and stdio, leads a process group of its own,
and runs M as `__main__` the way `python -m` does.

It is a real process all the same: its own pid and group (kill -9 and SIGTERM reach it as
they reach any worker), its own pool children (spawned fresh), its exit code. What differs
from a cold start is only what was imported before the fork: third-party libraries, never
this project's modules (the launcher drops them after warming up, so each child imports the
service afresh, under its own settings). Anything else (another Python, `-u`, other
`PYTHON*` variables) starts cold, as does everything when `TESTS_COLD_START=1` is set or no
launcher runs (outside pytest: tests/conftest.py starts it for the session).

    process = await start_python(["-m", "pkg", "worker"], env=env, cwd=cwd, stderr=PIPE)

This module imports only the standard library: it is the launcher's own entry point
(`python -m tests.toolkit.launcher PACKAGE SOCKET`) as well as its client.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import os
import pkgutil
import runpy
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import types
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

PIPE = asyncio.subprocess.PIPE
STDOUT = asyncio.subprocess.STDOUT
DEVNULL = asyncio.subprocess.DEVNULL
COLD_START_VARIABLE = "TESTS_COLD_START"
START_TIMEOUT = 120.0  # a guard: the launcher's imports take a second or two


class ChildProcess(Protocol):
    """What the toolkit uses of a subprocess: asyncio's `Process`, or a launcher's child."""

    @property
    def pid(self) -> int: ...
    @property
    def returncode(self) -> int | None: ...

    stdout: asyncio.StreamReader | None
    stderr: asyncio.StreamReader | None

    async def wait(self) -> int: ...
    def send_signal(self, signal: int) -> None: ...


# --- the client (in the test process) ---------------------------------------------------


class Launcher:
    """How to reach a running launcher: its socket, its pid, the environment it runs with.

    `groups` holds the pid of each child started through it until the child ends (each leads
    a process group of its own): a child is the launcher's, not the caller's, so the caller's
    leak check (tests/toolkit/leak_guard.py) finds it by its group.
    """

    def __init__(
        self, socket_path: Path, pid: int, env: Mapping[str, str], groups: set[int] | None
    ) -> None:
        self.socket_path = socket_path
        self.pid = pid
        self.env = dict(env)
        self.groups = set() if groups is None else groups

    def shared(self) -> dict[str, object]:
        """What another process needs to use this launcher (`attach_launcher`)."""
        return {"socket": str(self.socket_path), "pid": self.pid, "env": self.env}

    async def ready(self) -> None:
        """Wait until the launcher takes requests (its socket appears then) or has failed
        (then its folder holds `failed`, with what it printed)."""
        failed = self.socket_path.with_name("failed")
        deadline = time.monotonic() + START_TIMEOUT
        while not self.socket_path.exists():
            if failed.exists():
                error = failed.read_text(errors="replace")
                raise AssertionError(f"the test launcher did not start:\n{error}")
            if time.monotonic() > deadline:
                raise AssertionError(f"the test launcher did not start in {START_TIMEOUT:.0f} s")
            await asyncio.sleep(0.02)

    def can_start(self, args: Sequence[str], env: Mapping[str, str]) -> bool:
        """Whether a child started with `env` is the process a cold start would make: the
        same `PYTHON*` variables (an empty one counts as unset, as for Python)."""
        same_interpreter = _interpreter_settings(env) == _interpreter_settings(self.env)
        return len(args) >= 2 and args[0] in ("-m", "-c") and same_interpreter


class OwnLauncher(Launcher):
    """The launcher process this process started, and stops."""

    def __init__(self, package: str, env: Mapping[str, str], groups: set[int] | None) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="launcher-"))
        self.stderr = (self.folder / "stderr").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", __name__, package, str(self.folder / "socket")],
            env=dict(env),
            stdin=subprocess.PIPE,  # its end of the session: EOF here stops it
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            start_new_session=True,
        )
        super().__init__(self.folder / "socket", self.process.pid, env, groups)
        threading.Thread(target=self._report_failure, daemon=True).start()

    def _report_failure(self) -> None:
        """If the launcher ends before it is ready, leave its error where `ready` looks."""
        assert self.process.stdout is not None
        if self.process.stdout.readline() != b"ready\n":
            error = (self.folder / "stderr").read_text(errors="replace")
            (self.folder / "failed.new").write_text(error or "(it printed nothing)")
            (self.folder / "failed.new").replace(self.folder / "failed")

    def stop(self) -> None:
        """End the launcher (children it started live on until their tests stop them)."""
        with contextlib.suppress(OSError):
            assert self.process.stdin is not None
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        self.stderr.close()
        shutil.rmtree(self.folder, ignore_errors=True)


def _interpreter_settings(env: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k.startswith("PYTHON") and v}


_launcher: Launcher | None = None


def start_launcher(package: str, env: Mapping[str, str], groups: set[int] | None = None) -> None:
    """Start this process's launcher (tests/conftest.py, at the start of the session); the
    pid of each child it starts goes into `groups`."""
    global _launcher
    if os.environ.get(COLD_START_VARIABLE, "") not in ("", "0") or _launcher is not None:
        return
    _launcher = OwnLauncher(package, env, groups)


def shared_launcher() -> dict[str, object] | None:
    """This process's launcher, as `attach_launcher` in another process takes it."""
    return None if _launcher is None else _launcher.shared()


def attach_launcher(shared: Mapping[str, object] | None, groups: set[int] | None = None) -> None:
    """Start children through the launcher another process runs (`shared_launcher()` there),
    once it is ready; nothing when it runs none."""
    global _launcher
    if shared is None or _launcher is not None:
        return
    env = shared["env"]
    assert isinstance(env, dict)
    _launcher = Launcher(Path(str(shared["socket"])), int(str(shared["pid"])), env, groups)


def stop_launcher() -> None:
    """Stop this process's launcher, or stop using another's."""
    global _launcher
    if isinstance(_launcher, OwnLauncher):
        _launcher.stop()
    _launcher = None


class ForkedProcess:
    """A child of the launcher, as asyncio's `Process` shows one: pid, streams, exit code."""

    def __init__(
        self,
        pid: int,
        replies: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        stdout: asyncio.StreamReader | None,
        stderr: asyncio.StreamReader | None,
        groups: set[int],
    ) -> None:
        self.pid = pid
        self._groups = groups
        self.stdout = stdout
        self.stderr = stderr
        self.returncode: int | None = None
        self._exited = asyncio.Event()
        self._watch = asyncio.create_task(self._wait_for_exit(replies, writer))

    async def _wait_for_exit(
        self, replies: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            line = await replies.readline()
        finally:
            writer.close()
        # No line: the launcher ended first (the session is over). The child was reaped by
        # no one we can ask, so it is reported as killed.
        self.returncode = int(line) if line.strip() else -signal.SIGKILL
        if line.strip():
            self._groups.discard(self.pid)  # it ended: its pid may be another's next
        self._exited.set()

    async def wait(self) -> int:
        await self._exited.wait()
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:
            os.kill(self.pid, sig)


async def _read_end(fd: int) -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**20)
    pipe = os.fdopen(fd, "rb", buffering=0)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)
    return reader


async def start_python(
    args: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | str | None = None,
    stdout: int | None = None,
    stderr: int | None = None,
) -> ChildProcess:
    """`python *args` in a new session (its own process group), with stdin from /dev/null;
    `stdout`/`stderr` as for asyncio (PIPE, DEVNULL, STDOUT, a file descriptor, None:
    inherit). A fork of the launcher when one runs and can start it; else a cold start."""
    env = dict(os.environ if env is None else env)
    launcher = _launcher
    if launcher is None or not launcher.can_start(args, env):
        return await _exec([sys.executable, *args], env=env, cwd=cwd, stdout=stdout, stderr=stderr)
    await launcher.ready()
    given: list[int] = []  # the child's stdio, to hand over and then close here
    readers: list[asyncio.StreamReader | None] = [None, None]
    try:
        given.append(os.open(os.devnull, os.O_RDONLY))
        for index, choice in enumerate((stdout, stderr)):
            if choice == PIPE:
                read_end, write_end = os.pipe()
                readers[index] = await _read_end(read_end)
                given.append(write_end)
            elif choice == DEVNULL:
                given.append(os.open(os.devnull, os.O_WRONLY))
            elif choice == STDOUT and index == 1:
                given.append(os.dup(given[1]))
            elif choice is None:
                given.append(os.dup(index + 1))
            elif choice >= 0:  # a file descriptor of the caller's (a terminal, a file)
                given.append(os.dup(choice))
            else:
                raise ValueError(f"unsupported stdio choice {choice!r}")
        request = json.dumps(
            {"args": list(args), "env": env, "cwd": str(Path(cwd or Path.cwd()).resolve())}
        ).encode()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(str(launcher.socket_path))
            socket.send_fds(sock, [struct.pack("!I", len(request))], given)
            sock.sendall(request)
        except BaseException:
            sock.close()
            raise
    finally:
        for fd in given:
            os.close(fd)
    sock.setblocking(False)
    replies, writer = await asyncio.open_unix_connection(sock=sock)
    pid_line = await replies.readline()
    if not pid_line.strip():
        writer.close()
        raise AssertionError(f"the test launcher did not start {' '.join(args)}")
    launcher.groups.add(int(pid_line))
    return ForkedProcess(int(pid_line), replies, writer, readers[0], readers[1], launcher.groups)


async def start_process(
    command: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | str | None = None,
    stdout: int | None = None,
    stderr: int | None = None,
) -> ChildProcess:
    """Any command, as `start_python` starts one: a Python command (`sys.executable, ...`)
    through `start_python`, anything else with a plain exec."""
    if command[0] == sys.executable:
        return await start_python(command[1:], env=env, cwd=cwd, stdout=stdout, stderr=stderr)
    return await _exec(command, env=env, cwd=cwd, stdout=stdout, stderr=stderr)


async def _exec(
    command: Sequence[str],
    *,
    env: Mapping[str, str] | None,
    cwd: Path | str | None,
    stdout: int | None,
    stderr: int | None,
) -> ChildProcess:
    return await asyncio.create_subprocess_exec(
        *command,
        env=env,
        cwd=cwd,
        stdin=DEVNULL,
        stdout=stdout,
        stderr=stderr,
        start_new_session=True,
    )


# --- the launcher (`python -m tests.toolkit.launcher PACKAGE SOCKET`) ------------------------


def _warm_up(package: str, project: Path) -> None:
    """Import all of `package`, then forget every module of this project (kept: only the
    libraries it imported), so that each child imports the project itself afresh."""
    root = importlib.import_module(package)
    for module in pkgutil.walk_packages(root.__path__, f"{package}."):
        importlib.import_module(module.name)
    venv = Path(sys.prefix).resolve()
    for name, loaded in list(sys.modules.items()):
        file = getattr(loaded, "__file__", None)
        if file is None or name == "__main__":  # the launcher itself runs as __main__
            continue
        path = Path(file).resolve()
        if path.is_relative_to(project) and not path.is_relative_to(venv):
            del sys.modules[name]


def _serve(socket_path: str) -> tuple[dict[str, object], list[int]] | None:
    """Fork a child for each request until stdin closes. Returns in each child only: its
    request and stdio, the launcher's own sockets closed."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(socket_path + ".new")
    listener.listen(64)
    Path(socket_path + ".new").rename(socket_path)  # there once it takes requests (`ready`)
    wake_read, wake_write = socket.socketpair()
    wake_write.setblocking(False)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # reaped below, woken by the wakeup fd
    signal.set_wakeup_fd(wake_write.fileno())
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, "request")
    selector.register(wake_read, selectors.EVENT_READ, "child")
    selector.register(sys.stdin, selectors.EVENT_READ, "stdin")
    replies: dict[int, socket.socket] = {}
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    while True:
        for key, _ in selector.select():
            if key.data == "stdin" and not os.read(sys.stdin.fileno(), 4096):
                return None  # the session is over
            if key.data == "child":
                with contextlib.suppress(BlockingIOError):
                    wake_read.recv(4096)
                _reap(replies)
            if key.data == "request":
                connection, _ = listener.accept()
                head, fds, _, _ = socket.recv_fds(connection, 4, 3)
                while len(head) < 4:
                    head += connection.recv(4 - len(head))
                (size,) = struct.unpack("!I", head)
                body = b""
                while len(body) < size:
                    body += connection.recv(size - len(body))
                request = json.loads(body)
                led_read, led_write = os.pipe()
                pid = os.fork()
                if pid == 0:  # the child: let go of everything the launcher holds
                    os.setsid()  # before the caller learns its pid: its group is its own
                    os.close(led_read)
                    os.write(led_write, b"1")
                    os.close(led_write)
                    signal.set_wakeup_fd(-1)
                    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                    selector.close()
                    for held in (listener, wake_read, wake_write, connection, *replies.values()):
                        held.close()
                    return request, fds
                os.close(led_write)
                os.read(led_read, 1)  # the child leads its group now (or it died trying)
                os.close(led_read)
                for fd in fds:
                    os.close(fd)
                replies[pid] = connection
                with contextlib.suppress(OSError):
                    connection.sendall(b"%d\n" % pid)


def _reap(replies: dict[int, socket.socket]) -> None:
    while replies:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        connection = replies.pop(pid, None)
        if connection is not None:
            with contextlib.suppress(OSError):
                connection.sendall(b"%d\n" % os.waitstatus_to_exitcode(status))
            connection.close()


def _become(request: dict[str, object], fds: list[int]) -> list[str]:
    """In a child: take the request's stdio, folder and environment; its argv."""
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    cwd = str(request["cwd"])
    os.chdir(cwd)
    env = request["env"]
    assert isinstance(env, dict)
    os.environ.clear()
    os.environ.update(env)
    # The streams are the launcher's, opened before the fork: buffer stdout as a cold start
    # would (by line on a terminal). stderr is always line-buffered.
    sys.stdout.reconfigure(line_buffering=sys.stdout.isatty())  # type: ignore[union-attr]
    args = request["args"]
    assert isinstance(args, list)
    return [str(arg) for arg in args]


def _run(args: list[str]) -> int:
    """Run `-m MODULE ...` or `-c CODE ...` as the interpreter would; its exit code."""
    option, target, rest = args[0], args[1], args[2:]
    try:
        if option == "-m":
            sys.argv = [target, *rest]  # runpy puts the module's file in argv[0]
            sys.path[0] = str(Path.cwd())
            runpy.run_module(target, run_name="__main__", alter_sys=True)
        else:
            sys.argv = ["-c", *rest]
            sys.path[0] = ""
            main = types.ModuleType("__main__")
            sys.modules["__main__"] = main
            exec(compile(target, "<string>", "exec"), main.__dict__)  # noqa: S102
    except SystemExit as stop:
        if stop.code is None or isinstance(stop.code, int):
            return stop.code or 0
        print(stop.code, file=sys.stderr)
        return 1
    except BaseException:
        traceback.print_exc()
        return 1
    return 0


if __name__ == "__main__":
    package, socket_path = sys.argv[1], sys.argv[2]
    _warm_up(package, Path(__file__).resolve().parent.parent.parent)
    started = _serve(socket_path)
    if started is None:  # the session is over: nothing to flush, no finalizing every module
        os._exit(0)
    code = _run(_become(*started))
    sys.exit(code)  # the interpreter's own exit: threads joined, atexit run, streams flushed
