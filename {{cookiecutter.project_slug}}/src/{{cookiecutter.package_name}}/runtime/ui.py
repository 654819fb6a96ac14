"""Links into the Temporal UI, for what a starter prints."""

from __future__ import annotations

from urllib.parse import quote

DEV_SERVER_UI_PORT = 8233


def default_ui_url(address: str) -> str | None:
    """The Temporal UI that usually goes with a server address, if there is an obvious one."""
    host = address.rsplit(":", 1)[0]
    if host in ("localhost", "127.0.0.1"):
        return f"http://{host}:{DEV_SERVER_UI_PORT}"
    if host.endswith(".tmprl.cloud"):
        return "https://cloud.temporal.io"
    return None


def workflow_link(ui_url: str, namespace: str, workflow_id: str) -> str:
    """The UI page of one workflow."""
    return f"{ui_url.rstrip('/')}/namespaces/{quote(namespace)}/workflows/{quote(workflow_id)}"
