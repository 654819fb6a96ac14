"""`make run` / `make dev` with a Redis state store: a local redis-server when none is running."""

from __future__ import annotations

from pathlib import Path

import pytest

from {{ cookiecutter.package_name }}.runtime.devstack import (
    REDIS_DIR,
    is_listening,
    local_redis,
)
from {{ cookiecutter.package_name }}.runtime.store import (
    open_store,
)

from ..toolkit.redis_server import RedisServer, free_port


async def test_a_local_redis_is_started_for_the_block_and_keeps_its_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
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
