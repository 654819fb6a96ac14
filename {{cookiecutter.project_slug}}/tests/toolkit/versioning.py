"""Worker Versioning in tests: make a deployment version current, as a rollout does.

New workflows on a versioned worker (`WORKER_VERSIONING=true`) wait until their deployment
has a current version. A test (or `make dev`) sets it with the same CLI command a deploy runs:

    async with running_worker(service_env(address, worker_versioning=True,
                                          deployment_name="d", build_id="b1")) as worker:
        await set_current_version(client, "d", "b1")
"""

from __future__ import annotations

from temporalio.client import Client

from .processes import TEMPORAL_CLI, address_of, run_process


async def set_current_version(client: Client, deployment_name: str, build_id: str) -> str:
    """`temporal worker deployment set-current-version` on `client`'s server; its output.

    `--allow-no-pollers`: the version may be made current before its workers have polled.
    """
    code, output = await run_process(
        str(TEMPORAL_CLI),
        "worker",
        "deployment",
        "set-current-version",
        "--address",
        address_of(client),
        "--namespace",
        client.namespace,
        "--deployment-name",
        deployment_name,
        "--build-id",
        build_id,
        "--allow-no-pollers",
        "--yes",
    )
    assert code == 0, output
    return output
