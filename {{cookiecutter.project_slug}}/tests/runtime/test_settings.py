"""Settings: defaults, the promised error messages, and Temporal's environment configuration."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from temporalio.service import TLSConfig

from {{ cookiecutter.package_name }} import (
    SERVICE_NAME,
)
from {{ cookiecutter.package_name }}.__main__ import (
    main,
)
from {{ cookiecutter.package_name }}.app import (
    Settings,
)
from {{ cookiecutter.package_name }}.runtime.client import (
    temporal_connect_config,
)
from {{ cookiecutter.package_name }}.runtime.settings import (
    DEFAULT_STATE_STORE_URL,
    ENV_PREFIX,
    load_settings,
)

from ..conftest import run_in_group, service_env

PACKAGE = "{{ cookiecutter.package_name }}"


def run_worker_command(cwd: Path, **settings: object) -> subprocess.CompletedProcess[str]:
    """`python -m <package> worker` in `cwd`, a real process, with these settings."""
    return run_in_group(
        [sys.executable, "-m", PACKAGE, "worker"],
        cwd=cwd,
        env=service_env("127.0.0.1:1", **settings),
        timeout=60,
    )


def refusal_at_start(
    cwd: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    **settings: object,
) -> list[str]:
    """What `worker` prints as it refuses these settings, from the command's own `main` in this
    process: a worker start costs a second of CPU, and one test runs the real process
    (test_bad_values_stop_the_worker_with_one_line_each). Fails if the worker would start."""
    for name in list(os.environ):
        monkeypatch.delenv(name)
    for name, value in service_env("127.0.0.1:1", **settings).items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(cwd)
    capsys.readouterr()
    with pytest.raises(SystemExit) as stopped:
        main(["worker"])
    assert stopped.value.code == 2
    return capsys.readouterr().err.splitlines()


def test_defaults() -> None:
    settings = Settings(_env_file=None)
    assert settings.task_queue == SERVICE_NAME
    assert settings.state_store_url == DEFAULT_STATE_STORE_URL
    assert settings.state_store_password is None
    assert settings.checkpoint_every_items == 50
    assert settings.listen_host == "127.0.0.1"  # a laptop's worker is not on the network
    assert settings.store_key_prefix == SERVICE_NAME
    assert settings.store_ttl_seconds == 7 * 24 * 3600


@pytest.mark.parametrize(
    ("given", "used"),
    [
        ("0.0.0.0", "0.0.0.0"),  # noqa: S104 (a setting's value: nothing binds here)
        ("::", "::"),
        ("[::1]", "::1"),
        (" 127.0.0.1 ", "127.0.0.1"),
    ],
)
def test_listen_host_takes_ipv4_and_ipv6(given: str, used: str) -> None:
    assert Settings(_env_file=None, listen_host=given).listen_host == used


def test_new_settings_refuse_bad_values_naming_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    refused = refusal_at_start(
        tmp_path,
        monkeypatch,
        capsys,
        listen_host="localhost",
        store_key_prefix="a:b",
        store_ttl_seconds=0,
    )
    assert sorted(refused) == [
        f"error: {ENV_PREFIX}LISTEN_HOST: an IP address, such as 127.0.0.1, 0.0.0.0 or ::"
        " (got 'localhost')",
        f"error: {ENV_PREFIX}STORE_KEY_PREFIX: letters, digits, '.', '_' and '-' only,"
        " at most 100, no ':' (got 'a:b')",
        f"error: {ENV_PREFIX}STORE_TTL_SECONDS: Input should be greater than 0 (got '0')",
    ]


@pytest.mark.parametrize(
    ("url", "password", "warned"),
    [
        ("redis://redis.internal:6379/0", "hunter2", True),
        ("redis://10.0.0.5:6379/0", "hunter2", True),
        ("redis://svc@[2001:db8::5]:6379/0", "hunter2", True),
        ("rediss://redis.internal:6380/0", "hunter2", False),  # TLS
        ("redis://localhost:6379/0", "hunter2", False),  # never leaves the machine
        ("redis://127.0.0.1:6379/0", "hunter2", False),
        ("redis://[::1]:6379/0", "hunter2", False),
        ("redis://redis.internal:6379/0", "", False),  # no password to give away
    ],
)
def test_a_password_over_plain_redis_to_another_host_is_warned(
    url: str, password: str, warned: bool
) -> None:
    settings = Settings(_env_file=None, state_store_url=url, state_store_password=password)
    warnings = settings.security_warnings()
    if not warned:
        assert warnings == []
        return
    assert len(warnings) == 1
    assert f"{ENV_PREFIX}STATE_STORE_PASSWORD" in warnings[0]
    assert "rediss://" in warnings[0]
    assert password not in warnings[0]


def test_bad_values_stop_the_worker_with_one_line_each(tmp_path: Path) -> None:
    done = run_worker_command(
        tmp_path,
        cpu_processes=0,
        log_level="loud",
        state_store_url="postgres://db/state",
        cpu_proceses=3,  # a typo
        log_format="xml",
        health_port=-1,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stdout == ""
    assert sorted(done.stderr.splitlines()) == [
        f"error: {ENV_PREFIX}CPU_PROCESES: unknown setting",
        f"error: {ENV_PREFIX}CPU_PROCESSES: Input should be greater than or equal to 1 (got '0')",
        f"error: {ENV_PREFIX}HEALTH_PORT: Input should be greater than or equal to 0 (got '-1')",
        f"error: {ENV_PREFIX}LOG_FORMAT: Input should be 'plain' or 'json' (got 'xml')",
        f"error: {ENV_PREFIX}LOG_LEVEL: "
        "Input should be 'DEBUG', 'INFO', 'WARNING' or 'ERROR' (got 'loud')",
        f"error: {ENV_PREFIX}STATE_STORE_URL: expected sqlite:///relative/path.db, "
        "sqlite:////absolute/path.db, redis://[user@]host[:port][/db] or "
        "rediss://[user@]host[:port][/db][?ssl_ca_certs=ca.pem] (got 'postgres://db/state')",
    ]


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        pytest.param(
            {"STATE_STORE_URL": "redis://:hunter2@redis:6379/0"},
            "STATE_STORE_URL: the URL holds a password, which would be logged with it: give it"
            " in the STATE_STORE_PASSWORD setting instead (got 'redis://:***@redis:6379/0')",
            id="password-in-url",
        ),
        pytest.param(
            {"STATE_STORE_URL": "sqlite:///s.db", "STATE_STORE_PASSWORD": "hunter2"},
            "STATE_STORE_PASSWORD: only a redis:// or rediss:// state store takes a password",
            id="password-for-sqlite",
        ),
    ],
)
def test_errors_never_show_a_password(
    variables: dict[str, str],
    expected: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    for name, value in variables.items():
        monkeypatch.setenv(ENV_PREFIX + name, value)
    with pytest.raises(SystemExit):
        load_settings(Settings)
    assert capsys.readouterr().err.splitlines() == [f"error: {ENV_PREFIX}{expected}"]


def test_the_redis_password_is_a_secret() -> None:
    secret = secrets.token_hex(8)
    settings = Settings(
        _env_file=None, state_store_url="rediss://redis:6380/0", state_store_password=secret
    )
    assert settings.state_store_password is not None
    assert settings.state_store_password.get_secret_value() == secret
    assert secret not in repr(settings)
    assert secret not in str(settings.model_dump())
    empty = Settings(_env_file=None, state_store_url="sqlite:///s.db", state_store_password="")
    assert empty.state_store_password is None  # an empty variable is no password


def test_bad_values_in_dot_env_are_reported_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / ".env").write_text(f"{ENV_PREFIX}GRACEFUL_SHUTDOWN_SECONDS=soon\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        load_settings(Settings)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: {ENV_PREFIX}GRACEFUL_SHUTDOWN_SECONDS: Input should be a valid number, "
        "unable to parse string as a number (got 'soon')"
    ]


def test_settings_come_from_dot_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text(f"{ENV_PREFIX}CPU_PROCESSES=42\n{ENV_PREFIX}LOG_LEVEL=debug\n")
    monkeypatch.chdir(tmp_path)
    settings = Settings()
    assert (settings.cpu_processes, settings.log_level) == (42, "DEBUG")


def test_dot_env_may_hold_temporal_variables_but_no_unknown_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`TEMPORAL_*` lines are Temporal's (client.py reads them); a misspelt setting is not."""
    dot_env = tmp_path / ".env"
    dot_env.write_text(f"TEMPORAL_NAMESPACE=dotenv-ns\n{ENV_PREFIX}CPU_PROCESSES=42\n")
    monkeypatch.chdir(tmp_path)
    assert load_settings(Settings).cpu_processes == 42
    dot_env.write_text(f"TEMPORAL_NAMESPACE=dotenv-ns\n{ENV_PREFIX}CPU_PROCESES=42\n")
    with pytest.raises(SystemExit):
        load_settings(Settings)
    assert capsys.readouterr().err.splitlines() == [
        f"error: {ENV_PREFIX}CPU_PROCESES: unknown setting (in .env)"
    ]


@pytest.fixture
def clean_temporal_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No TEMPORAL_* variables and no config file: only what each test sets."""
    import os

    for name in list(os.environ):
        if name.startswith("TEMPORAL_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("TEMPORAL_CONFIG_FILE", str(tmp_path / "absent.toml"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_default_address_is_local(clean_temporal_env: Path) -> None:
    assert temporal_connect_config()["target_host"] == "localhost:7233"


def test_api_key_from_environment_turns_on_tls(
    clean_temporal_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEMPORAL_ADDRESS", "my-ns.a1b2c.tmprl.cloud:7233")
    monkeypatch.setenv("TEMPORAL_NAMESPACE", "my-ns.a1b2c")
    monkeypatch.setenv("TEMPORAL_API_KEY", "secret-key")
    config = temporal_connect_config()
    assert config["target_host"] == "my-ns.a1b2c.tmprl.cloud:7233"
    assert config["namespace"] == "my-ns.a1b2c"
    assert config["api_key"] == "secret-key"
    assert config["tls"] is True


def test_profile_from_temporal_toml(
    clean_temporal_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    toml = clean_temporal_env / "temporal.toml"
    toml.write_text(
        '[profile.default]\naddress = "default-host:7233"\n\n'
        '[profile.staging]\naddress = "staging-host:7233"\nnamespace = "staging"\n'
    )
    monkeypatch.setenv("TEMPORAL_CONFIG_FILE", str(toml))
    assert temporal_connect_config()["target_host"] == "default-host:7233"
    monkeypatch.setenv("TEMPORAL_PROFILE", "staging")
    config = temporal_connect_config()
    assert (config["target_host"], config["namespace"]) == ("staging-host:7233", "staging")


def test_temporal_variables_in_dot_env_lose_to_the_real_environment(
    clean_temporal_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (clean_temporal_env / ".env").write_text(
        "TEMPORAL_ADDRESS=from-dot-env:7233\nTEMPORAL_NAMESPACE=dotenv-ns\n"
    )
    assert temporal_connect_config()["target_host"] == "from-dot-env:7233"
    monkeypatch.setenv("TEMPORAL_ADDRESS", "from-env:7233")
    config = temporal_connect_config()
    assert (config["target_host"], config["namespace"]) == ("from-env:7233", "dotenv-ns")


def test_mtls_files_from_environment(
    clean_temporal_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = clean_temporal_env / "client.pem", clean_temporal_env / "client.key"
    cert.write_bytes(b"-----CERT-----\n")
    key.write_bytes(b"-----KEY-----\n")
    monkeypatch.setenv("TEMPORAL_ADDRESS", "my-ns.a1b2c.tmprl.cloud:7233")
    monkeypatch.setenv("TEMPORAL_TLS_CLIENT_CERT_PATH", str(cert))
    monkeypatch.setenv("TEMPORAL_TLS_CLIENT_KEY_PATH", str(key))
    tls = temporal_connect_config()["tls"]
    assert isinstance(tls, TLSConfig)
    assert (tls.client_cert, tls.client_private_key) == (b"-----CERT-----\n", b"-----KEY-----\n")


def test_mtls_profile_from_temporal_toml(
    clean_temporal_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = clean_temporal_env / "client.pem", clean_temporal_env / "client.key"
    cert.write_bytes(b"cert")
    key.write_bytes(b"key")
    toml = clean_temporal_env / "temporal.toml"
    toml.write_text(
        '[profile.prod]\naddress = "prod.example:7233"\nnamespace = "prod"\n'
        f'[profile.prod.tls]\nclient_cert_path = "{cert}"\nclient_key_path = "{key}"\n'
    )
    monkeypatch.setenv("TEMPORAL_CONFIG_FILE", str(toml))
    monkeypatch.setenv("TEMPORAL_PROFILE", "prod")
    config = temporal_connect_config()
    assert (config["target_host"], config["namespace"]) == ("prod.example:7233", "prod")
    assert (config["tls"].client_cert, config["tls"].client_private_key) == (b"cert", b"key")


def test_slots_and_a_resource_based_tuner_do_not_combine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    refused = refusal_at_start(
        tmp_path, monkeypatch, capsys, worker_tuner="resource-based", max_concurrent_activities=5
    )
    assert refused == [
        f"error: {ENV_PREFIX}MAX_CONCURRENT_ACTIVITIES: only with {ENV_PREFIX}WORKER_TUNER=fixed"
        " (resource-based sizes the slots itself: unset this one) (got '5')"
    ]


def test_bad_tuner_settings_stop_the_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    refused = refusal_at_start(
        tmp_path, monkeypatch, capsys, worker_tuner="auto", target_cpu_usage=1.5
    )
    assert sorted(refused) == [
        f"error: {ENV_PREFIX}TARGET_CPU_USAGE: Input should be less than or equal to 1 (got '1.5')",
        f"error: {ENV_PREFIX}WORKER_TUNER: "
        "Input should be 'fixed' or 'resource-based' (got 'auto')",
    ]


def test_versioning_needs_a_build_id_outside_a_git_checkout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # tmp_path: no git checkout
    refused = refusal_at_start(tmp_path, monkeypatch, capsys, worker_versioning="true")
    assert refused == [
        f"error: {ENV_PREFIX}BUILD_ID: required with {ENV_PREFIX}WORKER_VERSIONING=true (the"
        " image tag, or the git commit; this folder is no git checkout to take it from)"
        " (got None)"
    ]


def test_versioning_takes_the_git_commit_for_a_build_id_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(tmp_path)]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "one"], check=True)
    commit = subprocess.run(
        [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    monkeypatch.chdir(tmp_path)
    assert Settings(_env_file=None, worker_versioning=True).build_id == commit
    assert Settings(_env_file=None, worker_versioning=True, build_id="v2").build_id == "v2"
    assert Settings(_env_file=None).build_id is None
