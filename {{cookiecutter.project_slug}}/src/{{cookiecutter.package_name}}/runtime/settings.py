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

import ipaddress
import os
import subprocess
import sys
from typing import Annotated, Any, Literal, TypeVar, get_args
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from .. import SERVICE_NAME
from .store import (
    DEFAULT_TTL_SECONDS,
    KEY_PREFIX_PATTERN,
    StateStore,
    check_store_url,
    open_store,
    redact_url,
    redis_host,
    takes_password,
)

ENV_PREFIX = "{{ cookiecutter.package_name | upper }}_"
ENV_FILE = ".env"
# Chosen when the project was generated (cookiecutter option `state_store`).
DEFAULT_STATE_STORE_URL = "{{ 'redis://localhost:6379/0' if cookiecutter.state_store == 'redis' else 'sqlite:///.state/state.db' }}"

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


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

    store_key_prefix: str = SERVICE_NAME
    """Every state-store key starts with `<this>:`: services sharing one Redis never see or
    overwrite each other's values. Give each service (and each environment) its own."""

    @field_validator("store_key_prefix")
    @classmethod
    def _key_prefix(cls, value: str) -> str:
        if not KEY_PREFIX_PATTERN.fullmatch(value):
            raise ValueError("letters, digits, '.', '_' and '-' only, at most 100, no ':'")
        return value

    store_ttl_seconds: float = Field(DEFAULT_TTL_SECONDS, gt=0)
    """How long a stored value (a body, a run's lists) is kept unless it has its own TTL."""

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

    listen_host: str = "127.0.0.1"
    """Address the health and metrics endpoints listen on: 127.0.0.1 (this machine only) on
    a laptop; `0.0.0.0` (every IPv4 interface) or `::` (IPv6, and IPv4 where the system maps
    it) in a container, so the kubelet and Prometheus can reach them."""

    @field_validator("listen_host")
    @classmethod
    def _ip_address(cls, value: str) -> str:
        try:
            return str(ipaddress.ip_address(value.strip().strip("[]")))
        except ValueError:
            raise ValueError("an IP address, such as 127.0.0.1, 0.0.0.0 or ::") from None

    health_port: int = Field(8080, ge=0, le=65535)
    """Port of the worker's `/healthz` and `/readyz` endpoints (0: not served). Left unset
    and in use (a second worker on this machine), a free port instead: see `worker.py`."""

    metrics_port: int = Field(9464, ge=0, le=65535)
    """Port of the worker's Prometheus `/metrics` endpoint (0: not served); unset and in use,
    a free port instead, as for `health_port`."""

    loop_lag_warning_seconds: float = Field(1.0, gt=0)
    """Warn, naming the activity, when the worker's event loop is blocked this long."""

    worker_tuner: Literal["fixed", "resource-based"] = "fixed"
    """How many tasks one worker takes at once: `fixed` slots (`max_concurrent_*`), or
    `resource-based`: as many as keep the machine under `target_memory_usage` and
    `target_cpu_usage` (the README's "Tuning" says when to use which)."""

    max_concurrent_activities: int | None = Field(None, ge=1)
    """`fixed` only: activities one worker runs at once (unset: the SDK's 100)."""

    max_concurrent_workflow_tasks: int | None = Field(None, ge=2)
    """`fixed` only: workflow tasks one worker runs at once (unset: the SDK's 100)."""

    @field_validator("max_concurrent_activities", "max_concurrent_workflow_tasks")
    @classmethod
    def _fixed_slots_only(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is not None and info.data.get("worker_tuner") == "resource-based":
            raise ValueError(
                f"only with {ENV_PREFIX}WORKER_TUNER=fixed (resource-based sizes the slots"
                " itself: unset this one)"
            )
        return value

    target_memory_usage: float = Field(0.8, gt=0, le=1)
    """`resource-based` only: the share of the machine's memory the worker fills up to."""

    target_cpu_usage: float = Field(0.8, gt=0, le=1)
    """`resource-based` only: the share of the machine's CPU the worker fills up to."""

    poller_autoscaling: bool = False
    """Scale the number of polls on the server's feedback (`PollerBehaviorAutoscaling`)
    instead of a fixed 5 per task type: for busy queues and many workers."""

    worker_versioning: bool = False
    """Worker Versioning: the worker polls as `deployment_name` / `build_id`, and new
    workflows go to the deployment's current version only (the README's "Versioned
    deploys": after a rollout, `temporal worker deployment set-current-version`)."""

    deployment_name: str = Field(SERVICE_NAME, min_length=1)
    """The Worker Deployment this worker belongs to (with `worker_versioning`)."""

    build_id: str | None = None
    """This build's id (with `worker_versioning`): the image tag in Kubernetes; unset, the
    git commit of the working directory (`git rev-parse --short HEAD`)."""

    @field_validator("build_id")
    @classmethod
    def _build_id_when_versioned(cls, value: str | None, info: ValidationInfo) -> str | None:
        value = value or None  # an empty variable means unset
        if value is None and info.data.get("worker_versioning"):
            value = git_commit()
            if value is None:
                raise ValueError(
                    f"required with {ENV_PREFIX}WORKER_VERSIONING=true (the image tag, or the"
                    " git commit; this folder is no git checkout to take it from)"
                )
        return value

    fetch_allowed_networks: Annotated[tuple[IPNetwork, ...], NoDecode] = ()
    """Networks a fetch may connect to beside global addresses, comma separated CIDRs
    (`127.0.0.1/32,10.1.0.0/16`). Loopback, private, link-local (cloud metadata) and other
    special addresses are refused unless listed here (runtime/http.py)."""

    @field_validator("fetch_allowed_networks", mode="before")
    @classmethod
    def _networks(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part for part in value.split(",") if part.strip()]
        if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
            try:
                return tuple(ipaddress.ip_network(v.strip(), strict=False) for v in value)
            except ValueError as exc:
                raise ValueError(f"not a list of networks (CIDR, comma separated): {exc}") from None
        return value

    fetch_max_redirects: int = Field(5, ge=0, le=20)
    """Redirects a fetch follows; each hop's address is checked again."""

    fetch_deadline_seconds: float = Field(60.0, gt=0)
    """The most one URL may take, every redirect and the whole body included."""

    workflow_execution_timeout_seconds: float = Field(24 * 3600, gt=0)
    """`run` starts workflows with this execution timeout: past it, Temporal ends the
    workflow (and its retries) as timed out instead of letting it run forever."""

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

    def open_store(self) -> StateStore:
        """The state store these settings name, with the service's key prefix and TTL: what
        the worker and `run` use (and what a test must use to see their values)."""
        return open_store(
            self.state_store_url,
            password=self.state_store_password,
            key_prefix=self.store_key_prefix,
            ttl_seconds=self.store_ttl_seconds,
        )

    def security_warnings(self) -> list[str]:
        """Settings that work but expose something: the worker logs each at start."""
        warnings = []
        host = redis_host(self.state_store_url)
        if (
            self.state_store_password is not None
            and self.state_store_url.startswith("redis://")
            and host is not None
            and not _is_loopback(host)
        ):
            warnings.append(
                f"{ENV_PREFIX}STATE_STORE_PASSWORD is sent unencrypted to {host}"
                f" ({ENV_PREFIX}STATE_STORE_URL is redis://): use rediss:// (TLS)"
            )
        return warnings


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: it may resolve anywhere


S = TypeVar("S", bound=RuntimeSettings)


def git_commit() -> str | None:
    """`git rev-parse --short HEAD` in the working directory; None outside a git checkout.

    The local build id of a versioned worker: uncommitted edits do not change it, so commit
    before starting a worker whose code differs from the running ones.
    """
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


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
