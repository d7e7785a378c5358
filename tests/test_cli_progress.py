"""`httptask run` as a user sees it: on a terminal (a real pseudo-terminal) a live bar per forEach task with
its items done, failed, in flight and the rate; piped, or with --json on a terminal, nothing but the report.
`runs show` on a terminal adds a timeline per task from the journal; piped, it prints what it always did."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from httptask.cli.progress import Board
from httptask.engines.protocol import StepResult, TaskResult
from servers import served

HTTPTASK = str(Path(sys.executable).with_name("httptask"))
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")


@pytest.fixture(scope="module")
def slow_api() -> Iterator[str]:
    """Answers `/items/N` after 60 ms, `/items/bad…` with 404; `/flaky/N` with 503 the first time."""
    seen: set[str] = set()

    async def item(request: web.Request) -> web.Response:
        await asyncio.sleep(0.06)
        name = request.match_info["name"]
        return web.json_response({"item": name}, status=404 if name.startswith("bad") else 200)

    async def flaky(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        first = name not in seen
        seen.add(name)
        return web.json_response({"item": name}, status=503 if first else 200)

    app = web.Application()
    app.router.add_get("/items/{name}", item)
    app.router.add_get("/flaky/{name}", flaky)
    with served(app) as server:
        yield server.url


ITEMS = [f"i{n}" for n in range(28)]
ITEMS[5:5] = ["bad1"]
ITEMS[20:20] = ["bad2"]


@pytest.fixture
def workflow(tmp_path: Path, slow_api: str) -> Path:
    file = tmp_path / "fan.yaml"
    file.write_text(
        "name: fan\n"
        "inputs: {names: {type: array}, tag: {type: string}}\n"
        "tasks:\n"
        "  - id: first\n"
        f"    httpRequest: {{url: '{slow_api}/items/start'}}\n"
        "  - id: fetch\n"
        "    needs: [first]\n"
        "    forEach: '{{ input.names }}'\n"
        f"    httpRequest: {{url: '{slow_api}/items/{{{{ item }}}}'}}\n"
        "    retry: {maxAttempts: 1}\n"
        "  - id: again\n"
        "    forEach: '{{ input.names[:3] }}'\n"
        f"    httpRequest: {{url: '{slow_api}/flaky/{{{{ item }}}}-{{{{ input.tag }}}}'}}\n"
        "    retry: {maxAttempts: 2, intervalSeconds: 0.01}\n",
        encoding="utf-8",
    )
    return file


def environment(journal: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR", "TERM")}
    env.update({"HTTPTASK_JOURNAL": str(journal), "TERM": "xterm-256color"})
    return env


def on_a_terminal(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run the command with stdout, stderr and stdin on a new pseudo-terminal of 140x40; its exit code and
    everything it wrote there."""
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 140, 0, 0))
    process = subprocess.Popen(args, stdin=terminal, stdout=terminal, stderr=terminal, env=env)
    os.close(terminal)
    chunks = []
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # the other end closed: the process is gone
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(controller)
    return process.wait(60), b"".join(chunks).decode("utf-8", errors="replace")


def test_a_terminal_shows_a_live_bar_per_for_each_task(workflow: Path, tmp_path: Path) -> None:
    inputs = json.dumps({"names": ITEMS, "tag": "bar"})
    args = [HTTPTASK, "run", str(workflow), "--input", inputs, "--concurrency", "3"]
    code, raw = on_a_terminal(args, environment(tmp_path / "journal.sqlite3"))
    assert code == 1, raw  # two items answer 404
    shown = ANSI.sub("", raw)
    frames = re.findall(
        r"fetch\s+\S+\s+(\d+)/30 done · (\d+) failed · (\d+) in flight(?: · ([\d.]+)/s)?", shown
    )
    assert len(frames) >= 2, shown  # redrawn as the run went (30 items, 3 at a time, 60 ms each)
    assert any(int(done) < 30 and int(in_flight) == 3 and rate for done, _, in_flight, rate in frames), frames
    assert ("30", "2", "0", "") in frames, frames  # the last frame: all done, two failed, none in flight
    # The report follows, as piped output has it.
    assert re.search(r"fetch\s+│\s+2 failed, 28 succeeded\s+│\s+200 ×28, 404 ×2", shown), shown  # noqa: RUF001


def test_piped_or_json_output_has_no_progress(workflow: Path, tmp_path: Path) -> None:
    inputs = json.dumps({"names": ITEMS[:4], "tag": "piped"})
    env = environment(tmp_path / "journal.sqlite3")
    args = [HTTPTASK, "run", str(workflow), "--input", inputs]
    piped = subprocess.run(args, capture_output=True, text=True, env=env, timeout=60, check=False)
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout.startswith("run ") and "in flight" not in piped.stdout + piped.stderr
    assert "\x1b" not in piped.stdout + piped.stderr
    # --json on a terminal: the JSON document and nothing else, not even control sequences.
    code, raw = on_a_terminal([HTTPTASK, "run", str(workflow), "--input", inputs, "--json"], env)
    assert code == 0, raw
    assert json.loads(raw.replace("\r\n", "\n"))["status"] == "succeeded"


def test_the_board_reads_the_counts_the_engine_keeps() -> None:
    board = Board()
    result = TaskResult("fetch", for_each=True, state="running", items=list(range(5)))
    board.on_task(result)
    for index, state in enumerate(["succeeded", "failed", "unknown"]):
        result.count(StepResult(index, state))
        board.on_task(result)
    result.in_flight = 2
    [row] = board.rows()
    assert {k: row[k] for k in ("total", "done", "failed", "unknown", "in_flight")} == {
        "total": 5, "done": 3, "failed": 1, "unknown": 1, "in_flight": 2
    }
    assert row["rate"] > 0
    result.state = "failed"
    [row] = board.rows()
    assert (row["done"], row["rate"]) == (3, None)


def test_runs_show_on_a_terminal_adds_a_timeline_per_task(workflow: Path, tmp_path: Path) -> None:
    env = environment(tmp_path / "journal.sqlite3")
    inputs = json.dumps({"names": ITEMS, "tag": "shown"})
    done = subprocess.run([HTTPTASK, "run", str(workflow), "--input", inputs, "--json"], capture_output=True,
                          text=True, env=env, timeout=60, check=False)
    run_id = json.loads(done.stdout)["run_id"]
    piped = subprocess.run([HTTPTASK, "runs", "show", run_id], capture_output=True, text=True, env=env,
                           timeout=60, check=False)
    assert piped.returncode == 0 and "timeline" not in piped.stdout and "p99" not in piped.stdout
    code, raw = on_a_terminal([HTTPTASK, "runs", "show", run_id], env)
    assert code == 0, raw
    shown = ANSI.sub("", raw)
    assert "timeline (from the run's start; item latency is from sent to outcome, retries included)" in shown
    row = (
        r"│\s+{task}\s+│\s+{items}\s+│\s+\+([\d.]+) s\s+│\s+\+([\d.]+) s\s+│\s+(\d+) ms\s+│\s+(\d+) ms\s+│"
        r"\s+{retries}\s+│"
    )
    fetch = re.search(row.format(task="fetch", items="30/30", retries=0), shown)
    assert fetch is not None, shown
    first_sent, first_ended, p50, p99 = (float(group) for group in fetch.groups())
    # Every item takes at least the server's 60 ms; the first ends after the first goes out.
    assert 60 <= p50 <= p99 and first_sent < first_ended
    again = re.search(row.format(task="again", items="3/3", retries=3), shown)  # each item: a 503, then 200
    assert again is not None, shown
