"""The editor page in headless Chromium: search, open an operation, fill the form, Test request against the
sandbox, and see a validation error next to its field. Screenshots go to test-artifacts/."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from browser_setup import CHROMIUM, SECRET, running_editor
from httptask.catalog import Catalog
from httptask.checks import check_workflow_text
from httptask.sandbox import SandboxThread
from httptask.server import ServerConfig
from servers import RecordingServer

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason=f"{CHROMIUM} is absent: install Debian's chromium package "
        "(make browser does, as root) to run the browser tests",
    ),
]

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TOKEN = "browser-test-token-0123456789"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    context.set_default_timeout(10_000)
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    # 4xx answers are expected here (they carry the validation errors); Chromium logs each as a console error.
    opened.on(
        "console",
        lambda message: (
            errors.append(message.text)
            if message.type == "error" and not message.text.startswith("Failed to load resource")
            else None
        ),
    )
    yield opened
    context.close()
    assert errors == [], "the page logged errors"


def _shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name))


def test_search_build_and_test_a_refund(page: Any, editor: str, sandbox: SandboxThread) -> None:
    from playwright.sync_api import expect

    httpx.delete(f"{sandbox.url}/_sandbox/requests")
    page.goto(editor + "/")
    page.fill("#search", "refund")
    result = page.locator('.result-item[data-id="chargebee.record_refund"]')
    expect(result).to_be_visible()
    _shot(page, "editor-1-search.png")
    result.click()

    expect(page.locator("#op-title")).to_have_text("Record refund for an invoice")
    memo = page.locator('[data-key="body.memo"]')
    expect(page.locator('.field[data-path="$.body.memo"] .req')).to_be_visible()
    expect(page.locator('fieldset.group[data-path="$.body.transaction"] legend')).to_contain_text(
        "transaction"
    )
    payment = page.locator('[data-key="body.transaction.payment_method"]')
    assert payment.evaluate("node => node.tagName") == "SELECT"
    assert page.locator('[data-key="Content-Type"], [data-key="content-type"]').input_value() == (
        "application/x-www-form-urlencoded"
    )
    expect(page.locator("#cred-name")).to_have_value("CHARGEBEE_API_KEY")
    assert page.locator('[data-key="site"]').input_value() == "demo"
    assert page.locator('[data-key="protocol"]').input_value() == '"https"'
    assert memo.get_attribute("placeholder") == "{{ input.memo }}"

    page.fill('[data-key="invoice-id"]', "inv_42")
    memo.fill("Refunded by check after the customer cancelled.")
    page.fill('[data-key="body.transaction.amount"]', "1000")
    payment.select_option(label="check")
    page.fill('[data-key="body.transaction.date"]', "1517467200")
    expect(page.locator("#yaml")).to_contain_text("memo: Refunded by check after the customer cancelled.")
    expect(page.locator("#yaml")).to_contain_text("payment_method: check")
    page.evaluate("window.scrollTo(0, 0)")
    _shot(page, "editor-2-form.png")

    page.click("#send")
    expect(page.locator(".status")).to_have_text("200 OK")
    expect(page.locator("#response-body")).to_contain_text('"type": "refund"')
    page.locator("#result").scroll_into_view_if_needed()
    _shot(page, "editor-3-sent.png")
    received = httpx.get(f"{sandbox.url}/_sandbox/requests").json()
    assert [r["path"] for r in received] == ["/chargebee/api/v1/invoices/inv_42/record_refund"]

    memo.fill("")
    expect(page.locator("#yaml")).to_contain_text("memo: '{{ input.memo }}'")
    page.fill("#input", "{}")
    page.click("#send")
    error = page.locator('.field[data-path="$.body.memo"] .field-error')
    expect(error).to_be_visible()
    expect(error).to_have_text(
        "'input' has no attribute 'memo' (fill this field, or give it in the input JSON)"
    )
    expect(page.locator(".field.has-error")).to_have_count(1)
    _shot(page, "editor-4-error.png")
    assert len(httpx.get(f"{sandbox.url}/_sandbox/requests").json()) == 1
    assert SECRET not in page.content()


def test_a_spec_violation_is_shown_on_its_field(page: Any, editor: str) -> None:
    from playwright.sync_api import expect

    page.goto(editor + "/#op=chargebee.record_refund")
    page.fill('[data-key="invoice-id"]', "inv_42")
    page.fill('[data-key="body.memo"]', "m")
    page.fill('[data-key="body.transaction.amount"]', "-5")
    page.click("#send")
    error = page.locator('.field[data-path="$.body.transaction.amount"] .field-error')
    expect(error).to_have_text("must be at least 0, not -5")
    expect(page.locator(".error-box")).to_contain_text("The request for chargebee.record_refund was not sent")


def test_the_copy_button_copies_the_yaml(browser: Any, editor: str) -> None:
    from playwright.sync_api import expect

    context = browser.new_context(permissions=["clipboard-read", "clipboard-write"])
    page = context.new_page()
    page.goto(editor + "/#op=geins.create_order_refund")
    expect(page.locator("#yaml")).to_contain_text("operation: geins.create_order_refund")
    page.click("#copy")
    expect(page.locator("#copy")).to_have_text("Copied")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == page.locator("#yaml").text_content()
    context.close()


def test_the_page_takes_its_token_from_the_url_once(browser: Any, catalog: Catalog) -> None:
    from playwright.sync_api import expect

    with running_editor(ServerConfig(token=TOKEN), catalog) as url:
        context = browser.new_context()
        page = context.new_page()
        page.goto(f"{url}/?token={TOKEN}")
        expect(page.locator(".result-item").first).to_be_visible()
        assert "token" not in page.url
        page.reload()
        expect(page.locator(".result-item").first).to_be_visible()
        other = context.new_page()
        other.goto(url + "/")
        expect(other.locator("#auth-note")).to_have_text(
            "This editor needs its token: send 'Authorization: Bearer TOKEN', "
            "or open the page as /?token=TOKEN."
        )
        context.close()


def test_every_operation_opens_with_a_form_and_its_task(page: Any, editor: str, catalog: Catalog) -> None:
    from playwright.sync_api import expect

    page.goto(editor + "/")
    for operation_id in catalog.ids():
        page.fill("#search", operation_id)
        page.locator(f'.result-item[data-id="{operation_id}"]').click()
        expect(page.locator("#op-id")).to_have_text(operation_id)
        expect(page.locator("#yaml")).to_contain_text(f"operation: {operation_id}")
        expect(page.locator("#task-error")).to_be_hidden()
        required = page.locator(".field.required [data-key]")
        assert required.count() >= 1, operation_id
        _shot(page, f"operation-{operation_id}.png")


# -- the first Test request, layout, keyboard, workflow tab and accessibility ------------------------------

DOCS = Path(__file__).resolve().parents[1] / "docs"
AXE = Path(__file__).resolve().parent / "js" / "node_modules" / "axe-core" / "axe.min.js"
WIDTHS = [1400, 1024, 800]


def _open_refund(page: Any, editor: str) -> None:
    from playwright.sync_api import expect

    page.goto(editor + "/")
    page.fill("#search", "refund")
    page.locator('.result-item[data-id="chargebee.record_refund"]').click()
    expect(page.locator("#yaml")).to_contain_text("operation: chargebee.record_refund")


def test_the_first_test_request_succeeds_with_no_typing(
    page: Any, editor: str, sandbox: SandboxThread
) -> None:
    from playwright.sync_api import expect

    httpx.delete(f"{sandbox.url}/_sandbox/requests")
    _open_refund(page, editor)
    sample = json.loads(page.locator("#input").input_value())
    assert sample == {
        "invoice_id": "example",
        "memo": "Refunded by check after the customer cancelled the order.",
    }
    page.click("#send")
    expect(page.locator(".status")).to_have_text("200 OK")
    received = httpx.get(f"{sandbox.url}/_sandbox/requests").json()
    assert [r["path"] for r in received] == ["/chargebee/api/v1/invoices/example/record_refund"]


def _box(page: Any, selector: str) -> dict[str, float]:
    box = page.locator(selector).bounding_box()
    assert box is not None, f"{selector} is not rendered"
    return dict(box)


def _assert_top_aligned(page: Any, width: int, left: str, right: str) -> None:
    """The search column starts right under the top bar; the two panels of the main column start at the same
    height, side by side, inside the window."""
    sidebar, main = _box(page, ".sidebar"), _box(page, "#main")
    first, second = _box(page, left), _box(page, right)
    assert sidebar["y"] == main["y"] == 48, (width, sidebar, main)
    assert abs(first["y"] - second["y"]) < 1, (width, first, second)
    assert first["y"] < 200, f"the panels start {first['y']} px down at {width} px"
    assert sidebar["x"] + sidebar["width"] <= first["x"] < first["x"] + first["width"] <= second["x"]
    assert second["x"] + second["width"] <= width
    assert page.evaluate("document.scrollingElement.scrollWidth") <= width, "the page scrolls sideways"


@pytest.mark.parametrize("width", WIDTHS)
def test_the_columns_stay_top_aligned(browser: Any, editor: str, width: int) -> None:
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": width, "height": 1000})
    page = context.new_page()
    _open_refund(page, editor)
    _assert_top_aligned(page, width, "#form", "#view-task .side")
    assert _box(page, "#search")["y"] < 100
    page.click("#send")
    expect(page.locator(".status")).to_have_text("200 OK")
    _assert_top_aligned(page, width, "#form", "#view-task .side")
    _shot(page, f"layout-{width}-task.png")
    if width == 1400:
        DOCS.mkdir(exist_ok=True)
        page.screenshot(path=str(DOCS / "editor.png"))
    # Scrolled down a long form, the search and the side panels stay in view at the top.
    page.evaluate("window.scrollTo(0, 300)")
    assert _box(page, ".sidebar")["y"] == 48
    assert 48 <= _box(page, "#view-task .side")["y"] <= 72
    page.click("#tab-workflow")
    page.select_option("#example", "refund-invoices")
    expect(page.locator("#wf-status")).to_have_text("No problems: the workflow is valid.")
    page.evaluate("window.scrollTo(0, 0)")
    _assert_top_aligned(page, width, ".wf-panel", "#view-workflow .side")
    _shot(page, f"layout-{width}-workflow.png")
    context.close()


def test_slash_finds_the_search_and_the_arrows_walk_the_results(page: Any, editor: str) -> None:
    from playwright.sync_api import expect

    page.goto(editor + "/")
    page.locator("h1").first.click()
    page.keyboard.press("/")
    expect(page.locator("#search")).to_be_focused()
    page.keyboard.type("refund")
    expect(page.locator('#results[data-query="refund"]')).to_have_count(1)
    items = page.locator(".result-item")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    second = items.nth(1)
    expect(second).to_have_attribute("aria-selected", "true")
    expect(page.locator("#search")).to_have_attribute("aria-activedescendant", second.get_attribute("id"))
    page.keyboard.press("ArrowUp")
    expect(items.nth(0)).to_have_attribute("aria-selected", "true")
    page.keyboard.press("End")
    expect(items.last).to_have_attribute("aria-selected", "false")  # End without Ctrl moves the caret only
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    expect(page.locator("#op-id")).to_have_text(second.get_attribute("data-id") or "")
    expect(page.locator("#search")).to_be_focused()
    # Typing "/" inside a field types it.
    page.locator("#input").fill("")
    page.locator("#input").type("/")
    expect(page.locator("#input")).to_have_value("/")
    # The tabs follow the arrow keys.
    page.locator("#tab-task").focus()
    page.keyboard.press("ArrowRight")
    expect(page.locator("#tab-workflow")).to_be_focused()
    expect(page.locator("#view-workflow")).to_be_visible()
    expect(page.locator("#view-task")).to_be_hidden()


def _record_states(page: Any) -> None:
    """Every state text the run table ever shows, in order, however briefly."""
    page.evaluate(
        """() => {
          window.seenStates = [];
          new MutationObserver((records) => {
            for (const record of records) for (const node of record.addedNodes) {
              // The row is the record's target: a cell may be replaced (and detached) before this runs.
              const row = record.target.closest ? record.target.closest('tr') : null;
              const states = node.querySelectorAll ? node.querySelectorAll('.state') : [];
              for (const state of states) window.seenStates.push(
                (row ? row.dataset.task : node.dataset.task) + ':' + state.textContent);
            }
          }).observe(document.getElementById('wf-tasks'), {childList: true, subtree: true});
        }"""
    )


def test_the_workflow_tab_checks_inserts_and_runs_on_the_sandbox(
    page: Any,
    editor: str,
    catalog: Catalog,
    sandbox: SandboxThread,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from playwright.sync_api import expect

    monkeypatch.setenv("HTTPTASK_JOURNAL", str(tmp_path / "journal.sqlite3"))
    page.goto(editor + "/#workflow")
    page.select_option("#example", "refund-invoices")
    status = page.locator("#wf-status")
    expect(status).to_have_text("No problems: the workflow is valid.")
    assert json.loads(page.locator("#wf-input").input_value())["invoices"][0] == {
        "id": "INV-1001",
        "amount": 1500,
    }

    # A mistake shows beside its line: the gutter marks line 27, the note follows the text on that line.
    text = page.locator("#wf-text")
    original = text.input_value()
    assert original.splitlines()[26] == "    operation: chargebee.refund_invoice"
    text.fill(original.replace("chargebee.refund_invoice", "chargebee.refund_invoize"))
    expect(status).to_have_text("1 problem; nothing can run until they are fixed.")
    expect(page.locator(".gl.problem")).to_have_text("⚠ 27")
    note = page.locator(".bl.problem .bl-note")
    (issue,) = check_workflow_text(text.input_value(), catalog)
    assert issue.message.startswith("names no operation in the catalog: 'chargebee.refund_invoize'. Did you")
    expect(note).to_have_text(f"$.tasks[0].operation: {issue.message}")
    line_box, note_box = _box(page, ".gl.problem"), _box(page, ".bl.problem")
    assert abs(line_box["y"] - note_box["y"]) < 1, "the note is on the line it is about"
    expect(page.locator(".wf-problem .line-link")).to_have_text("line 27")
    _shot(page, "workflow-1-problem.png")
    page.locator(".wf-problem .line-link").click()
    assert page.evaluate(
        "() => { const t = document.getElementById('wf-text'); "
        "return t.value.slice(t.selectionStart, t.selectionEnd); }"
    ) == ("    operation: chargebee.refund_invoize")
    text.fill(original)
    expect(status).to_have_text("No problems: the workflow is valid.")

    # A task from the task builder goes in under its own id, with its inputs declared.
    page.click("#tab-task")
    page.fill("#search", "record refund")
    page.locator('.result-item[data-id="chargebee.record_refund"]').click()
    page.fill('[data-key="body.memo"]', "Refunded in the editor.")
    expect(page.locator("#yaml")).to_contain_text("memo: Refunded in the editor.")
    page.click("#insert")
    expect(page.locator("#view-workflow")).to_be_visible()
    expect(page.locator("#wf-inserted")).to_have_text(
        "Inserted the task record_refund; declared the input invoice_id."
    )
    expect(status).to_have_text("No problems: the workflow is valid.")
    inserted = text.input_value()
    assert "  - id: record_refund\n    operation: chargebee.record_refund\n" in inserted
    assert '  invoice_id: {"type": "string"}\n' in inserted
    inputs = json.loads(page.locator("#wf-input").input_value())
    inputs["invoice_id"] = "inv_77"
    page.fill("#wf-input", json.dumps(inputs, indent=2))

    # Run on sandbox: each task's state as it changes, then the outputs.
    httpx.delete(f"{sandbox.url}/_sandbox/requests")
    _record_states(page)
    page.click("#wf-run")
    expect(page.locator("#wf-run-status")).to_contain_text(" succeeded. See it with 'httptask runs show ")
    expect(page.locator('#wf-tasks tr[data-task="refund"] .state')).to_have_text("succeeded")
    expect(page.locator('#wf-tasks tr[data-task="record_refund"] .state')).to_have_text("succeeded")
    expect(page.locator('#wf-tasks tr[data-task="refund"] td').nth(2)).to_have_text("4 succeeded")
    seen = page.evaluate("window.seenStates")
    for task in ("refund", "record_refund"):
        states = [s.split(":")[1] for s in seen if s.split(":")[0] == task]
        assert states.index("running") < states.index("succeeded"), seen
    outputs = json.loads(page.locator("#wf-outputs").text_content())
    assert outputs == {"refunded": 4, "statuses": [200, 200, 200, 200]}
    paths = sorted(r["path"] for r in httpx.get(f"{sandbox.url}/_sandbox/requests").json())
    assert "/chargebee/api/v1/invoices/inv_77/record_refund" in paths and len(paths) == 5
    page.evaluate("window.scrollTo(0, 0)")
    _shot(page, "workflow-2-run.png")
    if page.viewport_size["width"] >= 1400:
        DOCS.mkdir(exist_ok=True)
        page.screenshot(path=str(DOCS / "editor-workflow.png"))

    # Download writes the workflow with the schema line first.
    with page.expect_download() as download:
        page.click("#wf-download")
    saved = Path(download.value.path()).read_text(encoding="utf-8")
    assert download.value.suggested_filename == "refund-invoices.yaml"
    assert saved.startswith("# yaml-language-server: $schema=/")
    assert saved.splitlines()[1:] == inserted.splitlines()
    assert SECRET not in page.content()


def test_a_refused_run_shows_why(page: Any, editor: str) -> None:
    from playwright.sync_api import expect

    page.goto(editor + "/#workflow")
    page.select_option("#example", "stripe-report-refund")
    expect(page.locator("#wf-status")).to_have_text("No problems: the workflow is valid.")
    page.fill("#wf-input", '{"payment_record": 5}')
    page.click("#wf-run")
    box = page.locator("#wf-run-error .error-box")
    expect(box).to_contain_text("The inputs do not fit the workflow 'stripe-report-refund' (4 problems)")
    expect(box.locator("li")).to_have_count(4)
    expect(box).to_contain_text("$.input.payment_record")
    expect(page.locator("#wf-tasks")).to_be_hidden()


def _serious_violations(page: Any) -> list[dict[str, Any]]:
    page.evaluate(AXE.read_text(encoding="utf-8"))
    result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]]}
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


@pytest.mark.skipif(not AXE.exists(), reason=f"{AXE} is absent: make test installs axe-core from npm there")
def test_axe_finds_no_serious_violation(
    page: Any, editor: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from playwright.sync_api import expect

    monkeypatch.setenv("HTTPTASK_JOURNAL", str(tmp_path / "journal.sqlite3"))
    page.goto(editor + "/")
    expect(page.locator(".result-item").first).to_be_visible()
    assert _serious_violations(page) == []
    _open_refund(page, editor)
    page.click("#send")
    expect(page.locator(".status")).to_have_text("200 OK")
    page.locator("details.optional").first.evaluate("node => node.open = true")
    assert _serious_violations(page) == []
    page.click("#tab-workflow")
    page.select_option("#example", "refund-invoices")
    expect(page.locator("#wf-status")).to_have_text("No problems: the workflow is valid.")
    page.fill("#wf-text", page.locator("#wf-text").input_value().replace("forEach", "forEch"))
    expect(page.locator(".wf-problem").first).to_be_visible()
    assert _serious_violations(page) == []
    page.select_option("#example", "stripe-report-refund")
    page.select_option("#example", "refund-invoices")
    expect(page.locator("#wf-status")).to_have_text("No problems: the workflow is valid.")
    page.click("#wf-run")
    expect(page.locator("#wf-outputs")).to_be_visible()
    assert _serious_violations(page) == []


OFF_SPEC_WORKFLOW = """\
name: refunds
inputs:
  payments: {type: array}
tasks:
  - id: fits
    operation: &refund zoho-billing.refund_payment
    credentials: &key CHARGEBEE_API_KEY
    request: &request
      path: {payment_id: p0}
      headers: &organization {X-com-zoho-subscriptions-organizationid: '10234695'}
      body: &body {amount: 5, description: refund}
  - {id: single, operation: *refund, credentials: *key, needs: [fits], request: *request}
  - id: refund
    operation: *refund
    credentials: *key
    needs: [single]
    forEach: '{{ input.payments }}'
    request: {path: {payment_id: '{{ item }}'}, headers: *organization, body: *body}
"""


def test_the_run_table_shows_responses_that_break_the_spec(
    page: Any, catalog: Catalog, server: RecordingServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The editor's runs go to its sandbox, here a loopback server that answers the first request as the spec
    says and every other with a wrong type in two fields, one of them echoing the credential and one holding
    markup: the Off spec column counts those responses and shows the first one's first issue and how many
    more it has (all of them in its title), the credential masked and the markup as text; a task whose
    responses fit leaves it empty."""
    from playwright.sync_api import expect

    monkeypatch.setenv("HTTPTASK_JOURNAL", str(tmp_path / "journal.sqlite3"))
    fitting = {"code": 0, "message": "ok", "refund": {"refund_id": "r1"}}
    server.answer(201, json.dumps(fitting).encode(), {"Content-Type": "application/json"})
    odd = {"code": "<img src=x onerror=alert(1)>", "refund": f"Zoho-oauthtoken {SECRET}"}
    server.default = (201, {"Content-Type": "application/json"}, json.dumps(odd).encode())
    with running_editor(ServerConfig(sandbox_url=server.url), catalog) as url:
        # A new editor starts its workers on its first check, which a loaded machine can take seconds to do.
        httpx.post(f"{url}/api/validate", json={"workflow": "name: w\ntasks: []\n"}, timeout=60)
        page.goto(url + "/#workflow")
        page.fill("#wf-text", OFF_SPEC_WORKFLOW)
        expect(page.locator("#wf-status")).to_have_text("No problems: the workflow is valid.", timeout=30_000)
        page.fill("#wf-input", '{"payments": ["p2", "p3", "p4"]}')
        page.click("#wf-run")
        expect(page.locator("#wf-run-status")).to_contain_text(
            " succeeded. See it with 'httptask runs show ", timeout=60_000
        )
    assert len(server.requests) == 5
    fits = page.locator('#wf-tasks tr[data-task="fits"] td')
    expect(fits.nth(1)).to_have_text("201")
    expect(fits.nth(3)).to_have_text("")
    code = "$.body.code must be of type integer, not string '<img src=x onerror=alert(1)>'"
    refund = "$.body.refund must be of type object, not string '***'"
    single = page.locator('#wf-tasks tr[data-task="single"] td').nth(3)
    expect(single.locator("span")).to_have_text("1 response")
    expect(single.locator(".small")).to_have_text(f"{code} (and 1 more)")
    expect(single).to_have_attribute("title", f"{code}\n{refund}")
    expect(single).to_have_class("warn-text")
    cell = page.locator('#wf-tasks tr[data-task="refund"] td').nth(3)
    expect(cell.locator("span")).to_have_text("3 responses")
    detail = cell.locator(".small")
    expect(detail).to_have_text(re.compile(r"^item [012]: " + re.escape(f"{code} (and 1 more)") + "$"))
    item = (detail.text_content() or "").split(":")[0]
    expect(cell).to_have_attribute("title", f"{item}: {code}\n{refund}")
    assert page.locator("#wf-tasks img").count() == 0
    assert SECRET not in page.content()
    _shot(page, "workflow-3-off-spec.png")


def test_a_large_answer_shows_its_start_and_says_how_large_it_is(
    page: Any, catalog: Catalog, server: RecordingServer
) -> None:
    from playwright.sync_api import expect

    from httptask.shown import SHOWN_CHARS

    start = '{"invoice": {"id": "inv_42", "note": "'
    body = (start + "x" * (SHOWN_CHARS - len(start) - 3) + SECRET + "y" * 2_000_000 + SECRET + '"}}').encode()
    server.default = (200, {"Content-Type": "application/json"}, body)
    with running_editor(ServerConfig(sandbox_url=server.url), catalog) as url:
        _open_refund(page, url)
        page.click("#send")
        expect(page.locator(".status")).to_have_text("200 X", timeout=60_000)
    expect(page.locator("#response-truncated")).to_have_text(
        f"The body is {len(body):,} bytes; the editor shows its first {SHOWN_CHARS:,} characters."
    )
    shown = page.locator("#response-body").text_content() or ""
    assert shown == body[: SHOWN_CHARS - 3].decode() + "***"
    assert SECRET not in page.content() and SECRET[:3] not in shown
