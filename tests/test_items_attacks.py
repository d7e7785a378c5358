"""Hostile changes to an items file (`--input-items`) while a run reads it: nothing that was not checked
before the run is ever sent, against a refund server on 127.0.0.1 with real processes and files."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

from faults import fault_server
from test_input_items_runs import _setup

PAD = "x" * 2000  # long lines: the run reads the file a buffer at a time, past what it read before the change


def _items(names: list[str]) -> str:
    return "".join(json.dumps({"invoice": name, "pad": PAD}) + "\n" for name in names)


def test_an_items_file_rewritten_during_the_fan_out_sends_nothing_unchecked(tmp_path: Path) -> None:
    workflow, refunds, env = _setup(tmp_path)
    checked = [f"inv_{n:03d}" for n in range(40)]
    refunds.write_text(_items(checked))
    with fault_server() as server:
        server.gate = threading.Event()
        api = json.dumps({"api_url": server.url})
        run = subprocess.Popen(
            [sys.executable, "-m", "httptask", "run", str(workflow), "--input", api,
             "--input-items", f"refunds={refunds}", "--concurrency", "1"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 120
        while not server.arrivals() and time.monotonic() < deadline and run.poll() is None:
            time.sleep(0.05)
        assert server.arrivals(), run.communicate()
        # Rewritten in place: other invoices from item 20 on (one that breaks minLength), and more items.
        refunds.write_text(_items([*checked[:20], "", *(f"evil_{n:03d}" for n in range(39))]))
        server.gate.set()
        out, err = run.communicate(timeout=120)
        acted = server.acted()
    assert run.returncode != 0, out + err
    assert set(acted.values()) == {1}
    assert all("/inv_" in path for path in acted), sorted(acted)
    assert "changed" in err and str(refunds.resolve()) in err, err
    assert "Traceback" not in err
