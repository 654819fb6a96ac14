"""The scale run: the whole pipeline over thousands of small documents on three workers.

Everything is real and local: the embedded dev server, three worker processes sharing the
project's default state store (one CPU process each, as three one-core pods), a corpus
server in its own process, and `python -m <package> run --json --urls-file` as the starter.
Every 500th document is a near-copy of one 250 documents earlier, in another batch, so the
cross-batch grouping has something to find.

Printed per run: documents per second, the largest payload and the most events in any one
history (the parent's runs and every batch's), and the peak resident memory of each worker
process (VmHWM) and of its pool process. Memory should not grow with the documents. Then the
profile of the run: CPU time per document of each kind of process (the dev server, the
workers' own processes, their pool processes, the corpus server standing in for the web, and
`run`), read from /proc, which says where the two cores went. Last, the same run on this
service's workers and on bare SDK workers (bench/bare.py), in turn: the ratio is what the
template's machinery costs.

    python -m bench.scale                      # 1,000 then 10,000 documents
    python -m bench.scale --documents 2000 --batch-size 250 --parallel-batches 6
    python -m bench.scale --documents 10000 --bare-rounds 0   # no bare-worker comparison
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from temporalio.client import Client

from drill.cluster import ENV_PREFIX, PACKAGE, Cluster
from {{ cookiecutter.package_name }}.app import (
    Settings,
)

from .limits import Limits, measure

WORKERS = 3
WORDS = 150
NEAR_EVERY, NEAR_BACK = 500, 250
MIB = 1024 * 1024
DEFAULTS = Settings(_env_file=None)
BARE_DOCUMENTS, BARE_ROUNDS = 3000, 3


@dataclass
class Run:
    documents: int
    seconds: float
    groups: int
    limits: Limits
    worker_peaks: list[int]
    pool_peaks: list[int]
    cpu: dict[str, float]  # CPU seconds by role: server, workers, pools, corpus, starter


def peak_rss(pid: int) -> int:
    """Peak resident memory of a live process, in bytes (Linux: VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmHWM for {pid}")


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a live process has used so far (Linux: /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(p) for p in (task / "children").read_text().split()]
    return found


def corpus(base_url: str, documents: int) -> list[str]:
    urls = [f"{base_url}/scale/{i}" for i in range(documents)]
    for i in range(NEAR_EVERY, documents, NEAR_EVERY):
        urls[i] = f"{base_url}/scale/{i - NEAR_BACK}/near"
    return urls


async def one_run(
    workdir: Path,
    corpus_pid: int,
    base_url: str,
    documents: int,
    batch_size: int,
    parallel: int,
    *,
    worker_module: str | None = None,
) -> Run:
    """One whole pipeline run on a fresh cluster; `worker_module`: run that module's worker
    (bench/bare.py) instead of the service's own."""
    cluster = Cluster(workdir)
    try:
        await cluster.start_server()
        store_url, _ = await cluster.start_stores()
        # The service's own checkpoint policy (the drill's cluster saves far more often).
        settings = {
            "cpu_processes": 1,
            "checkpoint_every_items": DEFAULTS.checkpoint_every_items,
            "checkpoint_every_seconds": DEFAULTS.checkpoint_every_seconds,
        }
        workers = [
            await cluster.start_worker("scale", store_url, module=worker_module, settings=settings)
            for _ in range(WORKERS)
        ]
        urls_file = workdir / "urls.txt"
        urls_file.write_text("\n".join(corpus(base_url, documents)) + "\n")
        env = {
            "TEMPORAL_ADDRESS": cluster.address,
            f"{ENV_PREFIX}TASK_QUEUE": "scale",
            f"{ENV_PREFIX}STATE_STORE_URL": store_url,
            f"{ENV_PREFIX}BATCH_SIZE": str(batch_size),
            f"{ENV_PREFIX}PARALLEL_BATCHES": str(parallel),
        }
        server = next(p for p in cluster.processes if p.name == "temporal-server")
        roles = {
            "server": [server.pid],
            "workers": [w.pid for w in workers],
            "pools": [c for w in workers for c in children(w.pid)],
            "corpus": [corpus_pid],
        }
        before = {role: sum(map(cpu_seconds, pids)) for role, pids in roles.items()}
        reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        starter = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", PACKAGE, "run", "--json", "--urls-file", str(urls_file),
             "--workflow-id", "scale"],
            env={**_clean_env(), **env}, capture_output=True, text=True, check=False,
        )  # fmt: skip
        seconds = time.perf_counter() - started
        cpu = {role: sum(map(cpu_seconds, pids)) - before[role] for role, pids in roles.items()}
        after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the starter, the one reaped
        cpu["starter"] = after.ru_utime + after.ru_stime - reaped.ru_utime - reaped.ru_stime
        if starter.returncode != 0:
            raise RuntimeError(f"run failed ({starter.returncode}): {starter.stderr[-2000:]}")
        report = json.loads(starter.stdout)
        if len(report["documents"]) + len(report["failed"]) != documents:
            raise RuntimeError("the report does not list every document")
        client = await Client.connect(cluster.address)
        limits = await measure(client, "scale")
        worker_peaks = [peak_rss(w.pid) for w in workers]
        pool_peaks = [max((peak_rss(c) for c in children(w.pid)), default=0) for w in workers]
        return Run(
            documents, seconds, len(report["duplicates"]), limits, worker_peaks, pool_peaks, cpu
        )
    finally:
        await cluster.stop()


async def bare_comparison(corpus_pid: int, base_url: str, args: argparse.Namespace) -> None:
    """This service's workers against bare SDK workers (bench/bare.py), same run, in turn."""
    documents, rounds = BARE_DOCUMENTS, args.bare_rounds
    print(f"\nThis worker against a bare SDK worker ({documents} documents, best of {rounds})")
    kinds = {"this worker": None, "bare SDK worker": "bench.bare"}
    runs: dict[str, list[Run]] = {name: [] for name in kinds}
    for _ in range(rounds):  # in turn, so drift on a busy machine hits both
        for name, module in kinds.items():
            with tempfile.TemporaryDirectory() as tmp:
                run = await one_run(
                    Path(tmp), corpus_pid, base_url, documents, args.batch_size,
                    args.parallel_batches, worker_module=module,
                )  # fmt: skip
            runs[name].append(run)
    rate = {name: max(r.documents / r.seconds for r in done) for name, done in runs.items()}
    for name, done in runs.items():
        each = " ".join(f"{r.documents / r.seconds:.0f}" for r in done)
        worker_cpu = min(1000 * (r.cpu["workers"] + r.cpu["pools"]) / r.documents for r in done)
        server_cpu = min(1000 * r.cpu["server"] / r.documents for r in done)
        print(
            f"  {name:<16} {rate[name]:>6.1f} docs/s (runs {each});  CPU ms per document:"
            f" workers and pools {worker_cpu:.2f}, server {server_cpu:.2f}"
        )
    ratio = rate["this worker"] / rate["bare SDK worker"]
    print(f"  ratio this/bare  {ratio:>6.2f}  (target >= 0.95)", flush=True)


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}


def mib(values: list[int]) -> str:
    return " ".join(f"{v / MIB:.0f}" for v in values)


async def main() -> None:
    defaults = DEFAULTS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, nargs="+", default=[1000, 10_000])
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--parallel-batches", type=int, default=defaults.parallel_batches)
    parser.add_argument(
        "--bare-rounds", type=int, default=BARE_ROUNDS, help="0: no bare SDK worker comparison"
    )
    args = parser.parse_args()

    server = subprocess.Popen(
        [sys.executable, "-m", "bench.latency_server", "0", str(WORDS)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        base_url = server.stdout.readline().strip()
        print(
            f"Scale run: {WORKERS} workers (1 CPU process each), {WORDS}-word documents, "
            f"batches of {args.batch_size}, {args.parallel_batches} at once"
        )
        print(
            f"  {'documents':>9} {'seconds':>8} {'docs/s':>7} {'groups':>6} {'histories':>9} "
            f"{'most events':>11} {'largest payload':>15}  peak RSS MiB: workers | pools"
        )
        for documents in args.documents:
            with tempfile.TemporaryDirectory() as tmp:
                run = await one_run(
                    Path(tmp), server.pid, base_url, documents, args.batch_size,
                    args.parallel_batches,
                )  # fmt: skip
            limits = run.limits
            print(
                f"  {run.documents:>9} {run.seconds:>8.1f} {run.documents / run.seconds:>7.1f} "
                f"{run.groups:>6} {limits.histories:>9} {limits.most_events:>11} "
                f"{limits.largest_payload:>13} B  {mib(run.worker_peaks)} | {mib(run.pool_peaks)}",
                flush=True,
            )
            share = "  ".join(
                f"{role} {1000 * cpu / run.documents:.2f}" for role, cpu in run.cpu.items()
            )
            print(f"  {'':>9} CPU ms per document: {share}", flush=True)
        print("  targets: largest payload < 1 MB, < 10,000 events per history, "
              "peak worker memory < 250 MiB and about the same at every size")  # fmt: skip

        if args.bare_rounds > 0:
            await bare_comparison(server.pid, base_url, args)
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    asyncio.run(main())
