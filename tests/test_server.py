"""The editor's HTTP API against a real server on loopback, with the sandbox as the only upstream."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

import httptask
from browser_setup import SECRET, SECRET_NAME, running_editor
from httptask.catalog import Catalog
from httptask.checks import check_workflow_text
from httptask.reference import reference
from httptask.sandbox import SandboxThread
from httptask.server import ServerConfig
from httptask.skeleton import placeholders, skeleton, skeleton_yaml, task_definition
from httptask.validation import operation_schema
from servers import RecordingServer

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(httptask.__file__).resolve().parent
OP = "chargebee.record_refund"
GOOD_VALUES = {
    "invoice-id": "inv_42",
    "body.memo": "Refunded by check.",
    "body.transaction.amount": 1000,
    "body.transaction.payment_method": "check",
    "body.transaction.date": 1517467200,
}
TOKEN = "t0ken-for-the-editor-tests-only"


@pytest.fixture
def client(editor: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=editor, timeout=30) as http:
        yield http


@pytest.fixture
def received(sandbox: SandboxThread) -> Iterator[list[dict[str, Any]]]:
    """What the sandbox receives during the test."""
    httpx.delete(f"{sandbox.url}/_sandbox/requests")
    log: list[dict[str, Any]] = []
    yield log
    log.extend(httpx.get(f"{sandbox.url}/_sandbox/requests").json())


def good_task(catalog: Catalog, **values: Any) -> dict[str, Any]:
    task = task_definition(catalog.operation(OP), {**GOOD_VALUES, **values})
    task["retry"] = {"maxAttempts": 1}
    return task


# -- catalog -------------------------------------------------------------------------------------------------


def test_search_ranks_the_refund_operations_first(client: httpx.Client) -> None:
    response = client.get("/api/operations", params={"q": "record refund"})
    assert response.status_code == 200
    data = response.json()
    assert data["query"] == "record refund"
    first = data["operations"][0]
    assert first["id"] == OP
    assert first["method"] == "POST"
    assert first["path"] == "/invoices/{invoice-id}/record_refund"
    assert first["api_name"] == "Chargebee"


def test_an_empty_query_lists_every_operation(client: httpx.Client, catalog: Catalog) -> None:
    data = client.get("/api/operations", params={"limit": 1000}).json()
    assert [op["id"] for op in data["operations"]] == catalog.ids()


def test_operation_gives_reference_schema_and_skeleton(client: httpx.Client, catalog: Catalog) -> None:
    op = catalog.operation(OP)
    data = client.get(f"/api/operations/{OP}").json()
    assert data["reference"] == json.loads(json.dumps(reference(op)))
    assert data["request_schema"] == json.loads(json.dumps(operation_schema(op)))
    assert data["skeleton"] == skeleton(op)
    assert data["skeleton_yaml"] == skeleton_yaml(op)
    assert "<h2>Request body fields</h2>" in data["reference_html"]
    assert "<code>memo</code>" in data["reference_html"]


def test_an_unknown_operation_is_a_400_with_suggestions(client: httpx.Client) -> None:
    response = client.get("/api/operations/chargebee.record_refnd")
    assert response.status_code == 400
    assert response.json() == {
        "error": "No operation 'chargebee.record_refnd' in the catalog. "
        "Did you mean chargebee.record_refund, "
        "chargebee.refund_invoice, chargebee.retrieve_invoice? "
        "Run 'httptask catalog search WORDS' to find one.",
        "issues": [],
        "request": None,
    }


# -- tasks ---------------------------------------------------------------------------------------------------


def test_tasks_fill_the_skeleton_and_name_the_credentials(client: httpx.Client, catalog: Catalog) -> None:
    response = client.post(
        "/api/tasks", json={"operation": OP, "values": GOOD_VALUES, "credentials": "MY_SITE_KEY"}
    )
    assert response.status_code == 200
    data = response.json()
    expected = {**task_definition(catalog.operation(OP), GOOD_VALUES), "credentials": "MY_SITE_KEY"}
    assert data["task"] == expected
    assert yaml.safe_load(data["yaml"]) == expected
    modeline = f"# yaml-language-server: $schema={PACKAGE / 'schemas' / 'task.schema.json'}\n"
    assert data["yaml"].startswith(modeline + "id: record_refund\noperation: chargebee.record_refund\n")


def test_a_field_the_operation_lacks_is_a_400(client: httpx.Client) -> None:
    response = client.post("/api/tasks", json={"operation": OP, "values": {"body.nope": 1}})
    assert response.status_code == 400
    assert response.json()["error"].startswith(
        "chargebee.record_refund has no field 'body.nope'; use a server "
        "variable, parameter or dotted body field name: "
    )


def test_a_malformed_api_request_lists_its_issues(client: httpx.Client) -> None:
    response = client.post("/api/tasks", json={"values": []})
    assert response.status_code == 422
    data = response.json()
    assert data["error"] == "The API request is not valid: 2 problem(s); see issues."
    assert [issue["path"] for issue in data["issues"]] == ["$.operation", "$.values"]


# -- test request --------------------------------------------------------------------------------------------


def test_test_request_reaches_the_sandbox(
    client: httpx.Client, catalog: Catalog, sandbox: SandboxThread, received: list[dict[str, Any]]
) -> None:
    response = client.post("/api/test-request", json={"task": good_task(catalog)})
    assert response.status_code == 200
    data = response.json()
    assert data["sandbox"] is True
    assert data["attempts"] == 1
    assert data["request"]["url"] == f"{sandbox.url}/chargebee/api/v1/invoices/inv_42/record_refund"
    assert data["request"]["headers"]["authorization"] == "***"
    assert data["request"]["body"] == (
        "memo=Refunded+by+check.&transaction[amount]=1000&transaction[payment_method]"
        "=check&transaction[date]=1517467200"
    )
    assert data["response"]["status"] == 200
    assert data["response"]["body"]["transaction"]["type"] == "refund"
    assert 0 < data["timings"]["send_ms"] <= data["timings"]["total_ms"]
    received.clear()
    received.extend(httpx.get(f"{sandbox.url}/_sandbox/requests").json())
    assert [r["path"] for r in received] == ["/chargebee/api/v1/invoices/inv_42/record_refund"]


def test_every_skeleton_with_its_sample_input_is_answered_by_the_sandbox(
    catalog: Catalog, sandbox: SandboxThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the page does on a first Test request: the operation's skeleton, its sample input, no typing,
    and no secret set (the sandbox editor stands in for missing ones)."""
    for name in [name for name in os.environ if name.startswith("HTTPTASK_SECRET")]:
        monkeypatch.delenv(name)
    answers = {}
    with running_editor(ServerConfig(sandbox_url=sandbox.url), catalog, own_secrets=True) as url:
        for operation_id in catalog.ids():
            data = httpx.get(f"{url}/api/operations/{operation_id}").json()
            inputs = {p.input for p in placeholders(catalog.operation(operation_id))}
            assert set(data["sample_input"]) == inputs
            sent = httpx.post(
                f"{url}/api/test-request", json={"task": data["skeleton"], "input": data["sample_input"]}
            )
            status = sent.json().get("response", {}).get("status", 0)
            answers[operation_id] = (sent.status_code, status // 100)
    assert answers == {operation_id: (200, 2) for operation_id in catalog.ids()}


def test_sample_input_prefers_the_specs_examples(client: httpx.Client) -> None:
    assert client.get(f"/api/operations/{OP}").json()["sample_input"] == {
        "invoice_id": "example",
        "memo": "Refunded by check after the customer cancelled the order.",
    }
    zoho = client.get("/api/operations/zoho-billing.refund_credit_note").json()["sample_input"]
    assert zoho == {
        "creditnote_id": "90300000081375",
        "x_com_zoho_subscriptions_organizationid": "10234695",
        "amount": 20,
    }


def test_a_task_as_yaml_text_with_input(client: httpx.Client, catalog: Catalog) -> None:
    task = good_task(catalog)
    task["request"]["body"]["memo"] = "{{ input.note }}"
    text = yaml.safe_dump(task, sort_keys=False)
    response = client.post("/api/test-request", json={"task": text, "input": {"note": "from input"}})
    assert response.status_code == 200
    assert response.json()["request"]["body"].startswith("memo=from+input&")


def test_an_invalid_request_is_a_422_with_paths_and_nothing_is_sent(
    client: httpx.Client, catalog: Catalog, received: list[dict[str, Any]]
) -> None:
    task = good_task(catalog)
    del task["request"]["body"]["memo"]
    task["request"]["body"]["transaction"]["amount"] = -5
    response = client.post("/api/test-request", json={"task": task})
    assert response.status_code == 422
    data = response.json()
    assert data["error"] == (
        "The request for chargebee.record_refund was not sent: 2 problems.\n"
        "  $.body.memo: is required but missing\n"
        "  $.body.transaction.amount: must be at least 0, not -5"
    )
    assert [(i["path"], i["message"]) for i in data["issues"]] == [
        ("$.body.memo", "is required but missing"),
        ("$.body.transaction.amount", "must be at least 0, not -5"),
    ]
    assert received == []


def test_a_missing_input_points_at_the_task_field(client: httpx.Client, catalog: Catalog) -> None:
    task = task_definition(catalog.operation(OP), {k: v for k, v in GOOD_VALUES.items() if k != "body.memo"})
    response = client.post("/api/test-request", json={"task": task})
    assert response.status_code == 400
    data = response.json()
    assert data["error"] == "task record_refund, request.body.memo: 'input' has no attribute 'memo'"
    assert data["issues"] == [
        {
            "path": "$.request.body.memo",
            "message": "'input' has no attribute 'memo'",
            "expected": None,
            "actual": None,
            "line": None,
        }
    ]


def test_bad_yaml_and_bad_tasks_are_400s(client: httpx.Client) -> None:
    response = client.post("/api/test-request", json={"task": "id: [oops"})
    assert response.status_code == 400
    assert response.json()["error"] == (
        "the task:1:10: invalid YAML: expected ',' or ']', but got '<stream end>'. "
        "Fix the syntax and try again."
    )
    response = client.post(
        "/api/test-request", json={"task": "id: t1\noperation: chargebee.record_refund\nretry: 3\n"}
    )
    assert response.status_code == 400
    data = response.json()
    assert data["error"].startswith("the task: task t1 is not valid:\n  line 3, $.retry: ")
    assert [(i["path"], i["line"]) for i in data["issues"]] == [("$.retry", 3)]


def test_a_missing_secret_says_where_it_was_looked_for(client: httpx.Client, catalog: Catalog) -> None:
    task = {**good_task(catalog), "credentials": "NOT_SET_ANYWHERE"}
    response = client.post("/api/test-request", json={"task": task})
    assert response.status_code == 400
    assert response.json()["error"] == (
        "No secret named 'NOT_SET_ANYWHERE': looked in the environment variable "
        "HTTPTASK_SECRET_NOT_SET_ANYWHERE (no secrets file is set). Secrets come only from "
        "HTTPTASK_SECRET_<NAME> variables and the secrets file. Set HTTPTASK_SECRET_NOT_SET_ANYWHERE, "
        "or name a secrets file holding 'NOT_SET_ANYWHERE' in HTTPTASK_SECRETS_FILE."
    )


def test_an_unreachable_upstream_is_a_502(catalog: Catalog, unused_port: int) -> None:
    config = ServerConfig(allow_hosts=(f"127.0.0.1:{unused_port}",))
    task = {
        "id": "down",
        "httpRequest": {"url": f"http://127.0.0.1:{unused_port}/x"},
        "retry": {"maxAttempts": 1},
    }
    with running_editor(config, catalog) as url:
        response = httpx.post(f"{url}/api/test-request", json={"task": task})
    assert response.status_code == 502
    data = response.json()
    assert data["error"].startswith(f"Could not connect to http://127.0.0.1:{unused_port}: ")
    assert data["request"]["url"] == f"http://127.0.0.1:{unused_port}/x"


@pytest.fixture
def unused_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# -- validate ------------------------------------------------------------------------------------------------

WORKFLOW = """\
name: refund
inputs:
  invoice: {type: string}
tasks:
  - id: refund
    operation: chargebee.record_refnd
    request:
      path: {invoice-id: "{{ input.invoice }}"}
"""


def test_validate_returns_the_checks_issues_with_lines(client: httpx.Client, catalog: Catalog) -> None:
    response = client.post("/api/validate", json={"workflow": WORKFLOW})
    assert response.status_code == 200
    data = response.json()
    assert data["valid"] is False
    expected = [
        {"expected": None, "actual": None, **i.to_dict()} for i in check_workflow_text(WORKFLOW, catalog)
    ]
    assert data["errors"] == expected
    assert data["errors"][0]["line"] == 6
    assert "chargebee.record_refnd" in data["errors"][0]["message"]


def test_validate_reports_yaml_syntax_with_its_line(client: httpx.Client) -> None:
    data = client.post("/api/validate", json={"workflow": "name: x\ntasks: [\n"}).json()
    assert data["valid"] is False
    assert data["errors"][0]["line"] == 3


# -- safety --------------------------------------------------------------------------------------------------


def test_bodies_over_the_cap_are_refused_with_413(client: httpx.Client) -> None:
    big = {"workflow": "x" * (1024 * 1024)}
    response = client.post("/api/validate", json=big)
    assert response.status_code == 413
    assert (
        response.json()["error"] == "The request body is larger than the cap of 1,048,576 bytes; send less."
    )

    def chunks() -> Iterator[bytes]:
        for _ in range(300):
            yield b"x" * 4096

    streamed = client.post("/api/validate", content=chunks(), headers={"content-type": "application/json"})
    assert streamed.status_code == 413


def test_other_host_names_and_foreign_origins_are_refused(client: httpx.Client) -> None:
    response = client.get("/api/operations", headers={"host": "rebound.example:8765"})
    assert response.status_code == 400
    assert response.json()["error"] == (
        "Refused the Host header 'rebound.example:8765': without --token the editor "
        "only answers at 127.0.0.1 or localhost."
    )
    response = client.post("/api/tasks", json={"operation": OP}, headers={"origin": "https://evil.example"})
    assert response.status_code == 403
    assert response.json()["error"] == (
        "Refused a request from the page at 'https://evil.example': the editor only answers its own page."
    )
    same = client.post(
        "/api/tasks", json={"operation": OP}, headers={"origin": str(client.base_url).rstrip("/")}
    )
    assert same.status_code == 200


def test_the_page_carries_a_strict_content_security_policy(client: httpx.Client) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-security-policy"].startswith("default-src 'self'")
    assert response.headers["referrer-policy"] == "no-referrer"
    assert '<script src="/static/editor.js" defer></script>' in response.text
    assert "http://" not in response.text and "https://" not in response.text
    assert client.get("/static/editor.css").status_code == 200


def test_with_a_token_every_api_call_needs_it(catalog: Catalog) -> None:
    with running_editor(ServerConfig(token=TOKEN), catalog) as url:
        assert httpx.get(f"{url}/").status_code == 200
        missing = httpx.get(f"{url}/api/operations")
        wrong = httpx.get(f"{url}/api/operations", headers={"authorization": "Bearer nope"})
        right = httpx.get(f"{url}/api/operations", headers={"authorization": f"Bearer {TOKEN}"})
        document = httpx.get(f"{url}/openapi.json").json()
    for refused in (missing, wrong):
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == "Bearer"
        assert refused.json()["error"] == (
            "This editor needs its token: send 'Authorization: Bearer TOKEN', "
            "or open the page as /?token=TOKEN."
        )
    assert right.status_code == 200
    assert document["security"] == [{"bearer": []}]


def test_the_openapi_document_declares_every_route_and_its_errors(client: httpx.Client) -> None:
    document = client.get("/openapi.json").json()
    paths = document["paths"]
    assert set(paths) == {
        "/api/operations",
        "/api/operations/{operation_id}",
        "/api/tasks",
        "/api/test-request",
        "/api/validate",
        "/api/examples",
        "/api/examples/{name}",
        "/api/workflows/insert-task",
        "/api/runs",
        "/api/runs/{run_id}",
        "/api/runs/{run_id}/events",
    }
    assert set(paths["/api/test-request"]["post"]["responses"]) == {"200", "400", "401", "413", "422", "502"}
    ok = paths["/api/test-request"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": "#/components/schemas/SendTaskOut"}
    assert "security" not in document


def test_no_secret_reaches_any_output_or_log(
    client: httpx.Client, catalog: Catalog, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    leaky = good_task(catalog)
    leaky["request"]["body"]["memo"] = "{{ secret('" + SECRET_NAME + "') }}"
    invalid = good_task(catalog)
    invalid["request"]["body"]["transaction"]["amount"] = "{{ secret('" + SECRET_NAME + "') }}"
    invalid["request"]["path"]["invoice-id"] = "{{ secret('" + SECRET_NAME + "') }}"
    transformed = good_task(catalog)
    transformed["request"]["body"]["memo"] = "{{ secret('" + SECRET_NAME + "') * 30 }}"
    outputs = [
        client.get("/api/operations", params={"q": SECRET_NAME}),
        client.get(f"/api/operations/{OP}"),
        client.post("/api/tasks", json={"operation": OP, "values": GOOD_VALUES, "credentials": SECRET_NAME}),
        client.post("/api/test-request", json={"task": leaky}),
        client.post("/api/test-request", json={"task": invalid}),
        client.post("/api/test-request", json={"task": yaml.safe_dump(leaky)}),
        client.post("/api/validate", json={"workflow": yaml.safe_dump({"name": "w", "tasks": [leaky]})}),
        client.post("/api/test-request", json={"task": transformed}),
    ]
    assert [r.status_code for r in outputs] == [200, 200, 200, 200, 422, 200, 200, 400]
    assert outputs[3].json()["request"]["body"].startswith("memo=***&")
    assert outputs[4].json()["issues"][0]["path"] == "$.body.transaction.amount"
    assert outputs[7].json()["error"].startswith(
        "task record_refund, request.body.memo: a secret can only be inserted, not transformed"
    )
    for response in outputs:
        assert SECRET not in response.text
        assert SECRET not in json.dumps(dict(response.headers))
    assert SECRET not in caplog.text
    assert caplog.records, "the server's log records are captured, so the check above means something"


# -- the serve command ---------------------------------------------------------------------------------------


def _serve(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "httptask", "serve", *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
    )


def test_serve_refuses_a_public_address_without_a_token() -> None:
    result = _serve("--host", "0.0.0.0", "--port", "0")
    assert result.returncode == 2
    assert result.stderr == (
        "error: Refusing to listen on 0.0.0.0 without --token: anyone who reaches it could "
        "send requests with your credentials. Pass --token T (or set HTTPTASK_TOKEN), or "
        "listen on 127.0.0.1.\n"
    )
    assert result.stdout == ""


def test_serve_refuses_a_short_token() -> None:
    result = _serve("--host", "0.0.0.0", "--token", "abc")
    assert result.returncode == 2
    assert result.stderr.startswith(
        "error: The token is too short to guess-proof the editor; use at least 16 "
    )


def test_serve_on_a_taken_port_is_one_sentence_and_no_banner() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = _serve("--port", str(port))
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        f"error: The editor cannot listen on 127.0.0.1:{port} (Address already in use); "
        "give another --port (0 picks a free one) or --host.\n"
    )


@contextlib.contextmanager
def _serving(tmp_path: Path, *args: str) -> Iterator[tuple[str, list[str]]]:
    """`httptask serve ARGS` in its own process, with no secret in its environment and an empty catalog
    folder and cache: its banner line, and (once it has ended) its stderr lines in the list given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HTTPTASK_SECRET")}
    env.update({"HTTPTASK_CACHE_DIR": str(tmp_path / "cache"), "HTTPTASK_SPECS_PATH": str(tmp_path)})
    process = subprocess.Popen(
        [sys.executable, "-m", "httptask", "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
    )
    stderr: list[str] = []
    try:
        assert process.stdout is not None
        yield process.stdout.readline(), stderr
    finally:
        process.terminate()
        stderr += process.communicate(timeout=10)[1].splitlines()


def _first_search(url: str, headers: dict[str, str] | None = None) -> httpx.Response:
    """The editor's answer to a search for 'refund', once it listens."""
    for _ in range(200):
        with contextlib.suppress(httpx.ConnectError):
            return httpx.get(f"{url}/api/operations", params={"q": "refund"}, headers=headers)
        time.sleep(0.05)
    raise AssertionError(f"nothing answered at {url}")


def test_serve_on_port_0_prints_the_port_it_got(tmp_path: Path) -> None:
    with _serving(tmp_path, "--port", "0") as (banner, _):
        port = int(banner.removeprefix("httptask editor on http://127.0.0.1:").split("/")[0])
        assert port > 0
        assert _first_search(f"http://127.0.0.1:{port}").is_success


def test_the_servers_own_secret_store_only_reads_httptask_variables(
    catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOME_CLOUD_KEY", SECRET)
    monkeypatch.setenv(f"HTTPTASK_SECRET_{SECRET_NAME}", "from-the-env")
    monkeypatch.delenv("HTTPTASK_SECRETS_FILE", raising=False)
    task = good_task(catalog)
    task["request"]["body"]["memo"] = "{{ secret('SOME_CLOUD_KEY') }}"
    with running_editor(ServerConfig(), catalog, own_secrets=True) as url:
        refused = httpx.post(f"{url}/api/test-request", json={"task": task})
        task["request"]["body"]["memo"] = "{{ secret('" + SECRET_NAME + "') }}"
        dry = httpx.post(
            f"{url}/api/test-request", json={"task": {**task, "server": {"url": "http://192.0.2.1"}}}
        )
    assert refused.status_code == 400
    assert refused.json()["error"].startswith(
        "task record_refund, request.body.memo: No secret named 'SOME_CLOUD_KEY'"
    )
    assert SECRET not in refused.text
    # The HTTPTASK_SECRET_ variable is found, and the request that would carry it is refused and shown masked.
    assert dry.status_code == 400
    assert dry.json()["request"]["body"].startswith("memo=***&")


def test_serve_runs_the_editor_with_its_sandbox(unused_port: int, tmp_path: Path) -> None:
    with _serving(tmp_path, "--port", str(unused_port), "--sandbox", "--token", TOKEN) as (banner, stderr):
        assert banner.startswith(f"httptask editor on http://127.0.0.1:{unused_port}/?token=<your token> ")
        assert "(test requests go to the sandbox at http://127.0.0.1:" in banner
        headers = {"authorization": f"Bearer {TOKEN}"}
        url = f"http://127.0.0.1:{unused_port}"
        found = _first_search(url, headers)
        assert found.json()["operations"][0]["id"] == OP
        assert httpx.get(f"{url}/api/operations").status_code == 401
        # No secret is set: the sandbox gets a stand-in credential, so the first Test request goes through.
        data = httpx.get(f"{url}/api/operations/{OP}", headers=headers).json()
        sent = httpx.post(
            f"{url}/api/test-request",
            json={"task": data["skeleton"], "input": data["sample_input"]},
            headers=headers,
        )
        assert (sent.status_code, sent.json()["response"]["status"]) == (200, 200)
        assert sent.json()["request"]["headers"]["authorization"] == "***"
    assert TOKEN not in banner + "\n".join(stderr)


# -- response checks -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def checking_editor(catalog: Catalog, _recording: RecordingServer) -> Iterator[str]:
    """An editor whose test requests, with their credentials, may reach the session's recording server, which
    answers as told."""
    host = _recording.url.removeprefix("http://")
    config = ServerConfig(allow_hosts=(host,), secret_origins=(_recording.url,))
    with running_editor(config, catalog) as url:
        yield url


def answered_by(server: RecordingServer, catalog: Catalog, **extra: Any) -> dict[str, Any]:
    return {**good_task(catalog), "server": {"url": server.url}, **extra}


def test_a_response_that_breaks_the_spec_is_shown_with_its_issues(
    checking_editor: str, catalog: Catalog, server: RecordingServer
) -> None:
    # The canary comes back in the answer: the issue that quotes it is masked like the body.
    body = {"invoice": {"id": "inv_42", "status": SECRET}, "transaction": {"id": 7}}
    server.answer(200, json.dumps(body).encode(), {"Content-Type": "application/json"})
    response = httpx.post(f"{checking_editor}/api/test-request", json={"task": answered_by(server, catalog)})
    assert response.status_code == 200, response.text
    data = response.json()
    assert SECRET not in response.text
    assert data["response"]["status"] == 200
    assert data["strict_responses"] is False
    issues = {issue["path"]: issue["message"] for issue in data["response_issues"]}
    assert issues["$.body.transaction.id"] == "must be of type string, not integer 7"
    assert issues["$.body.invoice.status"].endswith(", not '***'")
    assert issues["$.body.invoice.customer_id"] == "is required but missing"


def test_a_strict_task_is_marked_so_the_editor_shows_a_failure(
    checking_editor: str, catalog: Catalog, server: RecordingServer
) -> None:
    server.answer(200, b"<html>busy</html>", {"Content-Type": "text/html"})
    task = answered_by(server, catalog, strictResponses=True)
    data = httpx.post(f"{checking_editor}/api/test-request", json={"task": task}).json()
    assert data["strict_responses"] is True
    assert data["response_issues"] == [
        {
            "path": "$.headers.content-type",
            "message": "is text/html, which the 200 response of chargebee.record_refund does not document "
            "(it documents application/json)",
            "expected": "application/json",
            "actual": "text/html",
            "line": None,
        }
    ]


def test_a_hostile_answer_is_still_shown_and_its_check_says_why_it_stopped(
    checking_editor: str, catalog: Catalog, server: RecordingServer
) -> None:
    deep = b"[" * 200_000 + b"]" * 200_000
    server.answer(200, deep, {"Content-Type": "application/json"})
    response = httpx.post(f"{checking_editor}/api/test-request", json={"task": answered_by(server, catalog)})
    assert response.status_code == 200
    [issue] = response.json()["response_issues"]
    assert issue == {"path": "$.body", "message": "is nested too deeply to check", "expected": None,
                     "actual": None, "line": None}


def _large_answer(size: int) -> tuple[bytes, int]:
    """A JSON answer of about `size` bytes, the canary starting five characters before the editor's cut and
    again after it, that breaks chargebee.record_refund's spec at its very end; and where the canary
    starts."""
    from httptask.shown import SHOWN_CHARS

    head = b'{"invoice": {"id": "inv_42", "customer_id": "cus_1", "status": "paid", "note": "'
    pad = SHOWN_CHARS - 5 - len(head)
    tail = b'"}, "history": ["' + b"y" * size + b'"], "transaction": {"id": 7}}'
    secret = SECRET.encode()
    return head + b"x" * pad + secret + b"z" * 100 + secret + tail, len(head) + pad


@pytest.fixture
def loop_work(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[int]]:
    """The length of every text redacted and every JSON text parsed in this process, where the editor runs
    (its workers are other processes)."""
    from httptask import jsontext
    from httptask.redaction import Redactor

    seen: dict[str, list[int]] = {"redacted": [], "parsed": []}
    spans, loads = Redactor._spans, jsontext.loads

    def recording_spans(self: Redactor, text: str) -> list[tuple[int, int]]:
        seen["redacted"].append(len(text))
        return spans(self, text)

    def recording_loads(text: str | bytes) -> Any:
        seen["parsed"].append(len(text))
        return loads(text)

    monkeypatch.setattr(Redactor, "_spans", recording_spans)
    monkeypatch.setattr(jsontext, "loads", recording_loads)
    return seen


def test_a_large_answer_is_read_in_a_worker_and_its_start_shown(
    checking_editor: str, catalog: Catalog, server: RecordingServer, loop_work: dict[str, list[int]]
) -> None:
    from httptask.shown import SHOWN_CHARS

    body, cut_secret = _large_answer(8 * 1024 * 1024)
    server.answer(200, body, {"Content-Type": "application/json"})
    response = httpx.post(
        f"{checking_editor}/api/test-request", json={"task": answered_by(server, catalog)}, timeout=120
    )
    assert response.status_code == 200, response.text[:500]
    data = response.json()
    shown = data["response"]
    assert (shown["body_bytes"], shown["body_truncated"]) == (len(body), True)
    # The canary that straddles the cut is masked whole, not cut into a piece the redactor cannot recognise.
    assert shown["body"] == body[:cut_secret].decode() + "***"
    assert SECRET[:5] not in response.text
    # The whole body was checked, in a worker: the editor's own process parsed none of it and redacted no
    # more than what it shows, quoted as JSON.
    issues = {issue["path"]: issue["message"] for issue in data["response_issues"]}
    assert issues["$.body.transaction.id"] == "must be of type string, not integer 7"
    assert max(loop_work["parsed"], default=0) < SHOWN_CHARS
    assert max(loop_work["redacted"]) < 2 * SHOWN_CHARS


def test_a_large_answer_whose_check_runs_over_is_still_shown_in_part(
    catalog: Catalog, server: RecordingServer
) -> None:
    host = server.url.removeprefix("http://")
    body, cut_secret = _large_answer(4 * 1024 * 1024)
    server.answer(200, body, {"Content-Type": "application/json"})
    config = ServerConfig(allow_hosts=(host,), secret_origins=(server.url,), answer_seconds=0.001)
    with running_editor(config, catalog) as url:
        task = answered_by(server, catalog)
        response = httpx.post(f"{url}/api/test-request", json={"task": task}, timeout=120)
    assert response.status_code == 200, response.text[:500]
    data = response.json()
    assert data["response"]["body"] == body[:cut_secret].decode() + "***"
    assert data["response"]["body_truncated"] is True
    assert SECRET[:5] not in response.text
    assert [issue["message"] for issue in data["response_issues"]] == [
        "could not be checked against the spec in the editor's time and memory"
    ]


def test_a_small_answer_is_shown_whole_and_parsed(
    checking_editor: str, catalog: Catalog, server: RecordingServer
) -> None:
    body = {"invoice": {"id": "inv_42", "customer_id": "cus_1", "status": "paid"}, "transaction": {"id": "t"}}
    server.answer(200, json.dumps(body).encode(), {"Content-Type": "application/json"})
    task = answered_by(server, catalog)
    data = httpx.post(f"{checking_editor}/api/test-request", json={"task": task}).json()
    assert data["response"]["body"] == body
    assert "body_truncated" not in data["response"]


def test_a_server_dripping_its_answer_is_given_up_on_with_an_unknown_outcome(
    catalog: Catalog, server: RecordingServer
) -> None:
    host = server.url.removeprefix("http://")
    server.answer(200, b'{"invoice": {}}' + b" " * 10_000, {"Content-Type": "application/json"})
    server.behaviours.append("drip")
    config = ServerConfig(allow_hosts=(host,), secret_origins=(server.url,), call_timeout_seconds=1)
    with running_editor(config, catalog) as url:
        task = answered_by(server, catalog)
        response = httpx.post(f"{url}/api/test-request", json={"task": task}, timeout=60)
    assert response.status_code == 502
    assert response.json()["error"] == (
        f"The request of task record_refund ({OP}) got no complete answer within 1 s and was abandoned. "
        "The server may have received it and acted: the outcome is unknown. Check on the server (its "
        "dashboard or its API) whether it did before you send it again."
    )
    assert len(server.requests) == 1
