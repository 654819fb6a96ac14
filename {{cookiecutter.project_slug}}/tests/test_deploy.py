"""Dockerfile, compose.yaml and deploy/k8s/: they parse, hold what production needs, and run.

No container engine and no cluster run here, so each file is checked the way it can be: the
compose file and the Kubernetes manifests are parsed and asserted field by field (and built
with `kubectl kustomize` where kubectl is installed); the Dockerfile's COPY, RUN and CMD lines
run in a scratch folder, with the image's /app there, together with the commands compose.yaml
gives its other services. The image itself is not built: the base image's part (the uv that
pip installs, the user that useradd creates) is taken on trust.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from asyncio.subprocess import DEVNULL
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from temporalio.client import Client

from {{ cookiecutter.package_name }}.app import (
    Settings,
)
from {{ cookiecutter.package_name }}.runtime.settings import (
    ENV_PREFIX,
    unknown_variables,
)

from .conftest import address_of, run_in_group

PACKAGE = "{{ cookiecutter.package_name }}"
PROJECT_SLUG = "{{ cookiecutter.project_slug }}"
PROJECT = Path(__file__).resolve().parents[1]
K8S = PROJECT / "deploy" / "k8s"
IMAGE_APP = "/app"  # the image's WORKDIR, where the venv and the state store live
# Seconds the worker needs after its graceful shutdown timeout: cancelling what is left,
# stopping the pool, closing the store. Grace periods must exceed the timeout by this much.
SHUTDOWN_MARGIN_SECONDS = 5
ENDPOINT_SETTINGS = ("health_port", "metrics_port")


def setting_default(name: str) -> Any:
    return Settings.model_fields[name].get_default(call_default_factory=True)


def endpoint_port(name: str, configured: Mapping[str, str]) -> int:
    """The port of endpoint setting `name` given environment `configured`."""
    variable = ENV_PREFIX + name.upper()
    if variable in configured:
        return int(configured[variable])
    return int(setting_default(name))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def seconds(duration: str | int | float) -> float:
    """A compose duration (`30s`, `1m30s`, `500ms`) or a number of seconds, in seconds."""
    if isinstance(duration, int | float):
        return float(duration)
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 0.000001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", duration)
    assert parts, f"not a duration: {duration!r}"
    assert "".join(n + u for n, u in parts) == duration, f"not a duration: {duration!r}"
    return sum(float(number) * units[unit] for number, unit in parts)


def quantity(value: str | int) -> float:
    """A Kubernetes CPU or memory quantity (`500m`, `2`, `512Mi`, `1Gi`) as a number."""
    text = str(value)
    suffixes = {"m": 0.001, "Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "k": 1e3, "M": 1e6}
    for suffix, factor in suffixes.items():
        if text.endswith(suffix):
            return float(text.removesuffix(suffix)) * factor
    return float(text)


# --- the Kubernetes manifests ---------------------------------------------------------------


def yaml_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def mapping(value: object) -> dict[str, Any]:
    """`value` (parsed YAML), checked to be a mapping."""
    assert isinstance(value, dict), f"expected a mapping, got {value!r}"
    return value


def kustomization() -> dict[str, Any]:
    (doc,) = yaml_documents(K8S / "kustomization.yaml")
    return doc


def k8s_objects() -> dict[str, dict[str, Any]]:
    """The objects kustomization.yaml applies, by kind."""
    objects = {}
    for resource in kustomization()["resources"]:
        for doc in yaml_documents(K8S / resource):
            assert doc["kind"] not in objects, f"two {doc['kind']}s"
            objects[doc["kind"]] = doc
    return objects


def secret_example() -> dict[str, Any]:
    (doc,) = yaml_documents(K8S / "secret.example.yaml")
    return doc


def pod_spec() -> dict[str, Any]:
    return mapping(k8s_objects()["Deployment"]["spec"]["template"]["spec"])


def worker_container() -> dict[str, Any]:
    (container,) = pod_spec()["containers"]
    return mapping(container)


def config_data() -> dict[str, str]:
    data = mapping(k8s_objects()["ConfigMap"]["data"])
    # Kubernetes rejects a ConfigMap value that YAML reads as a number or a boolean.
    assert all(isinstance(value, str) for value in data.values()), data
    return data


def test_every_manifest_parses_and_kustomization_lists_them() -> None:
    files = sorted(p.name for p in K8S.glob("*.yaml"))
    resources = kustomization()["resources"]
    assert sorted([*resources, "kustomization.yaml", "secret.example.yaml"]) == files
    for name in files:
        for doc in yaml_documents(K8S / name):
            assert {"apiVersion", "kind"} <= doc.keys(), name
            if doc["kind"] != "Kustomization":
                assert doc["metadata"]["name"], name
    assert yaml_documents(PROJECT / "compose.yaml")


@pytest.mark.skipif(not shutil.which("kubectl"), reason="kubectl is not installed")
def test_kustomize_builds_the_manifests() -> None:
    built = run_in_group(["kubectl", "kustomize", str(K8S)], timeout=120)
    assert built.returncode == 0, f"exit code {built.returncode}:\n{built.stderr}{built.stdout}"
    docs = [doc for doc in yaml.safe_load_all(built.stdout) if doc]
    assert sorted(doc["kind"] for doc in docs) == ["ConfigMap", "Deployment", "PodDisruptionBudget"]
    (deployment,) = (doc for doc in docs if doc["kind"] == "Deployment")
    (image,) = kustomization()["images"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == f"{image['newName']}:{image['newTag']}"


@pytest.mark.skipif(not shutil.which("kubectl"), reason="kubectl is not installed")
def test_kubernetes_workers_are_versioned_by_their_image_tag() -> None:
    built = run_in_group(["kubectl", "kustomize", str(K8S)], timeout=120)
    assert built.returncode == 0, f"exit code {built.returncode}:\n{built.stderr}{built.stdout}"
    docs = {doc["kind"]: doc for doc in yaml.safe_load_all(built.stdout) if doc}
    (container,) = docs["Deployment"]["spec"]["template"]["spec"]["containers"]
    env = {variable["name"]: variable["value"] for variable in container["env"]}
    settings = settings_from({**docs["ConfigMap"]["data"], **env})
    (image,) = kustomization()["images"]
    assert settings.worker_versioning
    assert settings.build_id == image["newTag"]
    assert settings.deployment_name == PROJECT_SLUG


def test_three_replicas_and_at_most_one_down() -> None:
    objects = k8s_objects()
    deployment, budget = objects["Deployment"], objects["PodDisruptionBudget"]
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 1
    assert budget["apiVersion"] == "policy/v1"
    assert budget["spec"] == {"maxUnavailable": 1, "selector": deployment["spec"]["selector"]}
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    (spread,) = pod_spec()["topologySpreadConstraints"]
    assert spread["topologyKey"] == "kubernetes.io/hostname"
    assert spread["labelSelector"] == deployment["spec"]["selector"]


def test_termination_grace_outlasts_the_graceful_shutdown() -> None:
    configured = float(config_data().get(ENV_PREFIX + "GRACEFUL_SHUTDOWN_SECONDS", 0))
    graceful = max(setting_default("graceful_shutdown_seconds"), configured)
    assert pod_spec()["terminationGracePeriodSeconds"] >= graceful + SHUTDOWN_MARGIN_SECONDS


def test_probes_and_ports_match_the_health_and_metrics_settings() -> None:
    container, data = worker_container(), config_data()
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {
        "health": endpoint_port("health_port", data),
        "metrics": endpoint_port("metrics_port", data),
    }
    probes = {
        kind: (container[kind]["httpGet"]["path"], container[kind]["httpGet"]["port"])
        for kind in ("startupProbe", "livenessProbe", "readinessProbe")
    }
    assert probes == {
        "startupProbe": ("/healthz", "health"),
        "livenessProbe": ("/healthz", "health"),
        "readinessProbe": ("/readyz", "health"),
    }
    annotations = k8s_objects()["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(ports["metrics"])
    assert annotations["prometheus.io/path"] == "/metrics"


def test_pod_runs_as_non_root_on_a_read_only_root_filesystem() -> None:
    pod, container = pod_spec(), worker_container()
    assert pod["securityContext"]["runAsNonRoot"] is True
    user = pod["securityContext"]["runAsUser"]
    assert user != 0
    assert dockerfile()[-1].last("USER").args.split(":")[0] == str(user)
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    # Every writable path is an emptyDir, and the SQLite state store (if used) is on one.
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
    assert all("emptyDir" in volumes[name] for name in mounts.values())
    assert "/tmp" in mounts  # noqa: S108 (an emptyDir in the pod, not a file here)
    store_url = config_data()[ENV_PREFIX + "STATE_STORE_URL"]
    if store_url.startswith("sqlite:"):
        folder = str(Path(store_url.removeprefix("sqlite:///")).parent)
        assert folder in mounts, f"{folder} (the SQLite store) is on the read-only root"


def test_resources_and_pool_size_agree() -> None:
    resources = worker_container()["resources"]
    for kind in ("cpu", "memory"):
        assert 0 < quantity(resources["requests"][kind]) <= quantity(resources["limits"][kind])
    # os.cpu_count() in a container sees the node's cores: the pool is sized to the limit.
    assert int(config_data()[ENV_PREFIX + "CPU_PROCESSES"]) == quantity(resources["limits"]["cpu"])


def settings_from(environ: Mapping[str, str]) -> Settings:
    """`environ`'s settings, validated; unknown variables of ours fail the test."""
    assert unknown_variables(Settings, dict(environ)) == []
    values: dict[str, Any] = {  # raw strings: Settings validates and converts them
        name.removeprefix(ENV_PREFIX).lower(): value
        for name, value in environ.items()
        if name.startswith(ENV_PREFIX)
    }
    return Settings(_env_file=None, **values)


def test_settings_come_from_the_config_map_and_secrets_from_a_secret() -> None:
    config, secret = k8s_objects()["ConfigMap"], secret_example()
    sources = worker_container()["envFrom"]
    assert sources == [
        {"configMapRef": {"name": config["metadata"]["name"]}},
        {"secretRef": {"name": secret["metadata"]["name"]}},
    ]
    assert {"TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE"} <= config["data"].keys()
    assert all(isinstance(value, str) for value in config["data"].values())
    env = {variable["name"]: variable["value"] for variable in worker_container()["env"]}
    settings = settings_from({**config["data"], **env})  # BUILD_ID: the image tag, in env
    assert settings.cpu_processes == int(config["data"][ENV_PREFIX + "CPU_PROCESSES"])

    # The Secret is a template: placeholders only, never applied from the kustomization, and
    # a filled-in copy (secret.yaml) is kept out of git and out of the image.
    assert "secret.example.yaml" not in kustomization()["resources"]
    assert secret["kind"] == "Secret"
    assert "TEMPORAL_API_KEY" in secret["stringData"]
    for name, value in secret["stringData"].items():
        assert value.startswith("<"), f"{name} must be a placeholder"
        assert value.endswith(">"), f"{name} must be a placeholder"
        assert name not in config["data"]
    assert unknown_variables(Settings, secret["stringData"]) == []
    redis = config["data"][ENV_PREFIX + "STATE_STORE_URL"].startswith(("redis:", "rediss:"))
    assert (ENV_PREFIX + "STATE_STORE_PASSWORD" in secret["stringData"]) == redis
    assert "deploy/k8s/secret.yaml" in (PROJECT / ".gitignore").read_text().splitlines()
    assert dockerignore_matcher()("deploy/k8s/secret.yaml")


# --- compose.yaml ---------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    (doc,) = yaml_documents(PROJECT / "compose.yaml")
    return doc


def test_compose_runs_temporal_three_workers_and_the_sample() -> None:
    services = compose()["services"]
    temporal, worker, run = services["temporal"], services["worker"], services["run-sample"]
    assert temporal["image"].startswith("temporalio/temporal:")
    assert temporal["command"][:2] == ["server", "start-dev"]
    assert "--ip 0.0.0.0" in " ".join(temporal["command"])
    # Published on loopback only: the dev server has no authentication.
    assert set(temporal["ports"]) == {"127.0.0.1:7233:7233", "127.0.0.1:8233:8233"}

    assert worker["deploy"]["replicas"] == 3
    assert worker["build"] == "."
    assert "command" not in worker  # the image's CMD, as in Kubernetes
    assert worker["depends_on"]["temporal"] == {"condition": "service_healthy"}
    assert worker["read_only"] is True
    assert worker["cap_drop"] == ["ALL"]
    assert worker["security_opt"] == ["no-new-privileges:true"]
    limits = worker["deploy"]["resources"]["limits"]
    assert limits["memory"] == "1G"
    assert float(limits["cpus"]) == settings_from(worker["environment"]).cpu_processes
    environment = worker["environment"]
    settings = settings_from(environment)
    graceful = max(settings.graceful_shutdown_seconds, setting_default("graceful_shutdown_seconds"))
    assert seconds(worker["stop_grace_period"]) >= graceful + SHUTDOWN_MARGIN_SECONDS
    assert environment["TEMPORAL_ADDRESS"] == "temporal:7233"

    store_url = environment[ENV_PREFIX + "STATE_STORE_URL"]
    if store_url.startswith("sqlite:"):
        # One SQLite file that the three replicas share through one named volume.
        folder = str(Path(store_url.removeprefix("sqlite:///")).parent)
        volume = next(v for v in worker["volumes"] if v.endswith(":" + folder))
        assert volume.split(":")[0] in compose()["volumes"]
        assert "redis" not in services
    else:
        assert store_url.startswith("redis://redis:")
        assert worker["depends_on"]["redis"] == {"condition": "service_healthy"}

    # The same image for the sample's services, which run once and stop.
    for name in ("sample-site", "run-sample"):
        assert (services[name]["image"], services[name]["build"]) == (worker["image"], ".")
    assert run["restart"] == "no"
    assert f"python -m {PACKAGE} demo-run" in run["command"][-1]  # app.demo_arguments


# --- the Dockerfile and .dockerignore -------------------------------------------------------


@dataclass
class Instruction:
    keyword: str
    args: str

    def flags_and_rest(self) -> tuple[dict[str, str], str]:
        """`--name=value` options before the arguments, and the arguments."""
        flags, rest = {}, self.args
        while match := re.match(r"--([\w-]+)(?:=(\S*))?\s+", rest):
            flags[match[1]] = match[2] or ""
            rest = rest[match.end() :]
        return flags, rest

    def exec_form(self) -> list[str]:
        """The JSON array of a CMD or HEALTHCHECK CMD (exec form)."""
        _, rest = self.flags_and_rest()
        rest = rest.removeprefix("CMD").strip()
        assert rest.startswith("["), f"{self.keyword} is not in exec form: {rest}"
        argv = json.loads(rest)
        assert isinstance(argv, list), f"{self.keyword} is not a JSON array: {rest}"
        assert all(isinstance(arg, str) for arg in argv)
        return argv


@dataclass
class Stage:
    name: str | None
    instructions: list[Instruction]

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction:
        return self.all(keyword)[-1]


def dockerfile() -> list[Stage]:
    """The Dockerfile's stages: continuation lines joined, comments dropped."""
    lines, pending = [], ""
    for raw in (PROJECT / "Dockerfile").read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        lines.append(pending + line)
        pending = ""
    stages: list[Stage] = []
    for line in lines:
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "FROM":
            words = args.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(name, []))
        elif stages:  # an ARG before the first FROM only feeds FROM lines
            stages[-1].instructions.append(Instruction(keyword, args))
    return stages


def glob_regex(pattern: str) -> str:
    """A .dockerignore pattern as a regular expression (Go's filepath.Match, plus `**`)."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out.append(pattern[i : end + 1])
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return "".join(out)


def dockerignore_matcher() -> Callable[[str], bool]:
    """Whether .dockerignore keeps a path (relative, with /) out of the build context.

    Docker's rules: the last pattern that matches the path or one of its folders wins, and a
    pattern starting with ! puts the path back.
    """
    rules = []
    for raw in (PROJECT / ".dockerignore").read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line.removeprefix("!").strip().strip("/")
        rules.append((negate, re.compile(glob_regex(pattern))))

    def ignored(path: str) -> bool:
        parts = path.split("/")
        prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
        result = False
        for negate, regex in rules:
            if any(regex.fullmatch(prefix) for prefix in prefixes):
                result = not negate
        return result

    return ignored


def test_dockerfile_builds_with_uv_and_runs_the_worker_as_non_root() -> None:
    build, final = dockerfile()
    assert build.name == "build"
    runs = [i.flags_and_rest()[1] for i in build.all("RUN")]
    assert any("uv sync --locked --no-dev" in run for run in runs)
    assert [i.args for i in build.all("WORKDIR")] == [IMAGE_APP]
    assert [i.args for i in final.all("WORKDIR")] == [IMAGE_APP]

    # The final stage takes the venv from the build stage and nothing from the context.
    copies = [i.flags_and_rest() for i in final.all("COPY")]
    assert copies == [({"from": "build"}, f"{IMAGE_APP}/.venv {IMAGE_APP}/.venv")]
    user = final.last("USER").args.split(":")[0]
    assert user.isdigit(), "a numeric USER, so that Kubernetes can check runAsNonRoot"
    assert int(user) != 0

    # Exec form: the worker itself is PID 1 and receives SIGTERM (no shell in between).
    assert final.last("CMD").exec_form() == ["python", "-m", PACKAGE, "worker"]
    assert not final.all("ENTRYPOINT")
    health = final.last("HEALTHCHECK").exec_form()
    assert health[:2] == ["python", "-c"]
    assert "/healthz" in health[2]
    exposed = {int(port) for i in final.all("EXPOSE") for port in i.args.split()}
    assert exposed == {endpoint_port("health_port", {}), endpoint_port("metrics_port", {})}


def test_dockerignore_keeps_secrets_and_local_state_out() -> None:
    ignored = dockerignore_matcher()
    for path in (
        ".env",
        ".env.production",
        "deploy/k8s/secret.yaml",
        ".venv/bin/python",
        ".temporal/dev.db",
        ".state/state.db",
        f"src/{PACKAGE}/__pycache__/worker.cpython-311.pyc",
        ".pytest_cache/v/cache",
        ".ruff_cache/CACHEDIR.TAG",
        "tests/pipeline/histories/pipeline.json",
        "sample_data/gil.txt",
        "drill/ha.py",
        ".git/HEAD",
    ):
        assert ignored(path), f"{path} would be sent to the image build"
    for path in ("pyproject.toml", "uv.lock", "README.md", f"src/{PACKAGE}/worker.py"):
        assert not ignored(path), f"{path} is needed by the image build"


# --- the Dockerfile's commands, run here ----------------------------------------------------


def on_host(value: str, app: Path) -> str:
    """`value` with the image's /app replaced by the scratch folder `app`."""
    return re.sub(rf"{re.escape(IMAGE_APP)}(?=/|:|\s|$)", str(app), value)


def apply_env(instruction: Instruction, env: dict[str, str], app: Path) -> None:
    """An ENV line's `name=value` pairs, with $NAME expanded as Docker does."""
    for pair in shlex.split(instruction.args):
        name, _, value = pair.partition("=")
        value = re.sub(r"\$\{?(\w+)\}?", lambda m: env.get(m[1], ""), value)
        env[name] = on_host(value, app)


def copy_from_context(instruction: Instruction, context: Path, app: Path) -> None:
    """A COPY from the build context into `app`, minus what .dockerignore leaves out."""
    ignored = dockerignore_matcher()
    *sources, destination = shlex.split(instruction.args)
    target = app / destination
    for pattern in sources:
        for source in sorted(context.glob(pattern)):
            if ignored(source.relative_to(context).as_posix()):
                continue
            if source.is_dir():  # Docker copies a folder's contents
                shutil.copytree(
                    source,
                    target,
                    dirs_exist_ok=True,
                    ignore=lambda folder, names: [
                        n
                        for n in names
                        if ignored((Path(folder) / n).relative_to(context).as_posix())
                    ],
                )
            elif destination.endswith("/") or len(sources) > 1:  # into a folder
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target / source.name)
            else:
                shutil.copy2(source, target)


def build_stage_env() -> dict[str, str]:
    """The environment of the build stage's RUN lines, before the Dockerfile's ARG and ENV.

    This machine's own (its proxy, certificates and package index settings, which a docker
    build takes from its own configuration), minus what would point uv elsewhere; uv from
    this venv, and the Python it runs on as the base image's only Python.
    """
    drop = {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "UV_PROJECT_ENVIRONMENT"}
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith((ENV_PREFIX, "TEMPORAL_")) and name not in drop
    }
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}"
    env["UV_PYTHON"] = sys.executable
    return env


NOT_REPLAYED = {"UV_COMPILE_BYTECODE": "0"}
"""What the replay of the build stage leaves out. Compiling bytecode, done once in the image
(its root filesystem is read-only at run time), costs about 2.5 s of CPU here and changes
how fast the service starts, not what it runs."""

FINAL_NOT_REPLAYED = {"PYTHONDONTWRITEBYTECODE": ""}
"""What the final stage's replay leaves out, for the same reason: the replayed build compiled
no bytecode, so the processes may write what they compile (the image's build would have),
rather than the worker, the sample run and the health check each compiling it all again."""


def run_build_stage(context: Path, app: Path) -> subprocess.CompletedProcess[str] | None:
    """The build stage's ARG, ENV, COPY and RUN lines in `app`: the first failed RUN, or None.

    The RUN line that installs uv with pip is skipped: uv comes from this venv instead; and
    the settings of `NOT_REPLAYED` win over the Dockerfile's.
    """
    build = dockerfile()[0]
    env = build_stage_env()
    for instruction in build.instructions:
        if instruction.keyword == "ARG":
            name, _, default = instruction.args.partition("=")
            env.setdefault(name, default)
        elif instruction.keyword == "ENV":
            apply_env(instruction, env, app)
            env.update(NOT_REPLAYED)
        elif instruction.keyword == "WORKDIR":
            app.mkdir(parents=True, exist_ok=True)
        elif instruction.keyword == "COPY":
            copy_from_context(instruction, context, app)
        elif instruction.keyword == "RUN":
            _, command = instruction.flags_and_rest()
            if "pip install" in command:
                continue
            result = run_in_group(
                ["sh", "-c", on_host(command, app)], cwd=app, env=env, timeout=600
            )
            if result.returncode != 0:
                return result
    return None


def test_docker_build_stops_with_a_clear_error_without_uv_lock(tmp_path: Path) -> None:
    context = tmp_path / "context"
    context.mkdir()
    for name in ("pyproject.toml", "README.md", ".dockerignore"):
        shutil.copy2(PROJECT / name, context / name)
    failed = run_build_stage(context, tmp_path / "app")
    assert failed is not None
    assert "error: uv.lock is missing" in failed.stderr
    assert "commit uv.lock" in failed.stderr
    assert not (tmp_path / "app" / ".venv").exists()  # it stopped before installing anything


@pytest.fixture
def image_app(tmp_path: Path) -> Path:
    """The image's /app after a build: the build stage run here, then only the venv kept."""
    assert (PROJECT / "uv.lock").is_file(), "no uv.lock: run make install"
    app = tmp_path / "app"
    failed = run_build_stage(PROJECT, app)
    assert failed is None, failed.stdout + failed.stderr
    # The final stage starts from scratch: `COPY --from=build /app/.venv /app/.venv` only.
    # Moved rather than copied (the same files at the same path): the build stage is gone.
    built = app.rename(tmp_path / "build-stage")
    app.mkdir()
    (copy,) = dockerfile()[-1].all("COPY")
    source, destination = copy.flags_and_rest()[1].split()
    target = Path(on_host(destination, app))
    target.parent.mkdir(parents=True, exist_ok=True)
    Path(on_host(source, built)).rename(target)
    # The service is installed into the venv (--no-editable), not linked to this checkout.
    (_installed,) = app.glob(f".venv/lib/python*/site-packages/{PACKAGE}/runtime/worker.py")
    links = app.glob(".venv/lib/python*/site-packages/*.pth")
    assert not any(str(PROJECT) in link.read_text() for link in links)
    return app


def image_env(app: Path, **overrides: str) -> dict[str, str]:
    """The final stage's environment: a container's, the Dockerfile's ENV lines (but
    `FINAL_NOT_REPLAYED`), `overrides`."""
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/nonexistent", "LANG": "C.UTF-8"}
    for instruction in dockerfile()[-1].all("ENV"):
        apply_env(instruction, env, app)
    env.update(FINAL_NOT_REPLAYED)
    env.update(overrides)
    return env


def executable(argv: list[str], env: Mapping[str, str]) -> list[str]:
    """`argv` with its program looked up on `env`'s PATH, as the container would."""
    program = shutil.which(argv[0], path=env["PATH"])
    assert program is not None, f"{argv[0]} not on PATH {env['PATH']}"
    return [program, *argv[1:]]


class Services:
    """Processes started as their containers would be, each in a process group of its own
    (as a container's processes: a worker's pool children join it). Their stdout and stderr
    go to files in `folder`, shown by `shown()` in every failure. `stop_all` kills every
    group, however the test ends."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.started: dict[str, asyncio.subprocess.Process] = {}

    async def start(
        self, name: str, argv: list[str], env: dict[str, str], cwd: Path
    ) -> asyncio.subprocess.Process:
        """`argv` started as in its container: PATH lookup, cwd /app, only `env`."""
        with self.stdout(name).open("wb") as out, self.stderr(name).open("wb") as err:
            process = await asyncio.create_subprocess_exec(
                *executable(argv, env),
                cwd=cwd,
                env=env,
                stdin=DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        self.started[name] = process
        return process

    def stdout(self, name: str) -> Path:
        return self.folder / f"{name}.stdout"

    def stderr(self, name: str) -> Path:
        return self.folder / f"{name}.stderr"

    def shown(self) -> str:
        """Each process's state, stdout and stderr so far."""
        parts = []
        for name, process in self.started.items():
            state = "running" if process.returncode is None else f"exit {process.returncode}"
            parts.append(
                f"--- {name} ({state}), stdout:\n{self.stdout(name).read_text(errors='replace')}"
            )
            parts.append(f"--- {name}, stderr:\n{self.stderr(name).read_text(errors='replace')}")
        return "\n".join(parts)

    async def wait_for(
        self, condition: Callable[[], bool], what: str, *, watching: str, timeout: float = 120.0
    ) -> None:
        """Wait until `condition()` holds; fail at once if process `watching` exits first.
        The timeout is only a guard for a broken test."""
        deadline = time.monotonic() + timeout
        while not condition():
            process = self.started[watching]
            assert process.returncode is None, f"{watching} exited before {what}:\n{self.shown()}"
            assert time.monotonic() < deadline, f"timed out waiting for {what}:\n{self.shown()}"
            await asyncio.sleep(0.05)

    async def exit_code(self, name: str, timeout: float = 300.0) -> int:
        """The exit code of process `name`, once it has exited (a guard for a broken test)."""
        try:
            return await asyncio.wait_for(self.started[name].wait(), timeout)
        except TimeoutError:
            raise AssertionError(f"{name} ran over {timeout:g} s:\n{self.shown()}") from None

    async def stop_all(self) -> None:
        for process in self.started.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()


def listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
        return True
    return False


@pytest.mark.slow(seconds=7)  # the build stage's uv sync and a run of the sample
async def test_image_commands_install_the_service_and_run_the_sample(
    image_app: Path, client: Client, tmp_path: Path
) -> None:
    """The image's CMD and compose.yaml's commands, from the venv the build stage made.

    A worker started as the image starts it (cwd /app holding only the venv, HOME missing)
    serves the compose sample run over sample_data/, then drains on SIGTERM and exits 0.
    """
    app, services_of_compose = image_app, compose()["services"]
    site_argv = services_of_compose["sample-site"]["command"]
    site_port = free_port()
    site_name = f"sample-site:{site_argv[site_argv.index('http.server') + 1]}"
    store_url = services_of_compose["worker"]["environment"][ENV_PREFIX + "STATE_STORE_URL"]
    redis_name, redis_port = urlsplit(store_url).netloc, free_port()  # compose's redis service

    def localize(value: str) -> str:
        """A compose value as it reads here: hosts, bind mounts and $$ resolved."""
        value = value.replace("$$", "$")
        value = value.replace("temporal:7233", address_of(client))
        value = value.replace(site_name, f"127.0.0.1:{site_port}")
        if store_url.startswith("redis:"):
            value = value.replace(f"//{redis_name}/", f"//127.0.0.1:{redis_port}/")
        value = re.sub(r"/samples(?=/|\s|$)", str(PROJECT / "sample_data"), value)
        return on_host(value, app)

    def service_env(name: str) -> dict[str, str]:
        env = {k: localize(str(v)) for k, v in services_of_compose[name]["environment"].items()}
        env[ENV_PREFIX + "TASK_QUEUE"] = f"image-{tmp_path.name}"
        for setting in ENDPOINT_SETTINGS:  # free ports: other workers may use the defaults
            env[ENV_PREFIX + setting.upper()] = str(free_port())
        return image_env(app, **env)

    final = dockerfile()[-1]
    services = Services(tmp_path)
    worker_env = service_env("worker")
    try:
        if store_url.startswith("redis:"):
            assert shutil.which("redis-server"), "redis-server is not installed (apt redis-server)"
            redis = ["redis-server", "--bind", "127.0.0.1", "--port", str(redis_port)]
            redis += ["--save", "", "--appendonly", "no"]
            await services.start("redis", redis, {"PATH": "/usr/local/bin:/usr/bin:/bin"}, app)
            await services.wait_for(lambda: listening(redis_port), "Redis", watching="redis")
        await services.start("worker", final.last("CMD").exec_form(), worker_env, app)
        port = site_name.split(":")[1]
        site_command = [str(site_port) if a == port else localize(a) for a in site_argv]
        await services.start("sample-site", site_command, service_env("sample-site"), app)
        worker_log = services.stderr("worker")
        await services.wait_for(
            lambda: b"worker started" in worker_log.read_bytes(), "the worker", watching="worker"
        )
        await services.wait_for(
            lambda: listening(site_port), "the sample site", watching="sample-site"
        )

        run_command = [localize(arg) for arg in services_of_compose["run-sample"]["command"]]
        await services.start("run-sample", run_command, service_env("run-sample"), app)
        assert await services.exit_code("run-sample") == 0, services.shown()
        # Exit code 0: the workflow completed; what it prints is the sample's (app.py).
        assert services.stdout("run-sample").read_text().strip(), services.shown()

        if "health_port" in Settings.model_fields:  # the image's HEALTHCHECK, on this worker
            await services.start(
                "healthcheck", final.last("HEALTHCHECK").exec_form(), worker_env, app
            )
            assert await services.exit_code("healthcheck", 60) == 0, services.shown()

        services.started["worker"].send_signal(signal.SIGTERM)
        assert await services.exit_code("worker", 120) == 0, services.shown()
        log_text = worker_log.read_text()
        assert "draining" in log_text, services.shown()
        assert "worker stopped" in log_text, services.shown()
    finally:
        await services.stop_all()
