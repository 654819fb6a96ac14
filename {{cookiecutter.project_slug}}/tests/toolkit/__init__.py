"""The test toolkit: resilience tests for any workflow on this runtime (docs/testing.md).

It imports only the service's runtime (`<package>.runtime`) and `<package>.app` (for the
default `SERVICE`), never a sample, so a project keeps it when it replaces the samples.

    devserver.py     dev_server(): the real `temporal server start-dev` (conftest: `temporal_env`)
    processes.py     service_env, address_of, free_port, run_process, run_in_group
    launcher.py      start_python(): Python subprocesses forked from a warm interpreter (less CPU)
    leak_guard.py    the session's leak check, a pytest plugin (conftest loads it)
    worker.py        WorkerProcess / running_worker / running_workers: real worker processes to
                     kill -9 (`kill`) and SIGTERM (`terminate`, `drain`); in_process_worker
    gate.py          Gate, GatedStore: hold an activity after its first checkpoint, certainly
    gated_worker.py  `python -m tests.toolkit.gated_worker [module:attribute]`: any Service, gated
    observe.py       what Temporal recorded: pending_activity, activity_outcomes, identities, poll
    history.py       record(folder, run) and replay(path, workflows): recorded-history tests
    versioning.py    set_current_version: make a Worker Deployment version current (CLI)
    metrics.py       scrape, totals: a worker's /metrics
    otlp_collector.py  OtlpCollector: a real OTLP/HTTP trace receiver; the spans it got, decoded
    http_site.py     LocalSite: a real HTTP server with slow, failing and gated pages
    redis_server.py  RedisServer: a real redis-server (skipped without one, except in CI)

Nothing is imported here: pool processes of a gated worker import this package first.
"""
