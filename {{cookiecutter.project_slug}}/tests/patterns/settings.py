"""Settings with envconfig, copied alone: settings from the environment and .env, the
Temporal connection from Temporal's variables, a typo refused, no server needed.

Run by tests/test_patterns.py in a venv holding only the files and dependencies that
docs/patterns.md lists, with the package copied as `yourpackage`, in an empty folder.
"""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

from yourpackage.runtime.client import TemporalUnreachableError, connect, temporal_connect_config
from yourpackage.runtime.settings import ENV_FILE, ENV_PREFIX, RuntimeSettings, load_settings


def unused_address() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


def main() -> None:
    address = unused_address()
    Path(ENV_FILE).write_text(
        f"{ENV_PREFIX}CHECKPOINT_EVERY_ITEMS=7\nTEMPORAL_NAMESPACE=from-dotenv\n", encoding="utf-8"
    )
    os.environ[ENV_PREFIX + "CPU_PROCESSES"] = "3"
    os.environ["TEMPORAL_ADDRESS"] = address

    settings = load_settings(RuntimeSettings)
    assert (settings.cpu_processes, settings.checkpoint_every_items) == (3, 7)
    config = temporal_connect_config()
    assert (config["target_host"], config["namespace"]) == (address, "from-dotenv"), config

    os.environ[ENV_PREFIX + "CPU_PROCESES"] = "5"  # a typo
    try:
        load_settings(RuntimeSettings)
    except SystemExit as caught:
        code = caught.code
    else:
        raise AssertionError("a misspelt setting should stop the program")
    assert code == 2
    del os.environ[ENV_PREFIX + "CPU_PROCESES"]

    patient = settings.model_copy(update={"connect_timeout_seconds": 0.5})
    try:
        asyncio.run(connect(patient))
    except TemporalUnreachableError as caught:
        reason = str(caught)
    else:
        raise AssertionError(f"nothing listens on {address}")
    assert address in reason


if __name__ == "__main__":
    main()
    print("ok", flush=True)
    os._exit(0)  # skip finalisation, where the SDK's threads can crash (sdk-python issue 300)
