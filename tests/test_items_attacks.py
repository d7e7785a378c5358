"""Hostile changes to an items file (`--input-items`) while a run reads it: nothing that was not checked
before the run is ever sent, against a refund server on 127.0.0.1 with real processes and files."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

from crashpoints import killed_run
from faults import fault_server
from test_input_items_runs import ITEMS, _paths, _resume_deciding, _setup

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


def test_two_resumes_at_once_of_a_killed_items_run_send_each_refund_once(tmp_path: Path) -> None:
    workflow, refunds, env = _setup(tmp_path)
    with fault_server() as server:
        api = json.dumps({"api_url": server.url})
        run_id = killed_run(env, "before-sent-commit", 8, "run", str(workflow), "--input", api,
                            "--input-items", f"refunds={refunds}", "--concurrency", "1")  # fmt: skip
        command = [sys.executable, "-m", "httptask", "run", "--resume", run_id, "--json"]
        both = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for _ in range(2)]  # fmt: skip
        ended = [(resume.wait(timeout=120), *resume.communicate()) for resume in both]
        # One resumes while the other finds the run busy (2), or one after the other: the request whose
        # answer the kill lost waits for a decision (1).
        assert sorted(code for code, _, _ in ended) in ([1, 1], [1, 2]), ended
        assert all("Traceback" not in err for _, _, err in ended), ended
        assert set(server.acted().values()) == {1}
        final = _resume_deciding(env, run_id, server.acted())
        assert final.returncode == 0, final.stdout + final.stderr
        acted = server.acted()
    assert set(acted) == _paths(ITEMS) and set(acted.values()) == {1}, acted
