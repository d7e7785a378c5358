"""The naive way to send many requests on Temporal, written by hand for comparison: a workflow that schedules
one activity per request, at most C at a time, each activity one aiohttp POST. It does less per request than
httptask (no templates, no validation, no journal of outcomes), so it measures what Temporal itself costs.

Used by bench/temporal_fanout.py: `python -m _naive_temporal worker ADDRESS QUEUE CONCURRENCY` (run from
bench/) serves the workflow and the activity; `... run ADDRESS QUEUE URL ITEMS CONCURRENCY` starts one run and
prints its seconds as JSON.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.common import RetryPolicy
from temporalio.worker import Worker

BODY = b"refund_amount=100&comment=Refund+approved+by+support."
_session = None


@activity.defn(name="naive.refund")
async def refund(url: str) -> int:
    import aiohttp

    global _session
    if _session is None:
        _session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1000))
    headers = {
        "content-type": "application/x-www-form-urlencoded",
        "authorization": "Basic YmVuY2hfa2V5Og==",
        "chargebee-idempotency-key": url,
    }
    async with _session.post(url, data=BODY, headers=headers) as response:
        await response.read()
        return response.status


@workflow.defn(name="naive.fanout")
class NaiveFanOut:
    @workflow.run
    async def run(self, base: str, items: int, concurrency: int) -> int:
        pending = iter(range(items))
        ok = 0

        async def lane() -> None:
            nonlocal ok
            for n in pending:
                status = await workflow.execute_activity(
                    refund,
                    f"{base}/api/v2/invoices/inv_{n}/refund",
                    start_to_close_timeout=timedelta(seconds=60),
                    retry_policy=RetryPolicy(maximum_attempts=3),
                )
                ok += status == 200

        await asyncio.gather(*(lane() for _ in range(concurrency)))
        return ok


async def serve(address: str, queue: str, concurrency: int) -> None:
    client = await Client.connect(address)
    async with Worker(
        client,
        task_queue=queue,
        workflows=[NaiveFanOut],
        activities=[refund],
        max_concurrent_activities=concurrency,
    ):
        print("ready", flush=True)
        await asyncio.Event().wait()


async def run(address: str, queue: str, url: str, items: int, concurrency: int) -> float:
    client = await Client.connect(address)
    started = time.perf_counter()
    ok = await client.execute_workflow(
        NaiveFanOut.run, args=[url, items, concurrency], id=f"naive-{uuid.uuid4().hex[:8]}", task_queue=queue
    )
    seconds = time.perf_counter() - started
    if ok != items:
        raise SystemExit(f"only {ok} of {items} refunds answered 200")
    return seconds


def main() -> None:
    command, *args = sys.argv[1:]
    if command == "worker":
        asyncio.run(serve(args[0], args[1], int(args[2])))
    else:
        seconds = asyncio.run(run(args[0], args[1], args[2], int(args[3]), int(args[4])))
        print(json.dumps({"seconds": seconds}), flush=True)
    # Without the interpreter's teardown, which the SDK's Rust threads can abort (temporalio/sdk-python#300).
    os._exit(0)


if __name__ == "__main__":
    main()
