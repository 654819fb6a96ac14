"""Tracing: off by default; on, one trace from the starter through the workflow to each activity.

The real path end to end: a worker process (the probe service) and a client made by the
runtime's `connect()`, both with `OTEL_ENDPOINT` set, send their spans over the OTLP/HTTP
exporter to a receiver on 127.0.0.1 (tests/toolkit/otlp_collector.py), which decodes them.
"""

from __future__ import annotations

import sys
import uuid
from collections import defaultdict
from pathlib import Path

import pytest
from temporalio.client import Client

from {{ cookiecutter.package_name }} import (
    SERVICE_NAME,
)
from {{ cookiecutter.package_name }}.runtime import (
    tracing,
)
from {{ cookiecutter.package_name }}.runtime.client import (
    connect,
)
from {{ cookiecutter.package_name }}.runtime.settings import (
    ENV_PREFIX,
    RuntimeSettings,
)

from ..toolkit.otlp_collector import OtlpCollector, ReceivedSpan
from ..toolkit.processes import PACKAGE, address_of, run_in_group, service_env
from ..toolkit.worker import running_worker
from . import probe


def settings(**values: object) -> RuntimeSettings:
    return RuntimeSettings(_env_file=None, **values)  # type: ignore[arg-type]


def test_off_by_default() -> None:
    assert settings().otel_endpoint is None
    assert tracing.interceptors(settings()) == []


def test_standard_variables_and_ours_winning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "billing")
    standard = settings()
    assert (standard.otel_endpoint, standard.otel_service_name) == (
        "http://collector:4318",
        "billing",
    )
    monkeypatch.setenv(f"{ENV_PREFIX}OTEL_ENDPOINT", "https://ours:4318/")
    monkeypatch.setenv(f"{ENV_PREFIX}OTEL_SERVICE_NAME", "ours")
    ours = settings()
    assert (ours.otel_endpoint, ours.otel_service_name) == ("https://ours:4318/", "ours")
    assert tracing.traces_url("https://ours:4318/") == "https://ours:4318/v1/traces"
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert not tracing.enabled(ours)
    monkeypatch.delenv("OTEL_SDK_DISABLED")
    monkeypatch.delenv(f"{ENV_PREFIX}OTEL_SERVICE_NAME")
    monkeypatch.delenv("OTEL_SERVICE_NAME")
    assert settings().otel_service_name == SERVICE_NAME


def test_a_bad_endpoint_stops_the_worker_naming_the_setting(tmp_path: Path) -> None:
    result = run_in_group(
        [sys.executable, "-m", PACKAGE, "worker"],
        cwd=tmp_path,
        env=service_env("127.0.0.1:1", otel_endpoint="collector:4318"),
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert f"{ENV_PREFIX}OTEL_ENDPOINT: must be an http:// or https:// URL" in result.stderr


def by_trace(spans: list[ReceivedSpan]) -> dict[str, list[ReceivedSpan]]:
    traces: dict[str, list[ReceivedSpan]] = defaultdict(list)
    for span in spans:
        traces[span.trace_id].append(span)
    return traces


@pytest.mark.slow(seconds=3)
async def test_one_trace_holds_the_starter_the_workflow_and_each_activity(
    client: Client, task_queue: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEMPORAL_ADDRESS", address_of(client))  # for connect()
    workflow_id = f"traced-{uuid.uuid4()}"
    with OtlpCollector() as collector:
        env = service_env(
            address_of(client),
            task_queue=task_queue,
            state_store_url=f"sqlite:///{tmp_path / 'state.db'}",
            cpu_processes=1,
            otel_endpoint=collector.endpoint,
            otel_service_name="probe-worker",
        )
        async with running_worker(env, service=probe.SPEC) as worker:
            starter_settings = settings(
                task_queue=task_queue,
                otel_endpoint=collector.endpoint,
                otel_service_name="probe-starter",
                connect_timeout_seconds=10,
            )
            try:
                starter = await connect(starter_settings)
                result = await starter.execute_workflow(
                    probe.ProbeWorkflow.run,
                    probe.ProbeInput(items=3),
                    id=workflow_id,
                    task_queue=task_queue,
                )
            finally:
                tracing.shutdown()  # the starter's spans: sent now
            assert result.total == probe.expected_total(3)
            assert await worker.terminate() == 0, worker.log  # its spans: sent at exit
        spans = collector.spans

    names = {(span.service, span.name) for span in spans}
    start = next(s for s in spans if s.name == "StartWorkflow:ProbeWorkflow")
    trace = by_trace(spans)[start.trace_id]
    in_trace = {(span.service, span.name) for span in trace}
    expected = {
        ("probe-starter", "StartWorkflow:ProbeWorkflow"),
        ("probe-worker", "RunWorkflow:ProbeWorkflow"),
        ("probe-worker", f"StartActivity:{probe.ACTIVITY}"),
        ("probe-worker", f"RunActivity:{probe.ACTIVITY}"),
        ("probe-worker", "CompleteWorkflow:ProbeWorkflow"),
    }
    assert expected <= in_trace, f"trace {start.trace_id} has {in_trace}; all spans: {names}"
    # The SDK's shape: the workflow's spans hang off the starter's (a workflow span has no
    # duration: replay-safe), each activity's run off its start.
    parent_of = {s.name: s.parent_id for s in trace}
    span_id = {s.name: s.span_id for s in trace}
    assert start.parent_id == ""
    assert parent_of["RunWorkflow:ProbeWorkflow"] == start.span_id
    assert parent_of[f"StartActivity:{probe.ACTIVITY}"] == start.span_id
    assert parent_of[f"RunActivity:{probe.ACTIVITY}"] == span_id[f"StartActivity:{probe.ACTIVITY}"]
