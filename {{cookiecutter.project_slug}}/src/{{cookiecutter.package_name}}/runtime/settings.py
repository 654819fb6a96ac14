"""The runtime's settings: read from the environment and `.env`, checked at start.

`RuntimeSettings` holds what every service built on this runtime needs (task queue,
ports, state store, pool, checkpoints, shutdown, logs). A sample, or your own code, adds
its section by subclassing it (`pipeline/settings.py`), and `app.py` names the class the
service loads.

Every setting is an environment variable named `ENV_PREFIX` + the field name, e.g.
    {{ cookiecutter.package_name | upper }}_TASK_QUEUE=invoices
A bad value stops the program at start with one line per problem and exit code 2 (see
`load_settings`), so a typo never turns into a worker that misbehaves an hour later.

The Temporal connection is not configured here: it comes from Temporal's own environment
configuration (`TEMPORAL_ADDRESS`, `TEMPORAL_NAMESPACE`, `TEMPORAL_API_KEY`, TLS variables,
profiles in `temporal.toml`), so the habits and files of the `temporal` CLI apply unchanged.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Literal, TypeVar, get_args
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from .. import SERVICE_NAME
from .store import check_store_url, redact_url, takes_password

ENV_PREFIX = "{{ cookiecutter.package_name | upper }}_"
ENV_FILE = ".env"
# Chosen when the project was generated (cookiecutter option `state_store`).
DEFAULT_STATE_STORE_URL = "{{ 'redis://localhost:6379/0' if cookiecutter.state_store == 'redis' else 'sqlite:///.state/state.db' }}"

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]


class RuntimeSettings(BaseSettings):
    """Settings of the runtime; field `x` is read from `<ENV_PREFIX>X`. Subclass to add yours."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=ENV_FILE, extra="forbid", validate_default=True
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Read only our own lines of `.env`: its `TEMPORAL_*` lines are for `client.py`.

        With `extra="forbid"`, pydantic-settings would take every other line of the file
        for an unknown setting and stop the program.
        """
        if isinstance(dotenv_settings, DotEnvSettingsSource):
            prefix = ENV_PREFIX.lower()  # the source's names are lower case
            dotenv_settings.env_vars = {
                name: value
                for name, value in dotenv_settings.env_vars.items()
                if name.lower().startswith(prefix)
            }
        return init_settings, env_settings, dotenv_settings, file_secret_settings

    task_queue: str = Field(SERVICE_NAME, min_length=1)
    """Task queue the worker polls and the starter sends work to."""

    identity: str | None = None
    """Worker identity shown in the Temporal UI; the SDK's `pid@host` when unset."""

    temporal_ui_url: str | None = None
    """Base URL of the Temporal UI for the links `run` prints (guessed when unset)."""

    cpu_processes: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1, le=256)
    """Processes in the worker's pool for CPU-bound work (default: one per core)."""

    checkpoint_every_items: int = Field(50, ge=1)
    """Save a long activity's progress after this many items..."""

    checkpoint_every_seconds: float = Field(5.0, gt=0)
    """...or after this many seconds, whichever comes first."""

    memo_ttl_seconds: float = Field(7 * 24 * 3600, gt=0)
    """How long a memoized result (a document's signature) is kept."""

    graceful_shutdown_seconds: float = Field(10.0, ge=0)
    """On SIGTERM or SIGINT, how long running activities may take to finish."""

    sticky_queue_timeout_seconds: float = Field(10.0, gt=0)
    """After a worker dies, how long its cached workflows wait before any worker takes them."""

    connect_timeout_seconds: float = Field(60.0, gt=0)
    """How long to keep retrying an unreachable Temporal server at start."""

    state_store_url: str = DEFAULT_STATE_STORE_URL
    """Where bodies and intermediate results live: `sqlite:///relative/path.db`,
    `sqlite:////absolute/path.db`, `redis://[user@]host[:port][/db]` or `rediss://...` (TLS)."""

    log_level: LogLevel = "INFO"

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_case_level(cls, value: Any) -> Any:
        upper = value.upper() if isinstance(value, str) else value
        return upper if upper in get_args(LogLevel) else value

    @field_validator("state_store_url")
    @classmethod
    def _openable_store(cls, value: str) -> str:
        return check_store_url(value)

    log_format: Literal["plain", "json"] = "plain"
    """`plain` lines for people, or `json`: one object per line, for log collectors."""

    health_port: int = Field(8080, ge=0, le=65535)
    """Port of the worker's `/healthz` and `/readyz` endpoints (0: not served)."""

    metrics_port: int = Field(9464, ge=0, le=65535)
    """Port of the worker's Prometheus `/metrics` endpoint (0: not served)."""

    loop_lag_warning_seconds: float = Field(1.0, gt=0)
    """Warn, naming the activity, when the worker's event loop is blocked this long."""

    state_store_password: SecretStr | None = None
    """Password of a Redis state store: never in the URL, which gets logged."""

    @field_validator("state_store_password")
    @classmethod
    def _password_for_redis_only(
        cls, value: SecretStr | None, info: ValidationInfo
    ) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None  # an empty variable means no password
        url = info.data.get("state_store_url")
        if url is not None and not takes_password(url):
            raise ValueError("only a redis:// or rediss:// state store takes a password")
        return value

    # Tracing (tracing.py): off unless an endpoint is set here or in OpenTelemetry's own
    # variable; ours wins when both are set.
    otel_endpoint: str | None = Field(
        default_factory=lambda: os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or None
    )
    """Base URL of an OTLP/HTTP receiver, e.g. `http://otel-collector:4318` (default:
    `OTEL_EXPORTER_OTLP_ENDPOINT`; unset: no tracing)."""

    otel_service_name: str = Field(
        default_factory=lambda: os.environ.get("OTEL_SERVICE_NAME") or SERVICE_NAME,
        min_length=1,
    )
    """The `service.name` of the spans (default: `OTEL_SERVICE_NAME`, else the project's)."""

    @field_validator("otel_endpoint")
    @classmethod
    def _http_endpoint(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None  # an empty variable means no tracing
        parsed = urlsplit(value.strip())
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError(
                "must be an http:// or https:// URL of an OTLP/HTTP receiver, such as"
                " http://otel-collector:4318 (also checked in OTEL_EXPORTER_OTLP_ENDPOINT)"
            )
        return value.strip()


S = TypeVar("S", bound=RuntimeSettings)


def _env_name(loc: tuple[int | str, ...]) -> str:
    return ENV_PREFIX + str(loc[0]).upper() if loc else ENV_PREFIX + "*"


def secret_fields(cls: type[RuntimeSettings]) -> frozenset[str]:
    """The fields of `cls` that hold secrets (`SecretStr`): never shown, never logged."""
    return frozenset(
        name
        for name, field in cls.model_fields.items()
        if SecretStr in (field.annotation, *get_args(field.annotation))
    )


def _shown_value(cls: type[RuntimeSettings], loc: tuple[int | str, ...], value: Any) -> str | None:
    """How an error line shows the value given: never a secret, nor a password in a URL."""
    field = str(loc[0]) if loc else ""
    if field in secret_fields(cls):
        return None
    if field == "state_store_url" and isinstance(value, str):
        return repr(redact_url(value))
    return repr(value)


def settings_errors(exc: ValidationError, cls: type[RuntimeSettings]) -> list[str]:
    """One readable line per problem: the variable, what is wrong, and the value given
    (except for secrets)."""
    lines = []
    for error in exc.errors():
        name = _env_name(error["loc"])
        if error["type"] == "extra_forbidden":  # a line of .env, named as written there
            lines.append(f"{str(error['loc'][0]).upper()}: unknown setting (in {ENV_FILE})")
            continue
        message = error["msg"].removeprefix("Value error, ")
        shown = _shown_value(cls, error["loc"], error["input"])
        lines.append(f"{name}: {message}" + ("" if shown is None else f" (got {shown})"))
    return lines


def unknown_variables(
    cls: type[RuntimeSettings], environ: dict[str, str] | None = None
) -> list[str]:
    """Environment variables with our prefix that no setting of `cls` reads: almost always
    typos."""
    environ = dict(os.environ) if environ is None else environ
    known = {ENV_PREFIX + name.upper() for name in cls.model_fields}
    return sorted(k for k in environ if k.upper().startswith(ENV_PREFIX) and k.upper() not in known)


def load_settings(cls: type[S]) -> S:
    """Read the settings of `cls`, or print every problem and exit with code 2 (no
    traceback)."""
    problems = [f"{name}: unknown setting" for name in unknown_variables(cls)]
    settings = None
    try:
        settings = cls()
    except ValidationError as exc:
        problems += settings_errors(exc, cls)
    if problems or settings is None:
        for line in problems:
            print(f"error: {line}", file=sys.stderr)
        raise SystemExit(2)
    return settings
