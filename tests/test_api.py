"""The public API, `import httptask`: exactly `__all__`, cheap to import, typed as a user sees it (mypy
--strict against the installed wheel), each function against real servers on loopback, and the README's
examples run with the output the README shows."""

from __future__ import annotations

import ast
import asyncio
import dataclasses
import json
import os
import re
import shlex
import subprocess
import sys
import types
from pathlib import Path

import pytest

import httptask
from servers import RecordingServer

ROOT = Path(__file__).resolve().parents[1]
INIT = ROOT / "plugin" / "httptask" / "__init__.py"
MYPY = Path(sys.executable).with_name("mypy")
ZOHO_READ = {
    "id": "read",
    "operation": "zoho-billing.get_credit_note_refund",
    "credentials": "zoho",
    "retry": {"maxAttempts": 3, "intervalSeconds": 0},
    "request": {
        "path": {"refund_id": "{{ input.refund }}"},
        "headers": {"X-com-zoho-subscriptions-organizationid": "10234695"},
    },
}
SECRETS = {"zoho": "zoho-tok-8d2f-canary"}


# -- the names --------------------------------------------------------------------------------------------


def test_the_public_names_are_exactly_all() -> None:
    for name in httptask.__all__:
        getattr(httptask, name)
    submodules = {name for name, value in vars(httptask).items() if isinstance(value, types.ModuleType)}
    public = {name for name in vars(httptask) if not name.startswith("_")} - submodules
    assert public == {name for name in httptask.__all__ if not name.startswith("_")}
    assert dir(httptask) == sorted(httptask.__all__)
    # A public name that is also a module's would be replaced by the module when the module is imported.
    modules = {path.stem for path in INIT.parent.iterdir()}
    assert not modules & set(httptask.__all__)
    with pytest.raises(AttributeError, match="module 'httptask' has no attribute 'Journal'"):
        httptask.Journal  # type: ignore[attr-defined]  # noqa: B018


def test_what_mypy_sees_is_what_runs() -> None:
    tree = ast.parse(INIT.read_text(encoding="utf-8"))
    eager: set[str] = set()
    typed: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            eager |= {alias.asname or alias.name for alias in node.names}
        if isinstance(node, ast.If):  # `if _typing.TYPE_CHECKING:`
            imports = [part for part in node.body if isinstance(part, ast.ImportFrom)]
            typed |= {alias.name for part in imports for alias in part.names}
    assert typed == set(httptask._LAZY)
    assert eager | typed | {"__version__"} == set(httptask.__all__)


def test_importing_httptask_loads_none_of_the_libraries_it_sends_with() -> None:
    code = "import sys, httptask; print(sorted({m.split('.')[0] for m in sys.modules}))"
    loaded = json.loads(subprocess.check_output([sys.executable, "-c", code], text=True).replace("'", '"'))
    assert not {"httpx", "aiohttp", "jsonschema", "jinja2", "yaml", "fastapi"} & set(loaded)


USER_FILE = '''
import asyncio
from typing import Any

import httptask


def refund(task_file: str, inputs: dict[str, Any]) -> int:
    catalog: httptask.Catalog = httptask.load_catalog()
    hits: list[httptask.SearchHit] = catalog.search("refund")
    entry: httptask.Entry = hits[0].entry
    operation: httptask.Operation = catalog.operation(entry.id)
    task: httptask.Task = httptask.load_task(task_file)
    task = httptask.parse_task({"id": "t", "operation": operation.id})
    prepared: httptask.Prepared = httptask.prepare(task, inputs, secrets={"x": "y"})
    request: httptask.HttpRequest = prepared.request
    try:
        answer: httptask.Answer = httptask.send_sync(prepared, strict_responses=True)
    except httptask.ResponseInvalid as exc:
        issues: list[httptask.Issue] = exc.issues
        return len(issues)
    except httptask.SendError as exc:
        outcome: httptask.Outcome = exc.outcome
        return 0 if outcome is httptask.Outcome.NOT_SENT else 1
    response: httptask.HttpResponse = answer.response
    checked: list[httptask.Issue] = httptask.check_response(operation, response)
    return response.status + len(checked) + len(request.url)


async def pooled(prepared: httptask.Prepared) -> httptask.Answer:
    async with httptask.Sender() as sender:
        return await httptask.send(prepared, sender=sender)


def run(path: str) -> str:
    with httptask.local_sandbox() as url:
        assert url.startswith("http://")
    result: httptask.RunResult = httptask.run_workflow(path, {"n": 1}, sandbox=True, journal="j.sqlite3")
    return result.status + httptask.__version__


errors: list[type[httptask.HttptaskError]] = [
    httptask.UsageError, httptask.SourceError, httptask.CredentialsError, httptask.RunBusy,
    httptask.OverLimit, httptask.RunTakenOver, httptask.SpecError, httptask.UnknownOperation,
    httptask.TaskError, httptask.TemplateError, httptask.WorkflowInvalid, httptask.InputsInvalid,
    httptask.RequestInvalid,
    httptask.SendError, httptask.NotSent, httptask.DestinationRefused, httptask.KeyReused,
    httptask.OutcomeUnknown, httptask.AnswerRefused, httptask.ResponseTooLarge, httptask.ResponseInvalid,
]
asyncio.run(pooled(httptask.prepare(httptask.load_task("t.yaml"))))
'''

MISUSE = '''
import httptask
from httptask import Journal

httptask.prepare("not a task")
status: str = httptask.send_sync(httptask.prepare(httptask.load_task("t.yaml"))).response.status
'''


def mypy_as_a_user(venv: Path, folder: Path, *files: Path) -> subprocess.CompletedProcess[str]:
    """mypy --strict on `files` in a folder of their own, finding httptask where the wheel installed it."""
    (folder / "mypy.ini").write_text("[mypy]\nstrict = True\n", encoding="utf-8")
    return subprocess.run(
        [MYPY, "--python-executable", venv / "bin" / "python", "--cache-dir", folder / ".cache", *files],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_a_user_of_the_installed_package_type_checks_under_mypy_strict(
    wheel_venv: Path, tmp_path: Path
) -> None:
    user = tmp_path / "user.py"
    user.write_text(USER_FILE, encoding="utf-8")
    examples = [tmp_path / f"readme_{i}.py" for i, _ in enumerate(readme_examples())]
    for path, (code, _, _) in zip(examples, readme_examples(), strict=True):
        path.write_text(code, encoding="utf-8")
    done = mypy_as_a_user(wheel_venv, tmp_path, user, *examples)
    assert done.returncode == 0, done.stdout + done.stderr
    misuse = tmp_path / "misuse.py"
    misuse.write_text(MISUSE, encoding="utf-8")
    done = mypy_as_a_user(wheel_venv, tmp_path, misuse)
    found = re.findall(r"misuse\.py:(\d+): error: (.*?)  \[", done.stdout)
    assert [line for line, _ in found] == ["3", "5", "6"], done.stdout
    assert found[0][1] == 'Module "httptask" has no attribute "Journal"'
    assert found[1][1].startswith('Argument 1 to "prepare" has incompatible type "str"; expected "Task"')
    assert found[2][1] == (
        'Incompatible types in assignment (expression has type "int", variable has type "str")'
    )


# -- the functions ----------------------------------------------------------------------------------------


def test_the_catalog_is_looked_up_and_searched() -> None:
    catalog = httptask.load_catalog()
    assert "stripe.report_payment_record_refund" in [hit.entry.id for hit in catalog.search("refnd")[:7]]
    assert catalog.operation("stripe.report_payment_record_refund").method == "POST"
    with pytest.raises(httptask.UnknownOperation, match=r"Did you mean chargebee\.record_refund"):
        catalog.operation("chargebee.record_refnd")


def test_a_task_from_a_mapping_from_yaml_text_and_from_a_file(tmp_path: Path) -> None:
    from_mapping = httptask.parse_task(ZOHO_READ)
    from_text = httptask.parse_task(json.dumps(ZOHO_READ))
    (tmp_path / "read.yaml").write_text(json.dumps(ZOHO_READ), encoding="utf-8")
    assert dataclasses.replace(from_text, file=None) == from_mapping
    assert httptask.load_task(tmp_path / "read.yaml").operation == from_mapping.operation
    with pytest.raises(httptask.TaskError) as caught:
        httptask.parse_task("id: t\noperation: zoho-billing.get_credit_note_refund\nretry: 3\n")
    assert [(issue.path, issue.line) for issue in caught.value.issues] == [("$.retry", 3)]


def test_prepare_sends_nothing_and_send_sends_once(server: RecordingServer) -> None:
    task = httptask.parse_task({**ZOHO_READ, "server": {"url": server.url}})
    prepared = httptask.prepare(task, {"refund": "rf_1"}, secrets=SECRETS)
    assert server.requests == []
    assert prepared.request.header("authorization") == "Zoho-oauthtoken zoho-tok-8d2f-canary"
    assert prepared.redacted_request()["headers"]["authorization"] == "***"
    server.answer(200, b'{"code": 0, "refund": {"refund_id": "rf_1"}}', {"Content-Type": "application/json"})
    answer = httptask.send_sync(prepared)
    assert (answer.response.status, answer.attempts, answer.response_issues) == (200, 1, ())
    assert [r.path for r in server.requests] == ["/creditnotes/refunds/rf_1"]


def test_an_invalid_request_is_refused_with_every_issue(server: RecordingServer) -> None:
    task = httptask.parse_task({**ZOHO_READ, "server": {"url": server.url}})
    with pytest.raises(httptask.RequestInvalid) as caught:
        httptask.prepare(task, {"refund": ""}, secrets=SECRETS)
    assert [issue.path for issue in caught.value.issues] == ["$.path.refund_id"]
    with pytest.raises(httptask.UsageError, match="No secret named 'zoho'"):
        httptask.prepare(task, {"refund": "rf_1"}, secrets={})
    assert server.requests == []


def test_a_response_that_breaks_the_spec_is_a_warning_or_under_strict_an_answer_refused(
    server: RecordingServer,
) -> None:
    task = httptask.parse_task({**ZOHO_READ, "server": {"url": server.url}})
    prepared = httptask.prepare(task, {"refund": "rf_1"}, secrets=SECRETS)
    server.default = (200, {"Content-Type": "application/json"}, b'{"code": "zero"}')
    answer = httptask.send_sync(prepared)
    assert [(i.path, i.message) for i in answer.response_issues] == [
        ("$.body.code", "must be of type integer, not string 'zero'")
    ]
    with pytest.raises(httptask.ResponseInvalid) as caught:
        httptask.send_sync(prepared, strict_responses=True)
    refused = caught.value
    # Answered: the server acted on it, and it is not sent again, although the task allows three attempts.
    assert isinstance(refused, httptask.AnswerRefused)
    assert (refused.outcome, refused.status, refused.retryable, refused.may_have_acted) == (
        httptask.Outcome.ANSWERED, 200, False, True
    )
    assert [i.path for i in refused.issues] == ["$.body.code"]
    assert len(server.requests) == 2


def test_send_shares_a_pool_and_send_sync_refuses_a_running_loop(server: RecordingServer) -> None:
    task = httptask.parse_task({**ZOHO_READ, "server": {"url": server.url}})

    async def main() -> list[int]:
        prepared = [httptask.prepare(task, {"refund": f"rf_{i}"}, secrets=SECRETS) for i in range(3)]
        refusal = r"inside a running event loop; use 'await httptask\.send"
        with pytest.raises(httptask.UsageError, match=refusal):
            httptask.send_sync(prepared[0])
        async with httptask.Sender() as sender:
            answers = await asyncio.gather(*(httptask.send(p, sender=sender) for p in prepared))
        return [a.response.status for a in answers]

    assert asyncio.run(main()) == [200, 200, 200]
    assert sorted(r.path for r in server.requests) == [f"/creditnotes/refunds/rf_{i}" for i in range(3)]


def test_a_raw_request_has_no_spec_to_check(server: RecordingServer) -> None:
    task = httptask.parse_task({"id": "raw", "httpRequest": {"url": f"{server.url}/x"}})
    answer = httptask.send_sync(httptask.prepare(task))
    assert (answer.response.status, answer.response_issues) == (200, ())


def test_not_sent_is_raised_when_nothing_reached_the_server() -> None:
    from servers import closed_port

    task = httptask.parse_task({"id": "raw", "httpRequest": {"url": f"http://127.0.0.1:{closed_port()}/x"},
                                "retry": {"maxAttempts": 1}})
    with pytest.raises(httptask.NotSent) as caught:
        httptask.send_sync(httptask.prepare(task))
    assert caught.value.outcome is httptask.Outcome.NOT_SENT


def test_a_workflow_runs_on_the_local_engine_against_the_sandbox(tmp_path: Path) -> None:
    journal = tmp_path / "journal.sqlite3"
    inputs = json.loads((ROOT / "examples" / "inputs" / "refund-invoices.json").read_text(encoding="utf-8"))
    result = httptask.run_workflow(
        ROOT / "examples" / "refund-invoices.yaml", inputs, sandbox=True, journal=journal,
        secrets={"CHARGEBEE_API_KEY": "cb_test_key"},
    )
    assert (result.status, result.outputs) == ("succeeded", {"refunded": 4, "statuses": [200, 200, 200, 200]})
    assert journal.stat().st_size > 0
    with pytest.raises(httptask.InputsInvalid):
        httptask.run_workflow(ROOT / "examples" / "refund-invoices.yaml", {"invoices": []}, journal=journal)


def test_the_local_sandbox_serves_while_the_block_runs() -> None:
    import httpx

    with httptask.local_sandbox() as url:
        health = httpx.get(f"{url}/_sandbox/health", trust_env=False).json()
    assert health["status"] == "ok"
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/_sandbox/health", trust_env=False)


# -- the README -------------------------------------------------------------------------------------------


def readme_examples() -> list[tuple[str, str, str]]:
    """The section "Use it from your own engine": each Python example, the command the README runs it with,
    and the output the README shows."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Use it from your own engine", 1)[1].split("\n## ", 1)[0]
    found = re.findall(r"```python\n(.*?)```\s*```text\n\$ (.*?)\n(.*?)```", section, re.DOTALL)
    assert len(found) == 2
    return found


@pytest.mark.parametrize("index", [0, 1])
def test_the_readme_examples_print_what_the_readme_shows(tmp_path: Path, index: int) -> None:
    code, command, output = readme_examples()[index]
    *assignments, _python, file = shlex.split(command)
    (tmp_path / file).write_text(code, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HTTPTASK_SECRET")}
    env.update(assignment.split("=", 1) for assignment in assignments)  # type: ignore[arg-type]
    done = subprocess.run(
        [sys.executable, tmp_path / file], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert (done.stdout, done.stderr) == (output, "")
