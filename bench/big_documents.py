"""Using one operation of a large imported document: import, `catalog search`, `catalog show`, `test-request`
to a loopback server, and the editor from its start to its first answers, each a fresh process.

`.venv/bin/python bench/big_documents.py [--operations 4000 --schemas 12000] [--rounds 3] [--before PATH]
[--json]`: the synthetic document (bench/synthetic_openapi.py; 4,000 operations and 12,000 schemas make about
50 MB of YAML) and ../shared/vendor-specs/chargebee_api_v1_spec.json when present. With --before, another
checkout's code (its `plugin` folder as PATH, on PYTHONPATH) runs the same commands in each round, each code
with a catalog of its own; the codes alternate command by command and swap places each round. Every figure is
the median of the rounds with its range: wall time, and CPU time (user + system of the process; the editor's
with its worker processes'). The load average is recorded before each round. Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from import_specs import run
from loopback import Loopback
from stats import spread, text

ROOT = Path(__file__).resolve().parents[1]
GENERATOR = Path(__file__).with_name("synthetic_openapi.py")
VENDOR = ROOT.parent / "shared" / "vendor-specs" / "chargebee_api_v1_spec.json"
# The task file and its input for the shown operation, made by this checkout's code once.
_MAKE_TASK = """
import json, sys
from httptask.catalog import Catalog
from httptask.skeleton import sample_input, skeleton
op = Catalog.default().operation(sys.argv[1])
task = skeleton(op)
task["server"] = {"url": sys.argv[2]}
task.pop("credentials", None)
values = {k: "inv_1" if v in (None, "") else v for k, v in sample_input(op).items()}  # a path's sample is ''
print(json.dumps({"task": task, "input": values}))
"""


@dataclass
class Code:
    name: str
    pythonpath: str
    env: dict[str, str] = field(default_factory=dict)
    figures: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)

    def record(self, document: str, step: str, seconds: float, cpu: float) -> None:
        figures = self.figures.setdefault(f"{document}: {step}", {"seconds": [], "cpu_seconds": []})
        figures["seconds"].append(seconds)
        figures["cpu_seconds"].append(cpu)


@dataclass
class Document:
    label: str
    path: Path
    operation: str  # the operation shown and sent, in the catalog as API `big`
    task: dict[str, Any] = field(default_factory=dict)


def httptask(code: Code, *args: str, timeout: float = 600) -> tuple[float, float, str]:
    outcome = run([sys.executable, "-m", "httptask", *args], code.env, timeout)
    if outcome.killed or outcome.exit_code != 0:
        failed = f"{code.name}: httptask {' '.join(args)} failed ({outcome.exit_code})"
        raise SystemExit(f"{failed}:\n{outcome.output}")
    return outcome.seconds, outcome.cpu_seconds, outcome.output


def editor(code: Code, doc: Document, loopback: str) -> tuple[float, float | str, float]:
    """Seconds from starting `httptask serve` to its answer for one operation, then to a Test request's
    answer (or the editor's error); and the editor's CPU time (with its workers') until then."""
    port = loopback.rsplit(":", 1)[1]
    started = time.perf_counter()
    command = [sys.executable, "-m", "httptask", "serve", "--port", "0", "--allow-host", f"127.0.0.1:{port}"]
    process = subprocess.Popen(
        command, env=code.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        base = "http://" + banner.split("http://", 1)[1].split("/", 1)[0]
        _request(f"{base}/api/operations/big.{doc.operation}")
        shown = time.perf_counter() - started
        failure = _request(f"{base}/api/test-request", {"task": doc.task["task"], "input": doc.task["input"]})
        sent: float | str = failure or time.perf_counter() - started
        cpu = _cpu_of_tree(process.pid)
    finally:
        process.terminate()
        process.wait()
    return shown, sent, cpu


def _request(url: str, body: dict[str, Any] | None = None) -> str | None:
    """None when the editor answered (a Test request: with the loopback server's 200); else its error."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=600) as response:
            answer = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return f"{exc.code}: {exc.read().decode('utf-8', 'replace')[:300]}"
    if body is not None and (answer.get("response") or {}).get("status") != 200:
        return f"not answered 200: {json.dumps(answer)[:300]}"
    return None


def _cpu_of_tree(pid: int) -> float:
    """CPU seconds of a process and its live children (the editor's worker processes)."""
    total = 0.0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        pending.extend(int(child) for child in children)
    return total


def one_round(codes: list[Code], docs: list[Document], work: Path, loopback: str) -> None:
    for doc in docs:
        for code in codes:
            seconds, cpu, _ = httptask(code, "specs", "import", "--replace", "--name", "big", str(doc.path))
            code.record(doc.label, "import", seconds, cpu)
        steps: list[tuple[str, list[str]]] = [
            ("catalog search", ["catalog", "search", "refund"]),
            ("catalog show", ["catalog", "show", f"big.{doc.operation}"]),
            ("test-request", ["test-request", str(work / "task.json"), "--input", f"@{work / 'input.json'}"]),
        ]
        (work / "task.json").write_text(json.dumps(doc.task["task"]), encoding="utf-8")
        (work / "input.json").write_text(json.dumps(doc.task["input"]), encoding="utf-8")
        for step, args in steps:
            for code in codes:
                seconds, cpu, _ = httptask(code, *args)
                code.record(doc.label, step, seconds, cpu)
        for code in codes:
            shown, sent, cpu = editor(code, doc, loopback)
            code.record(doc.label, "editor: operation", shown, cpu)
            if isinstance(sent, str):
                code.failures[f"{doc.label}: editor: test request"] = sent
            else:
                code.record(doc.label, "editor: test request", sent, cpu)


def make_task(code: Code, doc: Document, loopback: str) -> dict[str, Any]:
    httptask(code, "specs", "import", "--replace", "--name", "big", str(doc.path))
    done = subprocess.run(
        [sys.executable, "-c", _MAKE_TASK, f"big.{doc.operation}", loopback],
        env=code.env, capture_output=True, text=True, check=True,
    )
    task: dict[str, Any] = json.loads(done.stdout)
    return task


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--operations", type=int, default=4000)
    parser.add_argument("--schemas", type=int, default=12000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--before", help="PYTHONPATH of another checkout, run beside this one")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="httptask-bench-big-"))
    codes = [Code("now", str(ROOT / "plugin"))]
    if args.before:
        codes.append(Code("before", args.before))
    for code in codes:
        home = work / code.name
        (home / "specs").mkdir(parents=True)
        code.env = {
            **os.environ, "PYTHONPATH": code.pythonpath, "HTTPTASK_CACHE_DIR": str(home / "cache"),
            "HTTPTASK_SPECS_PATH": str(home / "specs"),
        }
    synthetic = work / "synthetic.yaml"
    subprocess.run(
        [sys.executable, str(GENERATOR), str(synthetic), "--operations", str(args.operations),
         "--schemas", str(args.schemas)],
        check=True, stdout=subprocess.DEVNULL,
    )
    middle = args.operations // 2
    docs = [Document(f"synthetic {synthetic.stat().st_size / 1e6:.0f} MB", synthetic,
                     f"post_resource{middle // 4:04d}_{middle + 1}")]
    if VENDOR.exists():
        docs.append(Document("chargebee v1 1.9 MB", VENDOR, "record_refund_for_an_invoice"))
    loads: list[float] = []
    try:
        with Loopback() as loopback:
            for doc in docs:
                doc.task = make_task(codes[0], doc, loopback.url)
            for round_number in range(args.rounds):
                loads.append(os.getloadavg()[0])
                one_round(codes if round_number % 2 == 0 else codes[::-1], docs, work, loopback.url)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    figures = {
        "load_average": spread(loads, 1),
        "codes": {
            code.name: {
                what: {kind: spread(values) for kind, values in both.items()}
                for what, both in code.figures.items()
            }
            for code in codes
        },
        "failures": {code.name: code.failures for code in codes},
    }
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    print(f"load average before each round: {text(figures['load_average'], '.1f')}")
    print(f"{'':50}" + "".join(f"{code.name + ' wall s':>26}{code.name + ' CPU s':>26}" for code in codes))
    for what in codes[0].figures:
        cells = "".join(_cells(figures["codes"][c.name].get(what)) for c in codes)
        print(f"{what:50}{cells}")
    for code in codes:
        for what, failure in code.failures.items():
            print(f"{code.name}, {what}: failed (last time): {failure}")


def _cells(figure: dict[str, Any] | None) -> str:
    if figure is None:
        return f"{'failed':>26}{'':>26}"
    return f"{text(figure['seconds']):>26}{text(figure['cpu_seconds']):>26}"


if __name__ == "__main__":
    main()
