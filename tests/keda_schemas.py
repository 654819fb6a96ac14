"""Write the KEDA JSON schemas that a bake's tests/test_deploy_validators.py checks against.

The generated project validates deploy/k8s/components/keda/ offline with check-jsonschema, so
the schemas are vendored: {{cookiecutter.project_slug}}/tests/schemas/keda-*.json. They come
from the pydantic models of PyPI's `cloudcoil-models-keda` (generated from KEDA's CRDs),
tightened the way a CRD's structural schema behaves on a cluster, where an unknown field is
an error under `kubectl apply --validate=strict` (the default): every object with named
properties refuses others (a misspelt `minReplicaCount` fails), and `apiVersion`, `kind`,
`metadata` and `spec` are required. Run it once per KEDA release the manifests target, in a
scratch venv, not the template's (cloudcoil is not one of its tools):

    python3 -m venv /tmp/keda && /tmp/keda/bin/pip install cloudcoil-models-keda==2.16.1.0
    /tmp/keda/bin/python tests/keda_schemas.py

(2.16.1.0 is the newest release of the models; KEDA 2.17 added the `temporal` scaler but no
field to the two resources: a trigger's metadata is a map of strings in every version.)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cloudcoil.models.keda import v1alpha1  # type: ignore[import-not-found]

Json = Any  # a decoded JSON value

MODELS_VERSION = "2.16.1.0"
OUT = Path(__file__).resolve().parent.parent / "{{cookiecutter.project_slug}}" / "tests" / "schemas"
RESOURCES = {
    "ScaledObject": "keda-scaledobject.json",
    "TriggerAuthentication": "keda-triggerauthentication.json",
}
TOP_LEVEL_REQUIRED = ["apiVersion", "kind", "metadata", "spec"]


def closed(node: Json) -> Json:
    """Return `node` with `additionalProperties: false` on each object schema naming properties."""
    if isinstance(node, dict):
        node = {key: closed(value) for key, value in node.items()}
        if "properties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        return node
    if isinstance(node, list):
        return [closed(item) for item in node]
    return node


def schema_of(kind: str) -> dict[str, Any]:
    """Return the JSON schema of one KEDA resource, closed, with its top-level fields required."""
    schema = closed(getattr(v1alpha1, kind).model_json_schema(by_alias=True))
    schema["required"] = TOP_LEVEL_REQUIRED
    for field in ("apiVersion", "kind"):  # `const` and a string, not also null
        schema["properties"][field] = next(
            option for option in schema["properties"][field]["anyOf"] if "const" in option
        )
    schema["properties"]["metadata"] = {"$ref": "#/$defs/ObjectMeta"}
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["description"] = (
        f"KEDA {kind} (keda.sh/v1alpha1), from cloudcoil-models-keda {MODELS_VERSION}; written by"
        " the template's tests/keda_schemas.py"
    )
    return schema


def main() -> None:
    """Write each resource's schema into the template's tests/schemas/."""
    OUT.mkdir(parents=True, exist_ok=True)
    for kind, name in RESOURCES.items():
        text = json.dumps(schema_of(kind), indent=1, sort_keys=True) + "\n"
        (OUT / name).write_text(text, encoding="utf-8")
        print(f"wrote {OUT / name} ({len(text)} bytes)")


if __name__ == "__main__":
    main()
