"""Logging: plain lines for people, or one JSON object per line for log collectors.

Every line logged inside an activity or a workflow carries its ids (workflow id, activity
type and id, attempt), whichever logger wrote it: the SDK's `activity.logger` and
`workflow.logger` pass them in `extra` (as `temporal_activity` / `temporal_workflow`),
and for any other logger called from inside an activity they are read from the activity's
context. Plain lines end with them as `key=value` pairs; JSON lines have them as fields:

    ... WARNING my_service.memo: memo ... ignored [workflow_id=p-1 activity_id=3 ...]
    {"time": "...", "level": "WARNING", "message": "memo ... ignored", "workflow_id": ...}

Depends only on the standard library and temporalio.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

from temporalio import activity, workflow

LogFormat = Literal["plain", "json"]

# The ids a line carries, in this order; plain lines show the first four.
ACTIVITY_FIELDS = ("workflow_id", "activity_type", "activity_id", "attempt")
CONTEXT_FIELDS = (
    *ACTIVITY_FIELDS,
    "workflow_type",
    "workflow_run_id",
    "task_queue",
    "namespace",
)
PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(level: str, log_format: LogFormat, stream: TextIO | None = None) -> None:
    """Send every log record at `level` or above to `stream` (stderr) in `log_format`.

    Replaces the handler an earlier call installed. The SDK's loggers stop appending their
    context dict to the message: the ids are added by the formatter, in both formats.
    """
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h.formatter, _Formatter)]:
        root.removeHandler(old)
    root.addHandler(log_handler(log_format, sys.stderr if stream is None else stream))
    root.setLevel(level)
    activity.logger.activity_info_on_message = False
    workflow.logger.workflow_info_on_message = False
    if level != "DEBUG":  # httpx logs every request at INFO
        logging.getLogger("httpx").setLevel(logging.WARNING)


def log_handler(log_format: LogFormat, stream: TextIO) -> logging.Handler:
    """A handler writing to `stream` in `log_format`, with workflow and activity ids."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if log_format == "json" else PlainFormatter())
    return handler


def temporal_context(record: logging.LogRecord) -> dict[str, Any]:
    """The workflow and activity ids of `record`, from its `extra` or the running activity."""
    if isinstance(details := getattr(record, "temporal_activity", None), dict):
        context = dict(details)
    elif isinstance(details := getattr(record, "temporal_workflow", None), dict):
        context = dict(details)
        if "run_id" in context:
            context["workflow_run_id"] = context.pop("run_id")
    elif activity.in_activity():  # any logger, called from inside an activity
        info = activity.info()
        context = {name: getattr(info, name, None) for name in CONTEXT_FIELDS}
    else:
        return {}
    return {name: context[name] for name in CONTEXT_FIELDS if context.get(name) is not None}


class _Formatter(logging.Formatter):
    """Marks the handlers `configure_logging` installed."""


class PlainFormatter(_Formatter):
    """`time LEVEL logger: message [workflow_id=... activity_type=... ...]`."""

    def __init__(self) -> None:
        super().__init__(PLAIN_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = temporal_context(record)
        ids = " ".join(f"{k}={context[k]}" for k in ACTIVITY_FIELDS if k in context)
        if not ids:
            return line
        first, newline, rest = line.partition("\n")  # keep a traceback below the ids
        return f"{first} [{ids}]{newline}{rest}"


class JsonFormatter(_Formatter):
    """One JSON object per line: time (UTC), level, logger, message, ids, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **temporal_context(record),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)
