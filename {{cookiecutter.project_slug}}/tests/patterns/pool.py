"""The process pool, copied alone: work in child processes that ignore Ctrl-C and can die.

Run by tests/test_patterns.py in a venv holding only the files and dependencies that
docs/patterns.md lists, with the package copied as `yourpackage`.
"""

from __future__ import annotations

import asyncio
import os
import signal

from temporalio.exceptions import ApplicationError
from yourpackage.runtime.pool import CpuPool


def sum_of_squares(limit: int) -> int:
    """At module level, so that it pickles (children import this file as `__mp_main__`)."""
    return sum(i * i for i in range(limit))


async def main() -> None:
    with CpuPool(2) as pool:
        assert await pool.run(sum_of_squares, 10_000) == sum(i * i for i in range(10_000))
        child = await pool.run(os.getpid)
        assert child != os.getpid()
        assert await pool.run(signal.getsignal, signal.SIGINT) == signal.SIG_IGN
        assert await pool.run(signal.getsignal, signal.SIGTERM) == signal.SIG_IGN
        try:
            await pool.run(os._exit, 1)  # a child dies, as under the OOM killer
        except ApplicationError as caught:
            error = caught
        else:
            raise AssertionError("a dead child should fail the call")
        assert error.type == "PoolProcessDied", error
        assert not error.non_retryable
        assert await pool.run(sum_of_squares, 3) == 5  # the pool was replaced


if __name__ == "__main__":
    asyncio.run(main())
    print("ok", flush=True)
    os._exit(0)  # skip finalisation, where the SDK's threads can crash (sdk-python issue 300)
