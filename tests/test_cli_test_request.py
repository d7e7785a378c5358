"""`httptask test-request` and `httptask task snippet` as a user runs them (subprocess of
.venv/bin/httptask): exit codes, output, nothing sent when invalid, no traceback on bad input, and the secret
in no output at all."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from httptask.server import ServerConfig
from servers import RecordingServer

HTTPTASK = str(Path(sys.executable).with_name("httptask"))
SECRET = "tok_ZEBRA_7f3a_never_print_me"
INPUT = '{"payment": "p1", "amount": 5}'


@pytest.fixture
def task_file(tmp_path: Path, server: RecordingServer) -> Path:
    path = tmp_path / "refund.yaml"
    path.write_text(
        "id: refund\n"
        "operation: zoho-billing.refund_payment\n"
        "credentials: zoho_token\n"
        f"server: {{url: '{server.url}'}}\n"
        "retry: {maxAttempts: 1}\n"
        "request:\n"
        "  path: {payment_id: '{{ input.payment }}'}\n"
        "  headers: {X-com-zoho-subscriptions-organizationid: '10234695'}\n"
        "  body: {amount: '{{ input.amount }}', description: '{{ input.note | default(\"dup\") }}'}\n",
        encoding="utf-8",
    )
    return path


OUTPUTS: list[str] = []


def run(*args: str, secret: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HTTPTASK_SECRET")}
    if secret:
        env["HTTPTASK_SECRET_ZOHO_TOKEN"] = SECRET
    done = subprocess.run([HTTPTASK, *args], capture_output=True, text=True, env=env, timeout=60, check=False)
    OUTPUTS.append(done.stdout + done.stderr)
    assert "Traceback" not in done.stderr
    assert SECRET not in done.stdout + done.stderr
    return done


def test_a_valid_request_is_sent_and_reported(server: RecordingServer, task_file: Path) -> None:
    server.answer(201, b'{"refund": {"id": "r1", "amount": 5}}', {"Content-Type": "application/json"})
    done = run("test-request", str(task_file), "--input", INPUT)
    assert done.returncode == 0, done.stderr
    [received] = server.requests
    assert (received.method, received.path) == ("POST", "/payments/p1/refunds")
    assert received.header("authorization") == f"Zoho-oauthtoken {SECRET}"
    assert received.body == b'{"amount":5,"description":"dup"}'
    lines = done.stdout.splitlines()
    assert lines[0] == f"POST {server.url}/payments/p1/refunds"
    assert lines[1].startswith("201 X · ") and lines[1].endswith(" ms · 1 attempt")
    assert done.stdout.endswith('{\n  "refund": {\n    "id": "r1",\n    "amount": 5\n  }\n}\n')


def test_json_output_has_request_response_and_errors(server: RecordingServer, task_file: Path) -> None:
    server.answer(402, b'{"message": "no"}', {"Content-Type": "application/json"})
    done = run("test-request", str(task_file), "--input", INPUT, "--json")
    assert done.returncode == 1
    data = json.loads(done.stdout)
    assert data["request"]["headers"]["authorization"] == "***"
    assert data["response"]["status"] == 402 and data["response"]["body"] == {"message": "no"}
    assert data["errors"] == [] and data["sent"] is True


def test_a_server_echoing_the_secret_is_redacted(server: RecordingServer, task_file: Path) -> None:
    for extra in ([], ["--json"]):
        server.answer(
            400,
            json.dumps({"error": f"bad token Zoho-oauthtoken {SECRET}"}).encode(),
            {"Content-Type": "application/json", "X-Echo": SECRET},
        )
        done = run("test-request", str(task_file), "--input", INPUT, *extra)
        assert done.returncode == 1
        assert "bad token ***" in done.stdout


def test_a_server_cannot_drive_the_terminal(server: RecordingServer, task_file: Path) -> None:
    # Clear the screen, retitle the window, move up and erase the line before: the warning would vanish.
    codes = "\x1b[2J\x1b]0;owned\x07\x1b[1A\x1b[2K\r\x9b"
    server.answer(201, f"refunded {codes}".encode(), {"Content-Type": "text/plain", "X-Note": "a\x1bb"})
    done = run("test-request", str(task_file), "--input", INPUT)
    assert done.returncode == 0, done.stderr
    assert "refunded \\x1b[2J\\x1b]0;owned\\x07\\x1b[1A\\x1b[2K\\r\\x9b\n" in done.stdout
    assert "x-note: a\\x1bb\n" in done.stdout
    assert not any(character in done.stdout + done.stderr for character in "\x1b\x07\r\x9b")


ODD_REFUND = json.dumps({"code": "zero", "refund": {"refund_id": 5, "note": SECRET}}).encode()


def test_a_response_that_breaks_the_spec_is_a_warning_with_json_paths(
    server: RecordingServer, task_file: Path
) -> None:
    server.answer(201, ODD_REFUND, {"Content-Type": "application/json"})
    done = run("test-request", str(task_file), "--input", INPUT)
    assert done.returncode == 0, done.stderr
    assert '"refund_id": 5' in done.stdout
    assert done.stderr == (
        "warning: the response does not fit the spec of zoho-billing.refund_payment (2 problems):\n"
        "  $.body.code: must be of type integer, not string 'zero'\n"
        "  $.body.refund.refund_id: must be of type string, not integer 5\n"
    )
    server.answer(201, ODD_REFUND, {"Content-Type": "application/json"})
    data = json.loads(run("test-request", str(task_file), "--input", INPUT, "--json").stdout)
    assert [(i["path"], i["actual"]) for i in data["response_issues"]] == [
        ("$.body.code", "zero"),
        ("$.body.refund.refund_id", 5),
    ]
    assert (data["errors"], data["sent"]) == ([], True)


@pytest.mark.parametrize("how", ["--strict-responses", "strictResponses: true"])
def test_strict_responses_fail_an_answered_request_without_sending_it_again(
    server: RecordingServer, task_file: Path, how: str
) -> None:
    args = ["test-request", str(task_file), "--input", INPUT, "--json"]
    if how.startswith("--"):
        args.append(how)
    else:
        task_file.write_text(task_file.read_text(encoding="utf-8") + how + "\n", encoding="utf-8")
    # Three attempts allowed, and an idempotency key would make a retry safe: a check is still no retry.
    task_file.write_text(
        task_file.read_text(encoding="utf-8").replace("maxAttempts: 1", "maxAttempts: 3"), encoding="utf-8"
    )
    server.answer(201, ODD_REFUND, {"Content-Type": "application/json"})
    done = run(*args)
    assert done.returncode == 1
    assert len(server.requests) == 1
    data = json.loads(done.stdout)
    assert (data["sent"], data["response"]["status"], len(data["response_issues"])) == (True, 201, 2)
    [error] = data["errors"]
    assert error["message"].startswith(
        "task refund (zoho-billing.refund_payment) answered 201, but the response does not fit the spec "
        "(2 problems); strict responses make that a failure:\n  $.body.code: "
    )


def test_dry_run_prints_the_request_and_curl_and_sends_nothing(
    server: RecordingServer, task_file: Path
) -> None:
    done = run("test-request", str(task_file), "--input", INPUT, "--dry-run")
    assert done.returncode == 0
    assert server.requests == []
    assert done.stdout == (
        f"POST {server.url}/payments/p1/refunds\n"
        "x-com-zoho-subscriptions-organizationid: 10234695\ncontent-type: "
        "application/json\nauthorization: ***\n\n"
        '{"amount":5,"description":"dup"}\n\n'
        f"curl --request POST \\\n  --url '{server.url}/payments/p1/refunds' \\\n"
        "  --header 'x-com-zoho-subscriptions-organizationid: 10234695' \\\n"
        "  --header 'content-type: application/json' \\\n  --header 'authorization: ***' \\\n"
        '  --data-raw \'{"amount":5,"description":"dup"}\'\n'
    )


def test_an_invalid_request_exits_3_with_every_issue_and_sends_nothing(
    server: RecordingServer, task_file: Path
) -> None:
    done = run("test-request", str(task_file), "--input", '{"payment": "..", "amount": "five"}')
    assert done.returncode == 3
    assert server.requests == []
    assert done.stderr == (
        "error: The request for zoho-billing.refund_payment was not sent: 2 problems.\n"
        "  $.body.amount: must be of type number, not string 'five'\n"
        "  $.path.payment_id: must not be empty, '.' or '..', not '..': it would change the request's path\n"
    )
    as_json = json.loads(
        run(
            "test-request", str(task_file), "--input", '{"payment": "p", "amount": -1, "note": 3}', "--json"
        ).stdout
    )
    assert as_json["errors"] == [
        {
            "path": "$.body.description",
            "message": "must be of type string, not integer 3",
            "expected": "string",
            "actual": 3,
        }
    ]
    assert as_json["sent"] is False and server.requests == []


def test_a_network_failure_exits_1_with_a_clear_error(tmp_path: Path) -> None:
    from servers import closed_port

    path = tmp_path / "raw.yaml"
    path.write_text(
        f"id: ping\nhttpRequest: {{url: 'http://127.0.0.1:{closed_port()}/ping'}}\n"
        "retry: {maxAttempts: 1}\n",
        encoding="utf-8",
    )
    done = run("test-request", str(path))
    assert done.returncode == 1
    assert done.stderr.startswith("error: Could not connect to http://127.0.0.1:")


def test_a_server_dripping_its_answer_is_given_up_on_with_an_unknown_outcome(
    server: RecordingServer, task_file: Path
) -> None:
    # Each byte comes well within the read timeout, so only a bound on the whole stops the wait; the task
    # would retry three times, but a refund whose outcome is unknown is never sent again.
    task_file.write_text(task_file.read_text(encoding="utf-8").replace("maxAttempts: 1", "maxAttempts: 3"))
    body = b'{"refund": {"id": "r1", "amount": 5}}' + b" " * 10_000
    server.answer(201, body, {"Content-Type": "application/json"})
    server.behaviours.append("drip")
    done = run("test-request", str(task_file), "--input", INPUT, "--timeout", "1")
    assert done.returncode == 1
    assert done.stderr == (
        "error: The request of task refund (zoho-billing.refund_payment) got no complete answer within 1 s "
        "and was abandoned. The server may have received it and acted: the outcome is unknown. Check on the "
        "server (its dashboard or its API) whether it did before you send it again; a slow server gets more "
        "time with --timeout SECONDS.\n"
    )
    assert len(server.requests) == 1


def test_a_test_request_gets_as_long_as_the_editor_gives_one() -> None:
    done = run("test-request", "--help")
    assert "--timeout SECONDS" in done.stdout
    assert f"[default: {ServerConfig().call_timeout_seconds};" in " ".join(done.stdout.split())


@pytest.mark.parametrize("host", ["0x7f.1", "127.1", "2130706433", "127\u30020\u30020\u30021"])
def test_the_cli_refuses_a_loopback_address_written_in_another_form_and_sends_nothing(
    tmp_path: Path, server: RecordingServer, host: str
) -> None:
    # The CLI reaches loopback (sandboxes, local servers) but only at addresses every resolver reads alike:
    # `0x7f.1` was sent while `127.1` was refused with the URL parser's words.
    port = server.url.rsplit(":", 1)[1]
    path = tmp_path / "raw.yaml"
    path.write_text(f"id: ping\nhttpRequest: {{url: 'http://{host}:{port}/ping'}}\n", encoding="utf-8")
    done = run("test-request", str(path))
    assert (done.returncode, done.stderr) == (
        1,
        f"error: Refused to connect to {host} (127.0.0.1): it is a loopback address written in another form; "
        "write addresses the usual way, as 127.0.0.1, so that every resolver reads them alike.\n",
    )
    assert server.requests == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.yaml"], "error: No such file: 'missing.yaml'.\n"),
        (
            ["TASK", "--input", "{bad"],
            "error: --input is not valid JSON (Expecting property name enclosed in double "
            "quotes at column 2); pass a JSON object or @FILE.\n",
        ),
        (
            ["TASK", "--input", "[1]"],
            "error: --input must hold an object of input names to values, not list.\n",
        ),
        (["TASK", "--input", "@nope.json"], "error: No such file: 'nope.json'.\n"),
        (
            ["TASK", "--timeout", "nan"],
            "Usage: httptask test-request [OPTIONS] TASK_FILE\nTry 'httptask test-request --help' for help.\n"
            "\nError: Invalid value for '--timeout': nan is not a number of seconds; give one such as 60.\n",
        ),
    ],
)
def test_usage_errors_exit_2(task_file: Path, args: list[str], message: str) -> None:
    done = run("test-request", *[str(task_file) if a == "TASK" else a for a in args])
    assert (done.returncode, done.stderr) == (2, message)


def test_bad_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("id: x\noperation: stripe.x\n  request: [\n", encoding="utf-8")
    done = run("test-request", str(path))
    assert (done.returncode, done.stderr) == (
        2,
        f"error: {path}:3:10: invalid YAML: mapping values are not allowed here. Fix the syntax "
        "and try again.\n",
    )


def test_an_unknown_operation_suggests_close_ids(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("id: x\noperation: chargebee.refund_invoic\n", encoding="utf-8")
    done = run("test-request", str(path))
    assert done.returncode == 2
    assert done.stderr.startswith(
        "error: No operation 'chargebee.refund_invoic' in the catalog. Did you mean chargebee.refund_invoice"
    )


def test_a_missing_secret_names_the_environment_variable(task_file: Path, server: RecordingServer) -> None:
    done = run("test-request", str(task_file), "--input", INPUT, secret=False)
    assert done.returncode == 2
    assert done.stderr == (
        "error: No secret named 'zoho_token': looked in the environment variable HTTPTASK_SECRET_ZOHO_TOKEN "
        "(no secrets file is set). Secrets come only from HTTPTASK_SECRET_<NAME> variables and the secrets "
        "file. Set HTTPTASK_SECRET_ZOHO_TOKEN, or name a secrets file holding 'zoho_token' in "
        "HTTPTASK_SECRETS_FILE.\n"
    )
    assert server.requests == []


@pytest.mark.parametrize("lang", ["curl", "python", "node"])
def test_snippets_show_the_request_with_the_secret_masked(
    task_file: Path, server: RecordingServer, lang: str
) -> None:
    done = run("task", "snippet", str(task_file), "--lang", lang, "--input", INPUT)
    assert done.returncode == 0
    assert f"{server.url}/payments/p1/refunds" in done.stdout and "***" in done.stdout
    assert server.requests == []


def test_the_secret_appeared_in_no_output_at_all() -> None:
    # Every run above already asserted it; this guards against the list being empty by accident.
    assert len(OUTPUTS) >= 10
    assert not any(SECRET in text for text in OUTPUTS)


def test_a_geins_refund_without_an_amount_is_refused_before_sending(
    server: RecordingServer, tmp_path: Path
) -> None:
    secrets = tmp_path / "secrets.yaml"
    secrets.write_text("geins_key: k\ngeins_user: 'user:pass'\n", encoding="utf-8")
    task = tmp_path / "geins.yaml"
    task.write_text(
        "id: refund\n"
        "operation: geins.create_order_refund\n"
        "credentials: {apiKey: geins_key, basicAuth: geins_user}\n"
        f"server: {{url: '{server.url}'}}\n"
        "request:\n"
        "  path: {orderId: 42}\n"
        "  body: {Description: Returned item, RefundType: 0}\n",
        encoding="utf-8",
    )
    done = run("test-request", str(task), "--secrets-file", str(secrets))
    assert done.returncode == 3
    assert server.requests == []
    assert done.stderr == (
        "error: The request for geins.create_order_refund was not sent: 1 problem.\n"
        "  $.body.RefundAmount: is required but missing\n"
    )
