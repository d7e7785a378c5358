"""Reading a run back from Temporal's history: its start input, and every record of a task's items.

Big things stay where they were written once (the inputs in the run's first event, each item's record in the
result of the activity that sent it), and workers and `runs show` read them from there, so no argument ever
carries a whole fan-out. What cannot change any more is cached: a run's input, and a finished task's records.
"""

from __future__ import annotations

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from .cache import OnceCache
from .model import BatchResult, ItemRecord, RunInput, RunRef, Source
from .workflows import chunk_id

__all__ = ["HistoryReader"]

_COMPLETED = EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
_STARTED = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED


class HistoryReader:
    def __init__(self, client: Client, *, cache_runs: int = 8, cache_tasks: int = 32) -> None:
        self._client = client
        self._inputs = OnceCache(cache_runs)
        self._records = OnceCache(cache_tasks)

    async def start_input(self, ref: RunRef) -> RunInput:
        """The run's input, from the first event of its history."""

        async def load() -> RunInput:
            handle = self._client.get_workflow_handle(ref.workflow_id, run_id=ref.run_id)
            async for event in handle.fetch_history_events():
                if event.event_type != _STARTED:
                    break
                payloads = event.workflow_execution_started_event_attributes.input.payloads
                values = await self._client.data_converter.decode(payloads, [RunInput])
                start: RunInput = values[0]
                return start
            raise LookupError(f"run {ref.workflow_id} has no start event")

        return await self._inputs.get(ref, load)

    async def records(self, ref: RunRef, task: str, source: Source) -> dict[int, ItemRecord]:
        """The final record of every item of a finished task: from its chunk workflows, then the run's own
        history (resends and decisions come after the chunks); an item's later record replaces the earlier."""

        async def load() -> dict[int, ItemRecord]:
            found: dict[int, ItemRecord] = {}
            for number in range(source.chunks):
                await self._collect(chunk_id(ref.workflow_id, task, number), None, task, found)
            await self._collect(ref.workflow_id, ref.run_id, task, found)
            return found

        return await self._records.get((ref, task, source), load)

    async def _collect(
        self, workflow_id: str, run_id: str | None, task: str, found: dict[int, ItemRecord]
    ) -> None:
        handle = self._client.get_workflow_handle(workflow_id, run_id=run_id)
        converter = self._client.data_converter
        async for event in handle.fetch_history_events():
            if event.event_type != _COMPLETED:
                continue
            payloads = event.activity_task_completed_event_attributes.result.payloads
            if not payloads:
                continue
            (value,) = await converter.decode(payloads)
            if BatchResult.is_wire(value) and value["task"] == task:
                for record in BatchResult.from_wire(value).records:
                    found[record.item] = record
