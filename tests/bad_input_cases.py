"""The bad-input corpus: every hostile or broken input the issue names, and what the fuzzers found, each with
the exit code (or HTTP status) it must end in, the one line that says what is wrong, and the location that
line must name. `test_bad_input` runs them and holds each to 2 s and 300 MB.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import yaml

__all__ = ["CLI_CASES", "EDITOR_CASES", "MALFORMED_URLS", "CliCase", "EditorCase"]

SECRET = "sk_corpus_5ecret"
BOMB = "a: &a ['lol','lol','lol','lol','lol','lol','lol','lol','lol']\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 9) + "]\n" for i in range(8)
)
DEEP = "[" * 10_000 + "]" * 10_000
LONG_INT = "9" * 5000
TOO_BIG = (
    "would make a value of more than 2,000,000 characters or items, the limit for a value made in a template"
)
TOO_LONG = "would have more than 4,000 digits, the limit for a number in a template"
TRANSFORMED = (
    "a secret can only be inserted, not transformed: place secret('NAME') whole in a header, query, path or "
    "body value, as in \"Bearer {{ secret('NAME') }}\""
)
MISPLACED = (
    "secret('KEY') cannot be used here: a secret may only be placed in a request's headers, query, path or "
    "body, never in a value that is shown or stored (an idempotency key, an output, forEach or the server)"
)


@dataclass(frozen=True)
class CliCase:
    """`httptask ARGV` in a folder holding `files`: it must exit with `code` and print `line` (whole, on a
    line of its own on stderr or stdout), which names `location`."""

    name: str
    argv: list[str]
    code: int
    line: str
    location: str
    files: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)

    def as_job(self) -> dict[str, Any]:
        env = {
            "HTTPTASK_CACHE_DIR": "{folder}/cache",
            "HTTPTASK_SPECS_PATH": "{folder}/specs",
            "HTTPTASK_JOURNAL": "{folder}/journal.sqlite3",
            "HTTPTASK_SECRET_KEY": SECRET,
            **self.env,
        }
        return {"name": self.name, "argv": self.argv, "files": self.files, "env": env}


@dataclass(frozen=True)
class EditorCase:
    """A request to the editor: it must answer `status` with `error` (or an issue's message) that names
    `location`."""

    name: str
    method: str
    path: str
    status: int
    error: str
    location: str
    body: Any = None


def _yaml(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=1000)


def _raw(body: Any = None, **request: Any) -> dict[str, Any]:
    http = {"method": "POST", "url": "https://example.com/refunds", **request}
    if body is not None:
        http["body"] = body
    return {"id": "t", "httpRequest": http, "retry": {"maxAttempts": 1}}


def _dry(name: str, task: dict[str, Any] | str, code: int, line: str, location: str, **extra: Any) -> CliCase:
    text = task if isinstance(task, str) else _yaml(task)
    return CliCase(
        name, ["test-request", "t.yaml", "--dry-run"], code, line, location, {"t.yaml": text}, **extra
    )


def _template(name: str, source: str, problem: str) -> CliCase:
    line = f"error: task t, httpRequest.body.x: {problem}"
    return _dry(f"template: {name}", _raw({"x": source}), 2, line, "httpRequest.body.x")


TEMPLATE_CASES = [
    _template("3 ** 400000000", "{{ 3 ** 400000000 }}", f"the power {TOO_LONG}"),
    _template("10 ** 5000", "{{ 10 ** 5000 }}", f"the power {TOO_LONG}"),
    _template("product of long numbers", "{{ 10**3999 * 10**3999 }}", f"the product {TOO_LONG}"),
    _template("'a' * 10**9", "{{ 'a' * 10**9 }}", f"repeating a value 1,000,000,000 times {TOO_BIG}"),
    _template("[0] * 10**9", "{{ [0] * 10**9 }}", f"repeating a value 1,000,000,000 times {TOO_BIG}"),
    _template("long numbers repeated", "{{ [10**3999] * 2000 }}", f"repeating a value 2,000 times {TOO_BIG}"),
    _template(
        "string concatenation", "{{ 'x' * 1000000 + 'y' * 1000001 }}", f"adding the two values {TOO_BIG}"
    ),
    _template("ljust", "{{ 'a'.ljust(10**9) }}", f"ljust(1000000000) {TOO_BIG}"),
    _template("center filter", "{{ 'a' | center(10**9) }}", f"center(1000000000) {TOO_BIG}"),
    _template("indent filter", "{{ 'a' | indent(10**9) }}", f"indent(1000000000) {TOO_BIG}"),
    _template("batch filter", "{{ range(10) | batch(10**9, 'x') | list }}", f"batch(1000000000) {TOO_BIG}"),
    _template("expandtabs", "{{ ('\\t' * 1000).expandtabs(10**6) }}", f"expandtabs(1000000) {TOO_BIG}"),
    _template("replace", "{{ ('a' * 1000) | replace('a', 'b' * 10000) }}", f"the replacement {TOO_BIG}"),
    _template("join", "{{ ('y' * 10000).join(['x'] * 1000) }}", f"joining the items {TOO_BIG}"),
    _template("% width", "{{ '%0999999999d' % 1 }}", f"a format width of 999999999 {TOO_BIG}"),
    _template("format width", "{{ '{:>999999999}'.format(1) }}", f"a format width of 999999999 {TOO_BIG}"),
    _template(
        "nested format width",
        "{{ '{:>{}}'.format(1, 10**9) }}",
        "a format width taken from another {} field is not allowed in templates",
    ),
    _template(
        "nested lists",
        "{% set a = ['x' * 100000] %}{{ [a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a] }}",
        f"the value built {TOO_BIG}",
    ),
    _template(
        "endless loops",
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        "the template ran longer than its limit of 1 s and was stopped",
    ),
    _template(
        "recursion",
        "{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}",
        "the template calls itself or nests too deeply",
    ),
    _template(
        "deep parentheses",
        "{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}",
        "the template is nested too deeply to read; write it more simply",
    ),
    _template(
        "integer of 5000 digits",
        "{{ " + LONG_INT + " }}",
        "the template holds a number that cannot be read (Exceeds the limit (4300 digits) for integer "
        "string conversion: value has 5000 digits)",
    ),
    _template("lipsum", "{{ lipsum(10**9) }}", "'lipsum' is undefined"),
    _template(
        "dunder escape", "{{ ''.__class__.__mro__ }}", "access to '__class__' is not allowed in templates"
    ),
    _template("syntax", "{{ input.x }", "template syntax error at line 1: unexpected '}'"),
]

SECRET_CASES = [
    *(
        _template(f"secret {name}", source, TRANSFORMED)
        for name, source in [
            ("| upper", "{{ secret('KEY') | upper }}"),
            ("[::-1]", "{{ secret('KEY')[::-1] }}"),
            ("| list | join", "{{ secret('KEY') | list | join('-') }}"),
            (".encode().hex()", "{{ secret('KEY').encode().hex() }}"),
            (".split", "{{ secret('KEY').split('_') }}"),
            ("compared", "{{ secret('KEY') == 'x' }}"),
            ("concatenated", "{{ secret('KEY') ~ 'x' }}"),
            ("iterated", "{% for c in secret('KEY') %}{{ c }}{% endfor %}"),
            ("set then used", "{% set s = secret('KEY') %}{{ s }}"),
            ("captured by a set block", "{% set s %}{{ secret('KEY') }}{% endset %}{{ s | upper }}"),
            ("| tojson", "{{ {'k': secret('KEY')} | tojson }}"),
        ]
    ),
    _template(
        "secret named by an input",
        "{{ secret(input.name) }}",
        "secret() takes the name of the secret in quotes, e.g. secret('STRIPE_KEY'), not a value computed by "
        "the template",
    ),
    _dry(
        "secret as idempotencyKey",
        {**_raw({"x": 1}), "idempotencyKey": "{{ secret('KEY') }}"},
        2,
        f"error: task t, idempotencyKey: {MISPLACED}",
        "idempotencyKey",
    ),
    _dry(
        "a cloud provider's key is no secret",
        _raw({"x": "{{ secret('AWS_SECRET_ACCESS_KEY') }}"}),
        2,
        "error: task t, httpRequest.body.x: No secret named 'AWS_SECRET_ACCESS_KEY': looked in the "
        "environment "
        "variable HTTPTASK_SECRET_AWS_SECRET_ACCESS_KEY (no secrets file is set). Secrets come only from "
        "HTTPTASK_SECRET_<NAME> variables and the secrets file. Set HTTPTASK_SECRET_AWS_SECRET_ACCESS_KEY, "
        "or "
        "name a secrets file holding 'AWS_SECRET_ACCESS_KEY' in HTTPTASK_SECRETS_FILE.",
        "HTTPTASK_SECRET_AWS_SECRET_ACCESS_KEY",
        env={"AWS_SECRET_ACCESS_KEY": "aws-canary-value"},
    ),
    _dry(
        "non-ASCII secret in a header",
        _raw(headers={"X-Key": "{{ secret('KEY') }}"}),
        3,
        "  $.headers.x-key: holds a character that is not ASCII (at position 4), which HTTP headers cannot "
        "carry; send it in the body, or percent-encode it if the API expects that",
        "$.headers.x-key",
        env={"HTTPTASK_SECRET_KEY": "sk_é_1"},
    ),
]

_TASK_FIELDS = "id: t\nhttpRequest:\n  method: POST\n  url: https://example.com/refunds\n"
YAML_CASES = [
    _dry(
        "duplicate httpRequest key",
        "id: t\nhttpRequest: {url: 'https://a.example/'}\nhttpRequest: {url: 'https://b.example/'}\n",
        2,
        "error: t.yaml:3:1: invalid YAML: the key 'httpRequest' is given twice in one mapping, at lines 2 "
        "and 3; "
        "keep one. Fix the syntax and try again.",
        "t.yaml:3",
    ),
    _dry(
        "duplicate amount",
        _TASK_FIELDS + "  body:\n    amount: 5\n    memo: x\n    amount: 500\n",
        2,
        "error: t.yaml:8:5: invalid YAML: the key 'amount' is given twice in one mapping, at lines 6 and "
        "8; keep "
        "one. Fix the syntax and try again.",
        "t.yaml:8",
    ),
    _dry(
        "alias bomb (591 bytes)",
        BOMB + _TASK_FIELDS,
        2,
        "error: t.yaml:6:4: invalid YAML: uses aliases (*name) more than 100 times, or they expand past "
        "100,000 "
        "values; write the values out. Fix the syntax and try again.",
        "t.yaml:6",
    ),
    _dry(
        "alias cycle",
        _TASK_FIELDS + "  body: &b {self: *b}\n",
        2,
        "error: t.yaml:5:9: invalid YAML: an alias refers to a value that contains it; write the values "
        "out. Fix "
        "the syntax and try again.",
        "t.yaml:5",
    ),
    _dry(
        "alias that contains itself",
        "x: &x [1, *x]\n" + _TASK_FIELDS,
        2,
        "error: t.yaml:1:4: invalid YAML: an alias refers to a value that contains it; write the values out. "
        "Fix the syntax and try again.",
        "t.yaml:1",
    ),
    _dry(
        "10,000 levels in flow style",
        _TASK_FIELDS + "  body: " + DEEP + "\n",
        2,
        "error: t.yaml:5:109: invalid YAML: nested more than 100 levels deep; flatten it. Fix the syntax and "
        "try again.",
        "t.yaml:5",
    ),
    _dry(
        "2,000 levels in block style",
        _TASK_FIELDS + "  body:\n" + "".join("    " + "  " * i + "a:\n" for i in range(2000)),
        2,
        "error: t.yaml:103:199: invalid YAML: nested more than 100 levels deep; flatten it. Fix the syntax "
        "and "
        "try again.",
        "t.yaml:103",
    ),
    _dry(
        "integer of 5000 digits",
        _TASK_FIELDS + f"  body: {{amount: {LONG_INT}}}\n",
        2,
        "error: t.yaml:5:18: invalid YAML: an integer of more than 4,300 digits; quote it if it is text. "
        "Fix the "
        "syntax and try again.",
        "t.yaml:5",
    ),
    _dry(
        "control character",
        _TASK_FIELDS + '  body: {memo: "a\x07b"}\n',
        2,
        "error: t.yaml:5:18: invalid YAML: unacceptable character #x0007: special characters are not "
        "allowed. "
        "Fix the syntax and try again.",
        "t.yaml:5",
    ),
    _dry(
        "tab indentation",
        "id: t\nhttpRequest:\n\turl: https://example.com/\n",
        2,
        "error: t.yaml:3:1: invalid YAML: found character '\\t' that cannot start any token. Fix the "
        "syntax and "
        "try again.",
        "t.yaml:3",
    ),
    _dry(
        "unclosed quote",
        "id: t\nhttpRequest: {url: 'https://example.com/}\n",
        2,
        "error: t.yaml:3:1: invalid YAML: found unexpected end of stream. Fix the syntax and try again.",
        "t.yaml:3",
    ),
    _dry("a list, not a task", "- id: t\n", 2, "error: t.yaml: the task is not valid:", "t.yaml"),
    _dry("empty file", "", 2, "error: t.yaml: the task is not valid:", "t.yaml"),
    _dry(
        "no id",
        "httpRequest: {url: 'https://example.com/'}\n",
        2,
        "  line 1, $.id: is required but missing",
        "$.id",
    ),
    _dry(
        "unknown field",
        _TASK_FIELDS + "retries: 3\n",
        2,
        "  line 5, $.retries: is not a field of this object (allowed: connectionTimeoutSeconds, credentials, "
        "description, followRedirects, forEach, httpRequest, id, idempotencyKey, maxResponseBytes, needs, "
        "operation, readTimeoutSeconds, request, retry, server, strictResponses)",
        "$.retries",
    ),
    _dry(
        "a key YAML reads as a number",
        _TASK_FIELDS + "1: 2\n",
        2,
        "  line 5, $['1']: is not a field of this object (allowed: connectionTimeoutSeconds, credentials, "
        "description, followRedirects, forEach, httpRequest, id, idempotencyKey, maxResponseBytes, needs, "
        "operation, readTimeoutSeconds, request, retry, server, strictResponses)",
        "$['1']",
    ),
    _dry(
        "retry of the wrong type",
        _TASK_FIELDS + "retry: {maxAttempts: many}\n",
        2,
        "  line 5, $.retry.maxAttempts: must be of type integer, not string 'many'",
        "$.retry.maxAttempts",
    ),
    _dry(
        "both operation and httpRequest",
        _TASK_FIELDS + "operation: stripe.report_payment_record_refund\n",
        2,
        "  line 1, $: needs exactly one of 'operation' (a catalog id) or 'httpRequest' (a raw request)",
        "$",
    ),
    CliCase(
        "not UTF-8",
        ["test-request", "t.yaml", "--dry-run"],
        2,
        "error: 't.yaml' is not UTF-8 text; save it as UTF-8 and try again.",
        "t.yaml",
        {"t.yaml": "id: t\nmemo: \udce9\n"},
    ),
    CliCase(
        "no such task file",
        ["test-request", "missing.yaml", "--dry-run"],
        2,
        "error: No such file: 'missing.yaml'.",
        "missing.yaml",
    ),
]

JSON_CASES = [
    CliCase(
        "task JSON 10,000 levels deep",
        ["test-request", "t.json", "--dry-run"],
        2,
        "error: t.json:1:117: invalid YAML: nested more than 100 levels deep; flatten it. Fix the syntax and "
        "try again.",
        "t.json:1",
        {"t.json": '{"id": "t", "x": ' + DEEP + "}"},
    ),
    CliCase(
        "task JSON long integer",
        ["test-request", "t.json", "--dry-run"],
        2,
        "error: t.json:1:18: invalid YAML: an integer of more than 4,300 digits; quote it if it is text. Fix "
        "the syntax and try again.",
        "t.json:1",
        {"t.json": '{"id": "t", "x": ' + LONG_INT + "}"},
    ),
    CliCase(
        "task JSON duplicate key",
        ["test-request", "t.json", "--dry-run"],
        2,
        "error: t.json:1:21: invalid YAML: the key 'id' is given twice in one mapping, at lines 1 and 1; "
        "keep "
        "one. Fix the syntax and try again.",
        "t.json:1",
        {"t.json": '{"id": "t", "x": 1, "id": "u"}'},
    ),
    *(
        CliCase(
            f"--input {name}",
            ["test-request", "t.yaml", "--dry-run", "--input", text],
            2,
            line,
            "--input",
            {"t.yaml": _yaml(_raw({"x": "{{ input.x }}"}))},
        )
        for name, text, line in [
            (
                "10,000 levels deep",
                DEEP,
                "error: --input is not valid JSON (nested more than 100 levels deep; flatten it); pass a "
                "JSON object "
                "or @FILE.",
            ),
            (
                "long integer",
                '{"x": ' + LONG_INT + "}",
                "error: --input is not valid JSON (an integer of more than 4,300 digits; quote it if it is "
                "text); "
                "pass a JSON object or @FILE.",
            ),
            (
                "trailing comma",
                '{"x": 1,}',
                "error: --input is not valid JSON (Expecting property name enclosed in double quotes at "
                "column 9); "
                "pass a JSON object or @FILE.",
            ),
            ("a list", "[1, 2]", "error: --input must hold an object of input names to values, not list."),
            (
                "NaN",
                '{"x": NaN}',
                "error: --input is not valid JSON (NaN is not a JSON number); pass a JSON object or @FILE.",
            ),
        ]
    ),
    *(
        CliCase(
            f"--input @{name}",
            ["test-request", "t.yaml", "--dry-run", "--input", f"@{name}"],
            2,
            line,
            name,
            {"t.yaml": _yaml(_raw({"x": "{{ input.x }}"})), **({name: text} if text else {})},
        )
        for name, text, line in [
            (
                "deep.json",
                DEEP,
                "error: deep.json: invalid JSON: nested more than 100 levels deep; flatten it. Fix the "
                "syntax and try again.",
            ),
            (
                "deep.yaml",
                "x:\n" + "".join("  " * i + "- \n" for i in range(1, 300)),
                "error: deep.yaml:101:201: invalid YAML: nested more than 100 levels deep; flatten it. Fix "
                "the syntax "
                "and try again.",
            ),
            (
                "bomb.yaml",
                BOMB,
                "error: bomb.yaml:6:4: invalid YAML: uses aliases (*name) more than 100 times, or "
                "they expand past 100,000 values; write the values out. Fix the syntax and try again.",
            ),
            (
                "long.yaml",
                f"x: {LONG_INT}\n",
                "error: long.yaml:1:4: invalid YAML: an integer of more than 4,300 "
                "digits; quote it if it is text. Fix the syntax and try again.",
            ),
            ("missing.json", None, "error: No such file: 'missing.json'."),
        ]
    ),
]


def _workflow(
    name: str, data: dict[str, Any] | str, code: int, line: str, location: str, command: str = "validate"
) -> CliCase:
    text = data if isinstance(data, str) else _yaml(data)
    return CliCase(f"workflow: {name}", [command, "w.yaml"], code, line, location, {"w.yaml": text})


def _tasks(*tasks: dict[str, Any]) -> list[dict[str, Any]]:
    return [{**task, "httpRequest": {"url": "https://example.com/"}} for task in tasks]


WORKFLOW_CASES = [
    _workflow(
        "forEach '{{ 5 }}'",
        {"name": "w", "tasks": _tasks({"id": "t", "forEach": "{{ 5 }}"})},
        3,
        "w.yaml:4: $.tasks[0].forEach: gives int, not a list; forEach needs a list, e.g. "
        "'{{ input.refunds }}'",
        "$.tasks[0].forEach",
    ),
    _workflow(
        "forEach plain text",
        {"name": "w", "tasks": _tasks({"id": "t", "forEach": "items"})},
        3,
        "w.yaml:4: $.tasks[0].forEach: must be a template giving a list, e.g. '{{ input.refunds }}'",
        "$.tasks[0].forEach",
    ),
    _workflow(
        "forEach over an integer input",
        {
            "name": "w",
            "inputs": {"n": {"type": "integer"}},
            "tasks": _tasks({"id": "t", "forEach": "{{ input.n }}"}),
        },
        3,
        "w.yaml:7: $.tasks[0].forEach: reads input.n, which is declared as integer, not a list (array); "
        "forEach needs a list",
        "$.tasks[0].forEach",
    ),
    _workflow(
        "secret in outputs",
        {"name": "w", "tasks": _tasks({"id": "t"}), "outputs": {"k": "{{ secret('KEY') }}"}},
        3,
        f"w.yaml:7: $.outputs.k: {MISPLACED}",
        "$.outputs.k",
    ),
    _workflow(
        "secret in forEach",
        {"name": "w", "tasks": _tasks({"id": "t", "forEach": "{{ secret('KEY') }}"})},
        3,
        f"w.yaml:4: $.tasks[0].forEach: {MISPLACED}",
        "$.tasks[0].forEach",
    ),
    _workflow(
        "needs cycle",
        {"name": "w", "tasks": _tasks({"id": "a", "needs": ["b"]}, {"id": "b", "needs": ["a"]})},
        3,
        "w.yaml:4: $.tasks[0].needs: forms a cycle: a -> b -> a",
        "$.tasks[0].needs",
    ),
    _workflow(
        "unknown need",
        {"name": "w", "tasks": _tasks({"id": "a", "needs": ["zz"]})},
        3,
        "w.yaml:5: $.tasks[0].needs[0]: names no task of this workflow: 'zz'",
        "$.tasks[0].needs[0]",
    ),
    _workflow(
        "repeated task id",
        {"name": "w", "tasks": _tasks({"id": "a"}, {"id": "a"})},
        3,
        "w.yaml:6: $.tasks[1].id: repeats the task id 'a' of tasks[0]",
        "$.tasks[1].id",
    ),
    _workflow(
        "1,200 tasks chained backwards",
        "name: chain\ntasks:\n"
        + "".join(
            f"  - id: t{i}\n"
            + (f"    needs: [t{i + 1}]\n" if i < 1199 else "")
            + "    httpRequest: {url: 'https://example.com/'}\n"
            for i in range(1200)
        ),
        0,
        "w.yaml: valid (1200 tasks).",
        "w.yaml",
    ),
    _workflow(
        "duplicate task key",
        "name: w\ntasks:\n  - id: a\n    httpRequest: {url: 'https://e.example/'}\n    id: b\n",
        2,
        "error: w.yaml:5:5: invalid YAML: the key 'id' is given twice in one mapping, at "
        "lines 3 and 5; keep one. Fix the syntax and try again.",
        "w.yaml:5",
    ),
    _workflow(
        "alias bomb",
        BOMB + "name: w\ntasks: []\n",
        2,
        "error: w.yaml:6:4: invalid YAML: uses aliases (*name) more than 100 times, or they expand past "
        "100,000 "
        "values; write the values out. Fix the syntax and try again.",
        "w.yaml:6",
    ),
    _workflow(
        "unknown operation",
        {"name": "w", "tasks": [{"id": "a", "operation": "stripe.refundz"}]},
        3,
        "w.yaml:4: $.tasks[0].operation: names no operation in the catalog: 'stripe.refundz'. Did you mean "
        "stripe.report_payment_record_refund, zoho-billing.get_credit_note_refund, "
        "zoho-billing.list_credit_note_refunds? Run 'httptask catalog search WORDS' to find one.",
        "$.tasks[0].operation",
    ),
    _workflow(
        "template reading an undeclared input",
        {"name": "w", "tasks": [{"id": "a", "httpRequest": {"url": "https://e.example/{{ input.nope }}"}}]},
        3,
        "w.yaml:5: $.tasks[0].httpRequest.url: reads input.nope, which is not an input of this workflow (its "
        "inputs: none); declare it under inputs",
        "$.tasks[0].httpRequest.url",
    ),
    _workflow(
        "run: secret as idempotencyKey",
        {
            "name": "w",
            "tasks": [
                {
                    "id": "a",
                    "idempotencyKey": "{{ secret('KEY') }}",
                    "httpRequest": {"url": "https://e.example/"},
                }
            ],
        },
        3,
        f"w.yaml:4: $.tasks[0].idempotencyKey: {MISPLACED}",
        "$.tasks[0].idempotencyKey",
        "validate",
    ),
]

# (name, URL, the editor's status, its message): 422 with the issue at $.httpRequest.url when the URL cannot
# be sent as written, 400 with the guard's refusal when it names an address or a name in disguise.
MALFORMED_URLS = [
    (
        "userinfo",
        "http://user:pass@example.com/refunds",
        422,
        "must not carry a user name or password (user:password@host); give credentials in credentials or a "
        "header, where they are kept secret",
    ),
    (
        "userinfo without password",
        "http://user@example.com/refunds",
        422,
        "must not carry a user name or password (user:password@host); give credentials in credentials or a "
        "header, where they are kept secret",
    ),
    (
        "userinfo with secret-looking password",
        "https://api:sk_live_x@example.com/",
        422,
        "must not carry a user name or password (user:password@host); give credentials in credentials or a "
        "header, where they are kept secret",
    ),
    (
        "empty userinfo",
        "http://@example.com/",
        422,
        "must not carry a user name or password (user:password@host); give credentials in credentials or a "
        "header, where they are kept secret",
    ),
    (
        "full-width digits",
        "http://\uff11\uff12\uff17.\uff10.\uff10.\uff11/",
        400,
        "Refused to connect to \uff11\uff12\uff17.\uff10.\uff10.\uff11 (127.0.0.1): it is a loopback "
        "address written in another form; write addresses the usual way, as 127.0.0.1, so that every "
        "resolver reads them alike.",
    ),
    (
        "circled digits",
        "http://①②⑦.0.0.1/",
        400,
        "Refused to connect to \u2460\u2461\u2466.0.0.1 (127.0.0.1): it is a loopback address written in "
        "another form; write addresses the usual way, as 127.0.0.1, so that every resolver reads them "
        "alike.",
    ),
    (
        "full-width letters",
        "http://\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com/",
        400,
        "Refused to connect to \uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com: it is the host name "
        "example.com written in other characters; write it as example.com.",
    ),
    (
        "emoji host",
        "http://🔑.example/",
        422,
        "has an invalid host name '🔑.example'; use letters, digits, '-' and '.', or an IP address",
    ),
    (
        "host with a space",
        "http://exa mple.com/",
        422,
        "has an invalid host name 'exa mple.com'; use letters, digits, '-' and '.', or an IP address",
    ),
    (
        "host label of 64 characters",
        "http://aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.example/",
        422,
        "has an invalid host name "
        "'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.example'; use letters, digits, "
        "'-' and '.', or an IP address",
    ),
    (
        "zero-padded loopback",
        "http://127.000.000.001/",
        400,
        "Refused to connect to 127.000.000.001 (127.0.0.1): it is a loopback address written in another "
        "form; write addresses the usual way, as 127.0.0.1, so that every resolver reads them alike.",
    ),
    (
        "octal loopback",
        "http://0177.0.0.1/",
        400,
        "Refused to connect to 0177.0.0.1 (127.0.0.1): it is a loopback address written in another form; "
        "write addresses the usual way, as 127.0.0.1, so that every resolver reads them alike.",
    ),
    (
        "short loopback",
        "http://127.1/",
        400,
        "Refused to connect to 127.1 (127.0.0.1): it is a loopback address written in another form; write "
        "addresses the usual way, as 127.0.0.1, so that every resolver reads them alike.",
    ),
    (
        "decimal loopback",
        "http://2130706433/",
        400,
        "Refused to connect to 2130706433 (127.0.0.1): it is a loopback address written in another form; "
        "write addresses the usual way, as 127.0.0.1, so that every resolver reads them alike.",
    ),
    (
        "hex loopback",
        "http://0x7f.0.0.1/",
        400,
        "Refused to connect to 0x7f.0.0.1 (127.0.0.1): it is a loopback address written in another form; "
        "write addresses the usual way, as 127.0.0.1, so that every resolver reads them alike.",
    ),
    (
        "hex loopback in one number",
        "http://0x7f000001/",
        400,
        "Refused to connect to 0x7f000001 (127.0.0.1): it is a loopback address written in another form; "
        "write addresses the usual way, as 127.0.0.1, so that every resolver reads them alike.",
    ),
    (
        "octal that reads as public",
        "http://010.0.0.1/",
        400,
        "Refused to connect to 010.0.0.1 (8.0.0.1): it is a public address written in another form; write "
        "addresses the usual way, as 8.0.0.1, so that every resolver reads them alike.",
    ),
    (
        "trailing dot loopback",
        "http://127.0.0.1./",
        400,
        "Refused to connect to 127.0.0.1. (127.0.0.1): it is a loopback address written in another form; "
        "write addresses the usual way, as 127.0.0.1, so that every resolver reads them alike.",
    ),
    (
        "metadata in decimal",
        "http://169.254.43518/",
        400,
        "Refused to connect to 169.254.43518 (169.254.169.254): it is a cloud metadata address written in "
        "another form; write addresses the usual way, as 169.254.169.254, so that every resolver reads "
        "them alike.",
    ),
    (
        "unclosed IPv6",
        "http://[::1/",
        422,
        "is not a valid URL: Invalid IPv6 URL; write it as https://host[:port]/path",
    ),
    (
        "IPv6 zone",
        "http://[fe80::1%25eth0]/",
        400,
        "Refused to connect to fe80::1%25eth0: it is a link-local address. Test requests only reach public "
        "addresses; to allow this host start the server with --allow-host fe80::1%25eth0:80.",
    ),
    (
        "port 99999",
        "http://example.com:99999/",
        422,
        "has an invalid port in 'example.com:99999'; a port is a number from 1 to 65535",
    ),
    (
        "port of letters",
        "http://example.com:abc/",
        422,
        "has an invalid port in 'example.com:abc'; a port is a number from 1 to 65535",
    ),
    (
        "port 0",
        "http://example.com:0/",
        422,
        "has an invalid port in 'example.com:0'; a port is a number from 1 to 65535",
    ),
    ("no host", "http:///refunds", 422, "has no host; write it as https://host[:port]/path"),
    ("not a URL", "not a url", 422, "must start with http:// or https://"),
    ("ftp scheme", "ftp://example.com/", 422, "must start with http:// or https://"),
    ("file scheme", "file:///etc/passwd", 422, "must start with http:// or https://"),
    ("javascript scheme", "javascript:alert(1)", 422, "must start with http:// or https://"),
]

URL_CLI_CASES = [
    _dry(f"URL: {name}", _raw(url=url), 3, f"  $.httpRequest.url: {message}", "$.httpRequest.url")
    for name, url, status, message in MALFORMED_URLS
    if status == 422
]

SERVER_VARIABLE_CASES = [
    _dry(
        f"server variable {name}",
        {
            "id": "t",
            "operation": "chargebee.record_refund",
            "server": {"site": value},
            "request": {
                "path": {"invoice-id": "i"},
                "body": {"memo": "m", "transaction": {"amount": 1, "payment_method": "check", "date": 1}},
            },
        },
        3,
        line,
        "$.server",
    )
    for name, value, line in [
        ("with a slash", "a/b", "  $.server.site: must not contain '/', '?', '#' or '@', not 'a/b'"),
        ("with a question mark", "a?b", "  $.server.site: must not contain '/', '?', '#' or '@', not 'a?b'"),
        (
            "with an at",
            "evil.example@x",
            "  $.server.site: must not contain '/', '?', '#' or '@', not 'evil.example@x'",
        ),
        (
            "with a space",
            "a b",
            "  $.server: has an invalid host name 'a b.chargebee.com'; use letters, digits, "
            "'-' and '.', or an IP address",
        ),
        (
            "with a port",
            "a:99999",
            "  $.server: has an invalid port in 'a:99999.chargebee.com:443'; a port is a "
            "number from 1 to 65535",
        ),
    ]
]

_REF_LOOP = (
    "openapi: 3.1.0\ninfo: {title: t, version: '1'}\npaths:\n  /a:\n    post:\n      operationId: a\n"
    "      requestBody: {content: {application/json: {schema: {$ref: '#/components/schemas/A'}}}}\n"
    "      responses: {'200': {description: ok}}\ncomponents:\n  schemas:\n"
    "    A: {$ref: '#/components/schemas/B'}\n    B: {$ref: '#/components/schemas/A'}\n"
)

def _spec_with_pattern(pattern: str) -> str:
    schema = {"type": "object", "properties": {"name": {"type": "string", "pattern": pattern}}}
    return _yaml(
        {
            "openapi": "3.1.0",
            "info": {"title": "p", "version": "1"},
            "servers": [{"url": "https://example.com"}],
            "paths": {
                "/x": {
                    "post": {
                        "operationId": "make",
                        "requestBody": {"content": {"application/json": {"schema": schema}}},
                        "responses": {"200": {"description": "ok"}},
                    }
                }
            },
        }
    )


SPEC_CASES = [
    CliCase(
        "test-request: a spec's pattern that backtracks without end",
        ["test-request", "t.yaml", "--dry-run"],
        3,
        "  $.body.name: cannot be checked against the pattern ^(a|aa)+$ within 0.25 s: the pattern "
        "backtracks without end on this value; simplify the pattern in the spec",
        "$.body.name",
        {
            "specs/p.yaml": _spec_with_pattern("^(a|aa)+$"),
            "t.yaml": _yaml(
                {"id": "t", "operation": "p.make", "request": {"body": {"name": "a" * 60 + "!"}}}
            ),
        },
    ),
    CliCase(
        "specs import: a pattern of 1,000 nested groups",
        ["specs", "import", "spec.yaml"],
        0,
        "Not checked strictly: 'httptask specs check FILE' lists what the OpenAPI validator finds.",
        "specs check FILE",
        {"spec.yaml": _spec_with_pattern("(" * 1000 + "a" + ")" * 1000)},
    ),
    CliCase(
        "specs check: $ref loop A -> B -> A",
        ["specs", "check", "spec.yaml"],
        1,
        "spec.yaml: 1 operation, 1 finding",
        "spec.yaml",
        {"spec.yaml": _REF_LOOP},
    ),
    *(
        CliCase(
            f"specs import: {name}",
            ["specs", "import", "spec.yaml"],
            code,
            line,
            location,
            {"spec.yaml": text},
        )
        for name, text, code, line, location in [
            (
                "$ref loop A -> B -> A",
                _REF_LOOP,
                0,
                "Not checked strictly: 'httptask specs check FILE' lists what the OpenAPI validator finds.",
                "specs check FILE",
            ),
            (
                "alias bomb",
                BOMB + "openapi: 3.1.0\n",
                2,
                "error: spec.yaml: line 6: invalid YAML: uses aliases (*name) more than 100 times, or they "
                "expand past "
                "100,000 values; write the values out.",
                "line 6",
            ),
            (
                "duplicate path",
                "openapi: 3.1.0\ninfo: {title: t, version: '1'}\npaths:\n  /a: {}\n  /a: {}\n",
                2,
                "error: spec.yaml: line 5: invalid YAML: the key '/a' is given twice in one mapping, at "
                "lines "
                "4 and 5; "
                "keep one.",
                "line 5",
            ),
            (
                "10,000 levels",
                "openapi: 3.1.0\nx: " + DEEP + "\n",
                2,
                "error: spec.yaml: line 2: invalid YAML: exceeded maximum nesting depth.",
                "line 2",
            ),
            (
                "not OpenAPI",
                "hello: world\n",
                2,
                "error: spec.yaml#/openapi: expected an OpenAPI 3.0 or 3.1 document, found no 'openapi' "
                "field.",
                "spec.yaml#/openapi",
            ),
            (
                "long integer",
                f"openapi: 3.1.0\nx: {LONG_INT}\n",
                2,
                "error: spec.yaml: line 2: invalid YAML: an integer of more than 4,300 digits; quote it if "
                "it "
                "is text.",
                "line 2",
            ),
        ]
    ),
]


CLI_CASES: list[CliCase] = [
    *TEMPLATE_CASES,
    *SECRET_CASES,
    *YAML_CASES,
    *JSON_CASES,
    *WORKFLOW_CASES,
    *URL_CLI_CASES,
    *SERVER_VARIABLE_CASES,
    *SPEC_CASES,
]


def _send(name: str, task: dict[str, Any] | str, status: int, message: str, location: str) -> EditorCase:
    return EditorCase(
        f"test request: {name}", "POST", "/api/test-request", status, message, location, {"task": task}
    )


def _editor_template(name: str, source: str, problem: str) -> EditorCase:
    return _send(
        f"template {name}",
        _raw({"x": source}),
        400,
        f"task t, httpRequest.body.x: {problem}",
        "httpRequest.body.x",
    )


def _validate(name: str, text: str, message: str, location: str) -> EditorCase:
    return EditorCase(
        f"validate: {name}", "POST", "/api/validate", 200, message, location, {"workflow": text}
    )


EDITOR_URL_CASES = [
    _send(f"URL {name}", _raw(url=url), status, message, "$.httpRequest.url" if status == 422 else "Refused")
    for name, url, status, message in MALFORMED_URLS
]
_RECORD_REFUND = {
    "path": {"invoice-id": "inv_1"},
    "body": {"memo": "m", "transaction": {"amount": 1, "payment_method": "check", "date": 1}},
}

EDITOR_CASES: list[EditorCase] = [
    *EDITOR_URL_CASES,
    *(
        _send(
            f"server URL {name}",
            {
                "id": "t",
                "operation": "chargebee.record_refund",
                "server": {"url": url},
                "request": _RECORD_REFUND,
            },
            status,
            message,
            "$.server.url" if status == 422 else "Refused",
        )
        for name, url, status, message in MALFORMED_URLS[::3]
    ),
    _editor_template("3 ** 400000000", "{{ 3 ** 400000000 }}", f"the power {TOO_LONG}"),
    _editor_template("'a' * 10**9", "{{ 'a' * 10**9 }}", f"repeating a value 1,000,000,000 times {TOO_BIG}"),
    _editor_template(
        "endless loops",
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        "the template ran longer than its limit of 1 s and was stopped",
    ),
    _editor_template("secret | upper", "{{ secret('KEY') | upper }}", TRANSFORMED),
    _send(
        "YAML alias bomb",
        BOMB + _TASK_FIELDS,
        400,
        "the task:6:4: invalid YAML: uses aliases (*name) more than 100 times, or they expand past 100,000 "
        "values; "
        "write the values out. Fix the syntax and try again.",
        "the task:6",
    ),
    _send(
        "YAML duplicate key",
        _TASK_FIELDS + "  body: {amount: 5, amount: 500}\n",
        400,
        "the task:5:21: invalid YAML: the key 'amount' is given twice in one mapping, at lines 5 and 5; "
        "keep one. "
        "Fix the syntax and try again.",
        "the task:5",
    ),
    _send(
        "YAML 10,000 levels",
        _TASK_FIELDS + "  body: " + DEEP + "\n",
        400,
        "the task:5:109: invalid YAML: nested more than 100 levels deep; flatten it. Fix the syntax and try "
        "again.",
        "the task:5",
    ),
    _send(
        "YAML integer of 5000 digits",
        _TASK_FIELDS + f"  body: {{amount: {LONG_INT}}}\n",
        400,
        "the task:5:18: invalid YAML: an integer of more than 4,300 digits; quote it if it is text. Fix the "
        "syntax and try again.",
        "the task:5",
    ),
    _send(
        "JSON task 500 levels deep",
        {"id": "t", "httpRequest": {"url": "https://e.example/", "body": json.loads("[" * 500 + "]" * 500)}},
        400,
        "The request body is nested more than 100 levels deep; flatten it.",
        "request body",
    ),
    _send(
        "non-ASCII in a header",
        _raw(headers={"X-Note": "caf\u00e9"}),
        422,
        "holds a character that is not ASCII (at position 4), which HTTP headers cannot carry; send it in "
        "the "
        "body, or percent-encode it if the API expects that",
        "$.headers.x-note",
    ),
    *(
        _send(
            f"server variable {name}",
            {
                "id": "t",
                "operation": "chargebee.record_refund",
                "server": {"site": value},
                "request": {
                    "path": {"invoice-id": "i"},
                    "body": {"memo": "m", "transaction": {"amount": 1, "payment_method": "check", "date": 1}},
                },
            },
            422,
            message,
            location,
        )
        for name, value, message, location in [
            ("with a slash", "a/b", "must not contain '/', '?', '#' or '@', not 'a/b'", "$.server.site"),
            (
                "with an at",
                "evil.example@x",
                "must not contain '/', '?', '#' or '@', not 'evil.example@x'",
                "$.server.site",
            ),
            (
                "with a space",
                "a b",
                "has an invalid host name 'a b.chargebee.com'; use letters, digits, '-' and "
                "'.', or an IP address",
                "$.server",
            ),
        ]
    ),
    _validate(
        "forEach '{{ 5 }}'",
        _yaml({"name": "w", "tasks": _tasks({"id": "t", "forEach": "{{ 5 }}"})}),
        "gives int, not a list; forEach needs a list, e.g. '{{ input.refunds }}'",
        "$.tasks[0].forEach",
    ),
    _validate(
        "alias bomb",
        BOMB + "name: w\ntasks: []\n",
        "invalid YAML: uses aliases (*name) more than 100 times, or they expand past 100,000 values; write "
        "the values out. Fix the syntax and try again.",
        "$",
    ),
    _validate(
        "duplicate key",
        "name: w\ntasks: []\nname: v\n",
        "invalid YAML: the key 'name' is given twice in one mapping, at lines 1 and 3; keep one. Fix the "
        "syntax and try again.",
        "$",
    ),
    _validate(
        "a key YAML reads as null",
        "name: w\ntasks:\n  - id: t\n    ~: 1\n    httpRequest: {url: 'https://e.example/'}\n",
        "is not a field of this object (allowed: connectionTimeoutSeconds, credentials, description, "
        "followRedirects, forEach, httpRequest, id, idempotencyKey, maxResponseBytes, needs, operation, "
        "readTimeoutSeconds, request, retry, server, strictResponses)",
        "$.tasks[0]['~']",
    ),
    _validate(
        "secret in outputs",
        _yaml({"name": "w", "tasks": _tasks({"id": "t"}), "outputs": {"k": "{{ secret('KEY') }}"}}),
        MISPLACED,
        "$.outputs.k",
    ),
    EditorCase(
        "build task: unknown operation",
        "POST",
        "/api/tasks",
        400,
        "No operation 'stripe.refundz' in the catalog. Did you mean stripe.report_payment_record_refund, "
        "zoho-billing.get_credit_note_refund, zoho-billing.list_credit_note_refunds? Run 'httptask catalog "
        "search WORDS' to find one.",
        "stripe.refundz",
        {"operation": "stripe.refundz", "values": {}},
    ),
    EditorCase(
        "build task: values 500 levels deep",
        "POST",
        "/api/tasks",
        400,
        "The request body is nested more than 100 levels deep; flatten it.",
        "request body",
        {
            "operation": "stripe.report_payment_record_refund",
            "values": {"body.x": json.loads("[" * 500 + "]" * 500)},
        },
    ),
    EditorCase(
        "search: 10,000 characters",
        "GET",
        "/api/operations?q=" + "a" * 10_000,
        422,
        "String should have at most 500 characters",
        "$.q",
    ),
    EditorCase(
        "operation: unknown id",
        "GET",
        "/api/operations/" + "x" * 200,
        400,
        "No operation '" + "x" * 200 + "' in the catalog. Run 'httptask catalog search WORDS' to find one.",
        "x" * 200,
    ),
]
