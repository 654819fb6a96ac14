"""Shared fixtures: an isolated cookiecutter config, and baked projects shared within a session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from bakery import (
    NON_DEFAULT,
    ODD_ANSWERS,
    ODD_VALUES,
    Baked,
    bake,
    combination_id,
    combinations,
)


@pytest.fixture(scope="session", autouse=True)
def isolated_cookiecutter_config(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Keep the user's ~/.cookiecutterrc (default answers, replay folder) out of the tests."""
    home = tmp_path_factory.mktemp("cookiecutter-home")
    config = home / "config.yaml"
    config.write_text(
        f"cookiecutters_dir: {home / 'cookiecutters'}\nreplay_dir: {home / 'replay'}\n",
        encoding="utf-8",
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("COOKIECUTTER_CONFIG", str(config))
        yield


# Every combination of the choice options, plus the odd free-text answers on a non-default one.
BAKES = [pytest.param((combo, False), id=combination_id(combo)) for combo in combinations()]
BAKES.append(pytest.param((NON_DEFAULT, True), id="odd-names," + combination_id(NON_DEFAULT)))


@pytest.fixture(scope="session", params=BAKES)
def baked(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    isolated_cookiecutter_config: None,
) -> Baked:
    """Bake one combination once per session (per xdist worker) and share it between tests."""
    combo, odd = request.param
    extra = {**combo, **(ODD_ANSWERS if odd else {})}
    values = {**combo, **(ODD_VALUES if odd else {})}
    return Baked(path=bake(tmp_path_factory.mktemp("bake"), extra), answers=values)


@pytest.hookimpl(trylast=True)  # after pytest groups the tests by session-scoped parameters
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist, start the slow tests first so that they run on different workers.

    Each xdist worker collects and sorts (its `numprocesses` is unset, hence `workerinput`).
    """
    if hasattr(config, "workerinput"):
        items.sort(key=lambda item: item.get_closest_marker("slow") is None)
