"""A fan-out of 100,000 refunds killed with SIGKILL three times and resumed to the end: every invoice is acted
on exactly once, always under the same idempotency key, and the journal ends with every item succeeded."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "refund-invoices.yaml"
KEY_HEADER = "chargebee-idempotency-key"
ITEMS = 100_000


@dataclass
class Refunds:
    """Chargebee's refund endpoint on 127.0.0.1, as it behaves: a key seen before gets the stored answer and
    no second refund. `acted` counts refunds per invoice, `keys` the keys each invoice came with.

    A bare asyncio protocol rather than a web framework: it shares two cores with the engine under test, so
    its own cost per request is kept small (keep-alive HTTP/1.1, a Content-Length body, nothing else)."""

    url: str = ""
    acted: dict[str, int] = field(default_factory=dict)
    keys: dict[str, set[str | None]] = field(default_factory=dict)
    seen_keys: set[str] = field(default_factory=set)
    received: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def refund(self, invoice: str, key: str | None) -> None:
        with self.lock:
            self.received.append(invoice)
            self.keys.setdefault(invoice, set()).add(key)
            if key is None or key not in self.seen_keys:
                self.acted[invoice] = self.acted.get(invoice, 0) + 1
                if key is not None:
                    self.seen_keys.add(key)

    def count(self) -> int:
        with self.lock:
            return len(self.acted)


_ANSWER = b'{"invoice":{"status":"paid"}}'
_RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(_ANSWER)
    + _ANSWER
)


class _Protocol(asyncio.Protocol):
    def __init__(self, state: Refunds) -> None:
        self.state = state
        self.buffer = bytearray()
        self.transport: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = bytes(self.buffer[:end]).decode("latin-1")
            lines = head.split("\r\n")
            headers = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
            length = int(headers.get("content-length", "0"))
            if len(self.buffer) < end + 4 + length:
                return
            del self.buffer[: end + 4 + length]
            invoice = lines[0].split(" ")[1].split("/")[4]
            self.state.refund(invoice, headers.get(KEY_HEADER))
            self.transport.write(_RESPONSE)


@pytest.fixture
def refunds() -> Iterator[Refunds]:
    state = Refunds()
    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(
        loop.create_server(lambda: _Protocol(state), "127.0.0.1", 0, backlog=1024)
    )
    state.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield state
    loop.call_soon_threadsafe(server.close)
    loop.call_soon_threadsafe(loop.stop)
    thread.join()
    loop.close()


def _run(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "httptask", "run", *args, "--concurrency", "64", "--json"],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _kill_at(process: subprocess.Popen[str], refunds: Refunds, count: int) -> None:
    deadline = time.monotonic() + 600
    while refunds.count() < count:
        assert process.poll() is None, f"the run ended before it could be killed: {process.communicate()}"
        assert time.monotonic() < deadline, "the run made no progress"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    time.sleep(0.2)  # what was already on the wire reaches the server


def test_100k_refunds_killed_three_times_and_resumed_are_each_acted_on_once(
    refunds: Refunds, tmp_path: Path
) -> None:
    journal = tmp_path / "journal.sqlite3"
    env = {
        **os.environ,
        "HTTPTASK_JOURNAL": str(journal),
        "HTTPTASK_SECRET_CHARGEBEE_API_KEY": "test_crash_key",
    }
    invoices = [{"id": f"inv_{n}", "amount": 100} for n in range(ITEMS)]
    inputs = tmp_path / "inputs.json"
    inputs.write_text(json.dumps({"invoices": invoices, "api_url": f"{refunds.url}/api/v2"}))

    _kill_at(_run(env, str(EXAMPLE), "--input", f"@{inputs}"), refunds, ITEMS // 5)
    with sqlite3.connect(journal) as connection:
        [(run_id,)] = connection.execute("SELECT run_id FROM runs").fetchall()
    for share in (2, 3, None):
        with sqlite3.connect(journal) as connection:
            done = {row[0] for row in connection.execute("SELECT item FROM steps WHERE state = 'succeeded'")}
        sent_before = len(refunds.received)
        process = _run(env, "--resume", run_id)
        if share is not None:
            _kill_at(process, refunds, ITEMS * share // 5)
        else:
            out, err = process.communicate(timeout=900)
            assert process.returncode == 0, (err[-2000:], out[-3000:])
        # What the journal held as succeeded is never sent again.
        assert not {int(invoice[4:]) for invoice in refunds.received[sent_before:]} & done

    result = json.loads(out)
    assert (result["status"], result["outputs"]["refunded"]) == ("succeeded", ITEMS)
    assert refunds.acted == {invoice["id"]: 1 for invoice in invoices}
    # The same key on every send of an invoice, before and after each kill, and no two invoices share one.
    assert all(len(keys) == 1 and None not in keys for keys in refunds.keys.values())
    assert len(refunds.seen_keys) == ITEMS
    with sqlite3.connect(journal) as connection:
        states = connection.execute(
            "SELECT state, count(*) FROM steps WHERE run_id = ? AND item >= 0 GROUP BY state", (run_id,)
        ).fetchall()
    assert states == [("succeeded", ITEMS)]
