"""How close a pipeline run came to Temporal's limits: events per history, payload sizes.

Temporal stores every workflow input, result and activity argument as a payload in the
workflow's history; it refuses a payload over 2 MB, warns at 10,240 events in one history and
stops a workflow at 51,200 events or 50 MB. `measure` walks a whole run: every run of the
parent's continue-as-new chain and every child workflow it started.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

PAYLOAD = "temporal.api.common.v1.Payload"


@dataclass
class Limits:
    histories: int = 0
    most_events: int = 0
    most_events_in: str = ""
    largest_payload: int = 0
    largest_payload_in: str = ""

    def add(self, name: str, events: int, payloads: list[int]) -> None:
        self.histories += 1
        if events > self.most_events:
            self.most_events, self.most_events_in = events, name
        if payloads and max(payloads) > self.largest_payload:
            self.largest_payload, self.largest_payload_in = max(payloads), name


def payload_sizes(message: Message) -> Iterator[int]:
    """Serialized size of every Payload inside a protobuf message (maps and lists included)."""
    if message.DESCRIPTOR.full_name == PAYLOAD:
        yield message.ByteSize()
        return
    for field, value in message.ListFields():
        kind = field.message_type
        if field.type != FieldDescriptor.TYPE_MESSAGE or kind is None:
            continue
        if kind.GetOptions().map_entry:
            entry_value = kind.fields_by_name["value"]
            if entry_value.type == FieldDescriptor.TYPE_MESSAGE:
                for item in value.values():
                    yield from payload_sizes(item)
        elif field.is_repeated:
            for item in value:
                yield from payload_sizes(item)
        else:
            yield from payload_sizes(value)


async def measure(client: Client, workflow_id: str) -> Limits:
    """Events and payload sizes of every history of a run: parent runs and children."""
    latest = await client.get_workflow_handle(workflow_id).describe()
    first_run_id = latest.raw_description.workflow_execution_info.first_run_id
    limits = Limits()
    pending: list[tuple[str, str | None]] = [(workflow_id, first_run_id)]
    while pending:
        wf_id, run_id = pending.pop()
        history = await client.get_workflow_handle(wf_id, run_id=run_id).fetch_history()
        sizes = [size for event in history.events for size in payload_sizes(event)]
        limits.add(f"{wf_id} ({run_id})", len(history.events), sizes)
        for event in history.events:
            if event.event_type == EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED:
                child = event.child_workflow_execution_started_event_attributes
                pending.append(
                    (child.workflow_execution.workflow_id, child.workflow_execution.run_id)
                )
            elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
                attributes = event.workflow_execution_continued_as_new_event_attributes
                pending.append((wf_id, attributes.new_execution_run_id))
    return limits
