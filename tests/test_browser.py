"""The editor page in headless Chromium: search, open an operation, fill the form, Test request against the
sandbox, and see a validation error next to its field. Screenshots go to test-artifacts/."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from browser_setup import CHROMIUM, SECRET, running_editor
from httptask.catalog import Catalog
from httptask.sandbox import SandboxThread
from httptask.server import ServerConfig

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
