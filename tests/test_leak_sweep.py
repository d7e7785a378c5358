"""The leak sweep: a canary secret with JSON-special and non-ASCII characters goes through every kind of
credential and every template position, on success and on every kind of failure, and every byte of every
output channel is searched for every encoding of it.

Credentials: HTTP basic with the key as user (Chargebee), HTTP basic with a `user:password` pair and an API
key header together (Geins), bearer (Stripe), an API key header with a prefix (Zoho), an API key in the query
(an imported API). Template positions: path, query, header, JSON body and form body of operations; the URL's
path and query, a header and the body of raw requests. Failures: the request breaks its schema, a template
transforms the secret, the secret as an idempotency key and as an output, a header that cannot carry it, the
server answers 500 echoing it, refuses the connection, resets it, is too slow, answers too much, redirects
elsewhere. Channels: `CHANNELS` below, which must equal the channels the sweep filled, so a new one is added
here; every command of the CLI and every route of the editor is swept or exempted by name.
"""

from __future__ import annotations

import base64
import html
import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import click
import httpx
import pytest
import yaml

from httptask.journal import Journal
from servers import RecordingServer, closed_port, recording_server

HTTPTASK = str(Path(sys.executable).with_name("httptask"))
# Both quotes, so that Python's repr of the canary escapes one of them.
CANARY = 'Cn4r\'y"q\\u/é€ +&=%?#x'
HEADER_CANARY = 'Hd4r\'y"q\\u/ +&=%?#x'  # ASCII: HTTP headers carry nothing else
PAIR = f"geins-user:{CANARY}"
SECRETS = {"CANARY": CANARY, "HCANARY": HEADER_CANARY, "PAIR": PAIR}

CHANNELS = {
    "test-request success (text)",
    "test-request success (--json)",
    "test-request --dry-run (text)",
    "test-request --dry-run (--json)",
    "test-request failures (text)",
    "test-request failures (--json)",
    "test-request --sandbox",
    "task snippet",
    "validate",
    "export (stdout and stderr)",
    "export -o file",
    "plan (text)",
    "plan (--json)",
    "run (text)",
    "run (--json)",
    "run failures",
    "runs list",
    "runs show (text)",
    "runs show (--json)",
    "journal file",
    "journal WAL",
    "sandbox log",
    "sandbox process output",
    "editor responses",
    "editor process output",
}
# Commands that never read a secret, with the reason; every other command must be swept.
EXEMPT_COMMANDS = {
    "catalog list": "lists the catalog",
    "catalog search": "searches the catalog",
    "catalog show": "shows a reference page",
    "specs import": "copies an OpenAPI document",
    "specs check": "checks an OpenAPI document",
    "schema": "prints a JSON Schema",
    "task new": "prints a skeleton",
    "worker": "the Temporal engine's history is checked by tests/test_engine_temporal.py",
    "temporal dev": "starts the Temporal dev server",
}
SWEPT_COMMANDS = {
    "test-request", "task snippet", "validate", "export", "plan", "run", "runs list", "runs show", "sandbox",
    "serve",
}  # fmt: skip
KEYQ_SPEC = {
    "openapi": "3.1.0",
    "info": {"title": "Key in query", "version": "1"},
    "servers": [{"url": "https://keyq.example/v1"}],
    "components": {"securitySchemes": {"key": {"type": "apiKey", "in": "query", "name": "api_key"}}},
    "security": [{"key": []}],
    "paths": {
        "/refunds/{id}": {
            "post": {
                "operationId": "create_refund",
                "parameters": [
                    {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}},
                    {"name": "note", "in": "query", "schema": {"type": "string"}},
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {"memo": {"type": "string"}, "amount": {"type": "integer"}},
                            }
                        }
                    },
                },
                "responses": {"200": {"description": "ok"}},
            }
        }
    },
}


# Where the sandbox serves each API: its name, then the path of the API's real server.
SANDBOX_PATHS = {
    "chargebee": "/chargebee/api/v1",
    "geins": "/geins",
    "stripe": "/stripe",
    "zoho-billing": "/zoho-billing/billing/v1",
    "keyq": "/keyq/v1",
}


def encodings(secret: str) -> dict[str, bytes]:
    """Every form `secret` could take in our outputs: as written, JSON-escaped (once and twice, ASCII or
    not), percent-encoded (wholly, in part, upper or lower case, `+` for space), base64, Python's repr of it
    as a str and as bytes, HTML-escaped; and what a server may echo of it: upper-cased, its first and last
    eleven characters."""
    json_text = json.dumps(secret, ensure_ascii=False)[1:-1]
    json_ascii = json.dumps(secret)[1:-1]
    query = str(httpx.URL("http://h/", params={"k": secret})).split("k=", 1)[1]
    path = httpx.URL(f"http://h/{secret}").raw_path.decode("ascii")[1:]
    text_forms = {
        "raw": secret,
        "json": json_text,
        "json ascii": json_ascii,
        "json in json": json.dumps(json_text, ensure_ascii=False)[1:-1],
        "json ascii in json": json.dumps(json_ascii)[1:-1],
        "percent": quote(secret, safe=""),
        "percent lower": quote(secret, safe="").lower(),
        "percent plus": quote_plus(secret, safe=""),
        "httpx query": query,
        "httpx path": path,
        "repr": repr(secret),
        "repr of bytes": repr(secret.encode()),
        "ascii": ascii(secret),
        "html": html.escape(secret),
        "upper case": secret.upper(),
        "first eleven": secret[:11],
        "last eleven": secret[-11:],
    }
    for name, value in {"": secret, " as basic user": secret + ":"}.items():
        raw = value.encode()
        for alphabet, encoded in (
            ("base64", base64.b64encode(raw)),
            ("base64url", base64.urlsafe_b64encode(raw)),
        ):
            text_forms[alphabet + name] = encoded.decode()
            text_forms[alphabet + name + " unpadded"] = encoded.decode().rstrip("=")
    return {name: form.encode("utf-8") for name, form in text_forms.items()}


FORMS = {f"{name} {form}": data for name, value in SECRETS.items() for form, data in encodings(value).items()}


def leaks(data: bytes) -> list[str]:
    return [name for name, form in FORMS.items() if form in data]


# -- the sweep -----------------------------------------------------------------------------------------------


class Sweep:
    """Runs httptask as a user does and keeps every byte each channel gave."""

    def __init__(self, root: Path, server: RecordingServer) -> None:
        self.root = root
        self.server = server
        self.channels: dict[str, list[bytes]] = {}
        self.commands: set[str] = set()
        self.routes: set[tuple[str, str]] = set()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("HTTPTASK_")}
        self.env.update({f"HTTPTASK_SECRET_{name}": value for name, value in SECRETS.items()})
        self.env.update(
            HTTPTASK_JOURNAL=str(root / "journal.sqlite3"),
            HTTPTASK_CACHE_DIR=str(root / "cache"),
            HTTPTASK_SPECS_PATH=str(root / "specs"),
            PYTHONUNBUFFERED="1",
        )

    def keep(self, channel: str, *data: bytes) -> None:
        self.channels.setdefault(channel, []).extend(data)

    def run(self, channel: str, *args: str, code: int | None = 0) -> subprocess.CompletedProcess[bytes]:
        self.commands.add(" ".join(args[:2]) if args[0] in ("task", "runs") else args[0])
        done = subprocess.run([HTTPTASK, *args], capture_output=True, env=self.env, timeout=120, check=False)
        self.keep(channel, done.stdout, done.stderr)
        assert b"Traceback" not in done.stderr, done.stderr.decode()
        if code is not None:
            assert done.returncode == code, (args, done.returncode, done.stdout[-2000:], done.stderr[-2000:])
        return done

    def file(self, name: str, text: str) -> str:
        path = self.root / name
        path.write_text(text, encoding="utf-8")
        return str(path)

    def task(self, name: str, task: dict[str, Any]) -> str:
        return self.file(name, yaml.safe_dump({"id": name.split(".")[0].replace("-", "_"), **task}))


def operation_tasks(url: str) -> dict[str, dict[str, Any]]:
    """One task per kind of credential, each placing the secret in every template position it has."""
    secret, header = "{{ secret('CANARY') }}", "{{ secret('HCANARY') }}"
    return {
        "basic-key.yaml": {
            "operation": "chargebee.record_refund",
            "credentials": "CANARY",
            "server": {"url": url},
            "retry": {"maxAttempts": 1},
            "request": {
                "path": {"invoice-id": f"inv {secret}"},
                "body": {
                    "memo": f"memo {secret}",
                    "transaction": {"amount": 100, "payment_method": "check", "date": 1517467200},
                },
            },
        },
        "basic-pair.yaml": {
            "operation": "geins.create_order_refund",
            "credentials": {"apiKey": "HCANARY", "basicAuth": "PAIR"},
            "server": {"url": url},
            "retry": {"maxAttempts": 1},
            "request": {
                "path": {"orderId": 1042},
                "body": {"RefundAmount": 25, "Description": secret, "RefundType": 0, "Settled": False},
            },
        },
        "bearer.yaml": {
            "operation": "stripe.report_payment_record_refund",
            "credentials": "HCANARY",
            "server": {"url": url},
            "retry": {"maxAttempts": 1},
            "request": {
                "path": {"id": "prec_1"},
                "body": {
                    "outcome": "refunded",
                    "refunded": {"refunded_at": 1517467200},
                    "amount": {"value": 100, "currency": "usd"},
                    "processor_details": {"type": "custom", "custom": {"refund_reference": secret}},
                },
            },
        },
        "key-header.yaml": {
            "operation": "zoho-billing.refund_payment",
            "credentials": "HCANARY",
            "server": {"url": url},
            "retry": {"maxAttempts": 1},
            "request": {
                "path": {"payment_id": "9030"},
                "headers": {"X-com-zoho-subscriptions-organizationid": "10234695", "X-Note": header},
                "body": {"amount": 25, "description": secret},
            },
        },
        "key-query.yaml": {
            "operation": "keyq.create_refund",
            "credentials": "CANARY",
            "server": {"url": url},
            "retry": {"maxAttempts": 1},
            "request": {"path": {"id": secret}, "query": {"note": secret}, "body": {"memo": secret}},
        },
    }


def raw_task(url: str, **extra: Any) -> dict[str, Any]:
    secret = "{{ secret('CANARY') }}"
    return {
        "httpRequest": {
            "method": "POST",
            "url": f"{url}/raw/{secret}?k={secret}",
            "headers": {"X-Token": "Bearer {{ secret('HCANARY') }}"},
            "body": {"memo": secret, "amount": 5},
        },
        "retry": {"maxAttempts": 1},
        **extra,
    }


def echo(server: RecordingServer, status: int = 200) -> None:
    """Every answer echoes the canary, in a header and in the body: as it is, and changed as a server may
    change it (upper-cased, cut short, HTML-escaped, as a Python repr)."""
    changed = {"upper": CANARY.upper(), "cut": CANARY[:14], "html": html.escape(CANARY), "repr": repr(CANARY)}
    body = json.dumps({"echo": CANARY, "note": f"got {CANARY}", **changed}).encode()
    headers = {
        "X-Echo": HEADER_CANARY,
        "X-Echo-Upper": HEADER_CANARY.upper(),
        "X-Echo-Cut": HEADER_CANARY[3:],
    }
    server.default = (status, {"Content-Type": "application/json", **headers}, body)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sweep]:
    root = tmp_path_factory.mktemp("sweep")
    (root / "specs").mkdir()
    (root / "specs" / "keyq.yaml").write_text(yaml.safe_dump(KEYQ_SPEC))
    with recording_server() as server:
        echo(server)
        sweep = Sweep(root, server)
        Journal(root / "journal.sqlite3").close()
        journal = sqlite3.connect(root / "journal.sqlite3")  # held open, so the WAL stays on disk to be read
        journal.execute("SELECT count(*) FROM runs").fetchall()
        try:
            _cli(sweep)
            _sandbox(sweep)
            _editor(sweep)
            sweep.keep("journal file", (root / "journal.sqlite3").read_bytes())
            sweep.keep("journal WAL", (root / "journal.sqlite3-wal").read_bytes())
        finally:
            journal.close()
        yield sweep


def _cli(sweep: Sweep) -> None:
    server, url = sweep.server, sweep.server.url
    tasks = {name: sweep.task(name, task) for name, task in operation_tasks(url).items()}
    tasks["raw.yaml"] = sweep.task("raw.yaml", raw_task(url))

    def success(job: tuple[int, str]) -> None:
        # Each task in text and as --json; the dry run and the snippets take turns, so each form is seen.
        index, path = job
        sweep.run("test-request success (text)", "test-request", path)
        sweep.run("test-request success (--json)", "test-request", path, "--json")
        dry = ["--json"] if index % 2 else []
        sweep.run(
            f"test-request --dry-run ({'--json' if dry else 'text'})", "test-request", path, "--dry-run", *dry
        )
        sweep.run("task snippet", "task", "snippet", path, "--lang", ("curl", "python", "node")[index % 3])

    with ThreadPoolExecutor(3) as pool:
        list(pool.map(success, enumerate(tasks.values())))
    assert len(server.requests) == 2 * len(tasks)
    _cli_failures(sweep)
    sweep.run("test-request --sandbox", "test-request", tasks["basic-key.yaml"], "--sandbox", "--json")
    sweep.run("test-request --sandbox", "test-request", tasks["key-header.yaml"], "--sandbox")
    _workflows(sweep, url)


def _cli_failures(sweep: Sweep) -> None:
    server, url = sweep.server, sweep.server.url
    secret = "{{ secret('CANARY') }}"
    broken = operation_tasks(url)["basic-key.yaml"]
    broken["request"]["body"]["transaction"]["amount"] = secret
    failures: list[tuple[str, dict[str, Any], int, list[str]]] = [
        ("invalid.yaml", broken, 3, []),
        (
            "transform.yaml",
            raw_task(url, idempotencyKey="{{ uuid() }}")
            | {"httpRequest": {"url": f"{url}/x", "body": {"memo": "{{ secret('CANARY') | upper }}"}}},
            2,
            [],
        ),
        ("key.yaml", raw_task(url, idempotencyKey=secret), 2, []),
        (
            "header.yaml",
            raw_task(url) | {"httpRequest": {"url": f"{url}/x", "headers": {"X-K": secret}}},
            3,
            [],
        ),
        ("answered-500.yaml", raw_task(url), 1, ["500"]),
        ("refused.yaml", raw_task(f"http://127.0.0.1:{closed_port()}"), 1, []),
        ("reset.yaml", raw_task(url), 1, ["reset"]),
        ("slow.yaml", raw_task(url, readTimeoutSeconds=0.3), 1, ["slow"]),
        ("too-large.yaml", raw_task(url, maxResponseBytes=10), 1, []),
        ("redirect.yaml", raw_task(url, followRedirects=True), 1, ["redirect"]),
        (
            "missing.yaml",
            raw_task(url) | {"httpRequest": {"url": f"{url}/{{{{ secret('NOT_SET') }}}}"}},
            2,
            [],
        ),
    ]
    server.slow_seconds = 1.0
    for index, (name, task, code, behaviours) in enumerate(failures):
        path = sweep.task(name, task)
        server.behaviours = [b for b in behaviours if b in ("reset", "slow")]
        if "500" in behaviours:
            server.answer(500, json.dumps({"error": f"bad {CANARY}"}).encode(), {"X-Echo": HEADER_CANARY})
        if "redirect" in behaviours:
            server.answer(302, b"", {"Location": f"http://127.0.0.2:9/?k={quote(HEADER_CANARY)}"})
        # Text and --json take turns; a refusal reported as --json keeps its exit code.
        mode = "--json" if index % 2 else "text"
        args = ["test-request", path] + (["--json"] if index % 2 else [])
        sweep.run(f"test-request failures ({mode})", *args, code=code)


def _workflows(sweep: Sweep, url: str) -> None:
    secret = "{{ secret('CANARY') }}"
    operations = operation_tasks(url)
    tasks = [{"id": name.split(".")[0].replace("-", "_"), **task} for name, task in operations.items()]
    tasks.append({"id": "raw", **raw_task(url)})
    fan = raw_task(url)
    fan["forEach"] = "{{ input.items }}"
    fan["httpRequest"]["body"] = {"item": "{{ item }}", "memo": secret}
    tasks.append({"id": "fan", **fan})
    workflow = {
        "name": "sweep",
        "inputs": {"items": {"type": "array"}},
        "tasks": tasks,
        "outputs": {
            "status": "{{ tasks.raw.response.status }}",
            "echo": "{{ tasks.raw.response.body.echo }}",
        },
    }
    path = sweep.file("sweep.yaml", yaml.safe_dump(workflow))
    inputs = json.dumps({"items": [1, 2, 3]})
    sweep.run("validate", "validate", path)
    sweep.run("export (stdout and stderr)", "export", path, "--to", "conductor", code=None)
    sweep.run(
        "export (stdout and stderr)",
        "export",
        sweep.file(
            "raw-only.yaml", yaml.safe_dump({"name": "raw", "tasks": [{"id": "raw", **raw_task(url)}]})
        ),
        "--to",
        "conductor",
        "-o",
        str(sweep.root / "exported.json"),
    )
    sweep.keep("export -o file", (sweep.root / "exported.json").read_bytes())
    sweep.run("plan (text)", "plan", path, "--input", inputs)
    sweep.run("plan (--json)", "plan", path, "--input", inputs, "--json")
    first = sweep.run("run (text)", "run", path, "--input", inputs)
    sweep.run("run (--json)", "run", path, "--input", inputs, "--json")
    run_id = first.stderr.decode().split()[1]
    sweep.server.answer(500, json.dumps({"error": f"bad {CANARY}"}).encode())
    failing = sweep.file(
        "failing.yaml", yaml.safe_dump({"name": "failing", "tasks": [{"id": "raw", **raw_task(url)}]})
    )
    failed = sweep.run("run failures", "run", failing, "--json", code=1)
    failed_id = json.loads(failed.stdout)["run_id"]
    for key, where in (("idempotencyKey", "tasks"), ("outputs", "outputs")):
        bad = {"name": "refused", "tasks": [{"id": "raw", **raw_task(url)}]}
        if where == "tasks":
            bad["tasks"][0][key] = secret
        else:
            bad["outputs"] = {"leak": f"x {secret}"}
        refused = sweep.run(
            "run failures", "run", sweep.file(f"refused-{key}.yaml", yaml.safe_dump(bad)), code=None
        )
        assert refused.returncode != 0 and b"cannot be used here" in refused.stderr, refused.stderr
    sweep.run("runs list", "runs", "list", "--json")
    sweep.run("runs show (text)", "runs", "show", run_id)
    sweep.run("runs show (--json)", "runs", "show", run_id, "--json")
    sweep.run("runs show (text)", "runs", "show", failed_id)


def _start(sweep: Sweep, *args: str) -> tuple[subprocess.Popen[bytes], str]:
    command = args[0]
    sweep.commands.add(command)
    process = subprocess.Popen(
        [HTTPTASK, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=sweep.env
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    sweep.keep(f"{'editor' if command == 'serve' else 'sandbox'} process output", line)
    return process, line


def _stop(sweep: Sweep, process: subprocess.Popen[bytes], channel: str) -> None:
    process.terminate()
    out, err = process.communicate(timeout=30)
    sweep.keep(channel, out, err)
    assert b"Traceback" not in err, err.decode()


def _sandbox(sweep: Sweep) -> None:
    port = closed_port()
    process, _ = _start(sweep, "sandbox", "--port", str(port))
    root = f"http://127.0.0.1:{port}"
    try:
        _wait(f"{root}/_sandbox/health")
        for name, task in list(operation_tasks(root).items())[::2]:
            api = task["operation"].split(".")[0]
            task["server"] = {"url": root + SANDBOX_PATHS[api]}
            sweep.run(
                "test-request success (--json)",
                "test-request",
                sweep.task(f"sb-{name}", task),
                "--json",
                code=None,
            )
        sweep.keep("sandbox log", httpx.get(f"{root}/_sandbox/requests", trust_env=False).content)
    finally:
        _stop(sweep, process, "sandbox process output")


def _editor(sweep: Sweep) -> None:
    port = closed_port()
    url = sweep.server.url
    process, _ = _start(sweep, "serve", "--port", str(port), "--allow-host", url.removeprefix("http://"))
    editor = f"http://127.0.0.1:{port}"
    try:
        _wait(f"{editor}/api/operations")
        with httpx.Client(base_url=editor, trust_env=False, timeout=30) as client:

            def call(method: str, route: str, path: str, **kwargs: Any) -> httpx.Response:
                sweep.routes.add((method, route))
                response = client.request(method, path, **kwargs)
                sweep.keep("editor responses", response.content, str(response.headers).encode())
                assert response.status_code < 500 or response.status_code == 502, response.text
                return response

            call("GET", "/", "/")
            call("GET", "/api/operations", "/api/operations", params={"q": "refund"})
            call("GET", "/api/operations/{operation_id}", "/api/operations/chargebee.record_refund")
            call(
                "POST",
                "/api/tasks",
                "/api/tasks",
                json={"operation": "chargebee.record_refund", "values": {}, "credentials": "CANARY"},
            )
            everything = [*operation_tasks(url).values(), raw_task(url)]
            for task in everything:
                call("POST", "/api/test-request", "/api/test-request", json={"task": task})
                call(
                    "POST",
                    "/api/test-request",
                    "/api/test-request",
                    json={"task": yaml.safe_dump({"id": "t", **task})},
                )
            broken = operation_tasks(url)["basic-key.yaml"]
            broken["request"]["body"]["transaction"]["amount"] = "{{ secret('CANARY') }}"
            assert (
                call(
                    "POST", "/api/test-request", "/api/test-request", json={"task": {"id": "b", **broken}}
                ).status_code
                == 422
            )
            transformed = raw_task(url)
            transformed["httpRequest"]["body"] = {"m": "{{ secret('CANARY')[::-1] }}"}
            assert (
                call(
                    "POST",
                    "/api/test-request",
                    "/api/test-request",
                    json={"task": {"id": "t", **transformed}},
                ).status_code
                == 400
            )
            sweep.server.answer(500, json.dumps({"error": f"bad {CANARY}"}).encode())
            call(
                "POST", "/api/test-request", "/api/test-request", json={"task": {"id": "e", **raw_task(url)}}
            )
            refused = raw_task(f"http://10.0.0.1:{closed_port()}")
            assert (
                call(
                    "POST", "/api/test-request", "/api/test-request", json={"task": {"id": "r", **refused}}
                ).status_code
                == 400
            )
            workflow = yaml.safe_dump(
                {
                    "name": "w",
                    "tasks": [{"id": "raw", **raw_task(url)}],
                    "outputs": {"leak": "{{ secret('CANARY') }}"},
                }
            )
            assert (
                call("POST", "/api/validate", "/api/validate", json={"workflow": workflow}).json()["valid"]
                is False
            )
            call("GET", "/api/examples", "/api/examples")
            call("GET", "/api/examples/{name}", "/api/examples/refund-invoices")
            inserted = call(
                "POST",
                "/api/workflows/insert-task",
                "/api/workflows/insert-task",
                json={"workflow": "", "task": {"id": "raw", **raw_task(url)}},
            )
            assert inserted.status_code == 200
            # Without --sandbox a run is refused; the refusal, and the unknown run, are swept all the same.
            run = {"workflow": inserted.json()["workflow"], "input": {"memo": "{{ secret('CANARY') }}"}}
            assert call("POST", "/api/runs", "/api/runs", json=run).status_code == 400
            call("GET", "/api/runs/{run_id}", "/api/runs/nope")
            call("GET", "/api/runs/{run_id}/events", "/api/runs/nope/events")
    finally:
        _stop(sweep, process, "editor process output")


def _wait(url: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(url, trust_env=False, timeout=2)
            return
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


# -- the checks ----------------------------------------------------------------------------------------------


def test_the_sweep_covers_every_channel(sweep: Sweep) -> None:
    assert set(sweep.channels) == CHANNELS
    listing = "\n".join(
        f"{name}: {sum(len(d) for d in sweep.channels[name]):,} bytes" for name in sorted(CHANNELS)
    )
    (Path(__file__).resolve().parents[1] / "test-artifacts").mkdir(exist_ok=True)
    (Path(__file__).resolve().parents[1] / "test-artifacts" / "leak-sweep-channels.txt").write_text(
        listing + "\n"
    )
    assert all(sum(len(d) for d in data) for data in sweep.channels.values()), listing


@pytest.mark.parametrize("channel", sorted(CHANNELS))
def test_the_canary_appears_in_no_channel(sweep: Sweep, channel: str) -> None:
    found = {leak for data in sweep.channels[channel] for leak in leaks(data)}
    assert not found, f"{channel} holds the canary as: {', '.join(sorted(found))}"


def test_the_canary_was_sent_in_every_form_a_request_takes(sweep: Sweep) -> None:
    # The sweep means something only if the secrets really went out: in clear, in base64, percent-encoded.
    wire = b"".join(
        r.path.encode() + b"".join(f"{k}: {v}".encode("latin-1") for k, v in r.headers) + r.body
        for r in sweep.server.requests
    )
    for form in (
        "HCANARY raw",
        "PAIR base64",
        "CANARY base64 as basic user",
        "CANARY percent plus",
        "CANARY json",
    ):
        assert FORMS[form] in wire, form


def test_every_command_is_swept_or_exempt(sweep: Sweep) -> None:
    from httptask.cli import cli

    def names(group: click.Group, prefix: str = "") -> Iterator[str]:
        for name, command in group.commands.items():
            if isinstance(command, click.Group):
                yield from names(command, f"{prefix}{name} ")
            else:
                yield prefix + name

    every = set(names(cli))
    assert every == SWEPT_COMMANDS | set(EXEMPT_COMMANDS)
    assert sweep.commands >= SWEPT_COMMANDS


def test_every_editor_route_is_swept(sweep: Sweep) -> None:
    from httptask.server import create_app

    app = create_app(catalog=None)
    inner = app._app  # the FastAPI app behind the guard
    routes = {
        (method, route.path)
        for route in inner.routes
        if hasattr(route, "methods")
        for method in route.methods
        if route.path not in ("/openapi.json",) and method != "HEAD"
    }
    assert routes <= sweep.routes
