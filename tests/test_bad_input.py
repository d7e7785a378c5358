"""The bad-input corpus (`bad_input_cases`): each case ends in its exit code or status, says what is wrong in
one line that names where, and stays within 2 s and 300 MB.

Command-line cases run in children forked from one process that has already imported httptask
(`corpus_runner`), so a case is timed and measured by its own work, not by Python's start. Editor cases go to
one real editor on 127.0.0.1 whose workers are given 300 MB of address space; nothing leaves the machine.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bad_input_cases import CLI_CASES, EDITOR_CASES, CliCase, EditorCase
from browser_setup import bundled_catalog, running_editor
from httptask.netguard import static_resolve
from httptask.server import ServerConfig

SECONDS = 2.0
MEGABYTES = 300
RUNNER = Path(__file__).with_name("corpus_runner.py")


def test_the_corpus_is_large_enough() -> None:
    names = [case.name for case in CLI_CASES] + [case.name for case in EDITOR_CASES]
    assert len(names) == len(set(names)), "every case has its own name"
    assert len(names) >= 120


@pytest.fixture(scope="module")
def cli_results() -> dict[str, dict[str, Any]]:
    jobs = json.dumps([case.as_job() for case in CLI_CASES])
    done = subprocess.run(
        [sys.executable, str(RUNNER)], input=jobs, capture_output=True, text=True, timeout=900, check=False
    )
    assert done.returncode == 0, done.stderr
    results = [json.loads(line) for line in done.stdout.splitlines()]
    return {result["name"]: result for result in results}


@pytest.mark.parametrize("case", CLI_CASES, ids=[case.name for case in CLI_CASES])
def test_a_command_line_case(cli_results: dict[str, dict[str, Any]], case: CliCase) -> None:
    result = cli_results[case.name]
    output = result["stderr"] + result["stdout"]
    assert "Traceback" not in output, output
    assert result["code"] == case.code, output
    assert case.line in output.splitlines(), output
    assert case.location in case.line
    # Processor time: what the case costs, whatever else the machine is doing meanwhile.
    assert result["cpu_seconds"] < SECONDS
    assert result["peak_mb"] < MEGABYTES


@pytest.fixture(scope="module")
def editor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    catalog = bundled_catalog(tmp_path_factory.mktemp("cache"))
    # No name resolves: a URL the guard lets through ends at a refused lookup, never on the network.
    config = ServerConfig(resolve=static_resolve({}), work_memory_bytes=MEGABYTES * 2**20)
    with running_editor(config, catalog) as url:
        # Wait for the workers, so the first case is timed by its own work.
        httpx.post(f"{url}/api/validate", json={"workflow": "name: w\ntasks: []\n"}, timeout=60)
        yield url


def _rss_mb() -> float:
    status = Path("/proc/self/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


@pytest.mark.parametrize("case", EDITOR_CASES, ids=[case.name for case in EDITOR_CASES])
def test_an_editor_case(editor: str, case: EditorCase) -> None:
    before = _rss_mb()
    started = time.monotonic()
    response = httpx.request(case.method, editor + case.path, json=case.body, timeout=30)
    elapsed = time.monotonic() - started
    data = response.json()
    assert response.status_code == case.status, data
    messages = {data["error"]: data["error"]} if "error" in data else {}
    for issue in data.get("issues", []) + data.get("errors", []):
        messages[issue["message"]] = issue["path"]
    assert case.error in messages, data
    assert case.location in messages[case.error] or case.location in case.error, data
    assert elapsed < SECONDS
    # The work ran in a worker held to MEGABYTES of address space; the editor itself must not grow by that.
    assert _rss_mb() - before < MEGABYTES
