"""A real `redis-server` for the tests, on a free port on 127.0.0.1 with its files in a folder.

The Debian package (`apt-get install redis-server`) is enough; nothing is downloaded. A
server can be stopped or killed and started again on the same port, as a restart would.

Without `redis-server` on PATH, the tests of the Redis backend are skipped locally, with
the reason in the summary, so a SQLite project's `make test` runs on a machine without
Redis; in CI (`CI` set), and in a project whose default store is Redis, they fail instead:
the backend a deployment may switch to (or runs on) is never left untested where it counts.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
import trustme
from redis.backoff import NoBackoff
from redis.retry import Retry

from {{ cookiecutter.package_name }}.runtime.settings import (
    DEFAULT_STATE_STORE_URL,
)

from .processes import free_port as free_port  # tests/runtime/test_devstack.py's import

STARTUP_TIMEOUT_SECONDS = 30.0
NO_REDIS_SERVER = "no redis-server on PATH: a Redis state store test, skipped here (CI runs it)"
INSTALL_REDIS_SERVER = "apt-get install redis-server; macOS: brew install redis"


def redis_server_binary() -> str:
    """The `redis-server` on PATH. Without one, the calling test is skipped, with the reason
    in pytest's summary, or failed (one line) where the Redis backend must be tested: in CI
    (`CI` set) and in a project whose default state store is Redis."""
    binary = shutil.which("redis-server")
    if binary is not None:
        return binary
    install = INSTALL_REDIS_SERVER
    if os.environ.get("CI"):
        pytest.fail(
            f"redis-server is not on PATH, and CI is set: CI must test the Redis state store"
            f" (install it first: {install})",
            pytrace=False,
        )
    if DEFAULT_STATE_STORE_URL.startswith(("redis://", "rediss://")):
        pytest.fail(
            f"redis-server is not on PATH: this project's default state store is Redis, and"
            f" its tests run against a real one (install it: {install})",
            pytrace=False,
        )
    pytest.skip(NO_REDIS_SERVER)


@dataclass(frozen=True)
class Tls:
    """A CA and a server certificate for 127.0.0.1, as files for redis-server and the client."""

    ca: Path
    cert: Path
    key: Path

    @classmethod
    def create(cls, directory: Path) -> Tls:
        ca = trustme.CA()
        server = ca.issue_cert("127.0.0.1", "localhost")
        files = cls(
            ca=directory / "ca.pem", cert=directory / "server.pem", key=directory / "key.pem"
        )
        ca.cert_pem.write_to_path(str(files.ca))
        server.cert_chain_pems[0].write_to_path(str(files.cert))
        server.private_key_pem.write_to_path(str(files.key))
        return files


class RedisServer:
    """`redis-server` on one port for its lifetime; `start` after `stop` or `kill` reuses it.

    By default it keeps nothing on disk (`--save '' --appendonly no`). `durable=True` writes
    every command to the append-only file before replying, so a kill -9 loses nothing
    acknowledged and a restart reloads the data, as a production Redis with AOF would.
    """

    def __init__(
        self,
        directory: Path,
        *,
        durable: bool = False,
        password: str | None = None,
        tls: Tls | None = None,
    ) -> None:
        self.directory = directory
        self.port = free_port()
        self.password = password
        self.tls = tls
        self.process: subprocess.Popen[bytes] | None = None
        args = ["--bind", "127.0.0.1", "--save", "", "--logfile", "redis.log"]
        args += (
            ["--appendonly", "yes", "--appendfsync", "always"]
            if durable
            else ["--appendonly", "no"]
        )
        if password is not None:
            args += ["--requirepass", password]
        if tls is None:
            args += ["--port", str(self.port)]
        else:
            args += ["--port", "0", "--tls-port", str(self.port), "--tls-auth-clients", "no"]
            args += ["--tls-cert-file", str(tls.cert), "--tls-key-file", str(tls.key)]
            args += ["--tls-ca-cert-file", str(tls.ca)]
        self.args = args

    def url(self, db: int = 0) -> str:
        """The state store URL of database `db` (the CA file in it for TLS; no password)."""
        if self.tls is None:
            return f"redis://127.0.0.1:{self.port}/{db}"
        return f"rediss://127.0.0.1:{self.port}/{db}?ssl_ca_certs={self.tls.ca}"

    def client(self, db: int = 0) -> redis.Redis:
        """A plain synchronous client, for tests to look at or change the server directly."""
        options: dict[str, Any] = {"password": self.password, "socket_timeout": 5}
        options["retry"] = Retry(NoBackoff(), 0)  # the caller polls; no hidden waits
        if self.tls is not None:
            options |= {"ssl": True, "ssl_ca_certs": str(self.tls.ca)}
        return redis.Redis(host="127.0.0.1", port=self.port, db=db, **options)

    def start(self) -> RedisServer:
        """Start the server and wait until it answers PING (after loading its data, if any).

        If it does not (it exited, or did not answer within the start-up timeout, which only
        ends a broken test), the server is killed and the error shows its log.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        process = self.process = subprocess.Popen(
            [redis_server_binary(), *self.args],
            cwd=self.directory,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
        )
        try:
            self._wait_until_it_answers(process)
        except BaseException:
            self.kill()
            raise
        return self

    def _wait_until_it_answers(self, process: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        with self.client() as client:
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"redis-server exited ({process.returncode}):\n{self.log()}")
                try:
                    if client.ping():
                        return
                    why = "PING failed"
                except redis.ConnectionError as exc:  # not listening yet, or loading its data
                    why = str(exc)
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"redis-server did not answer in {STARTUP_TIMEOUT_SECONDS:g}s ({why}):"
                        f"\n{self.log()}"
                    )
                time.sleep(0.02)

    def log(self) -> str:
        """What the server wrote to its log file so far."""
        path = self.directory / "redis.log"
        return path.read_text(errors="replace") if path.exists() else "(no log file)"

    def stop(self) -> None:
        """SIGTERM: a clean shutdown (SIGKILL if it takes over 30 s: a broken test)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
                raise

    def kill(self) -> None:
        """SIGKILL: a crash."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)
